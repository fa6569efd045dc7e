"""Phases after the export, and evaluations during training, whose failure must not cost the training."""

from __future__ import annotations

import signal
from typing import Any, Callable

from ganstab.training.interfaces import Divergence, PhaseFailure, StopRequested, describe_failure

__all__ = ["FinishingMixin"]


class FinishingMixin:
    """Mixin of the Trainer: `_tolerated` (an evaluation during training) and `_after_export` (the phases after it)."""

    def _tolerated(self, phase: str, work: Callable[[], Any]) -> None:
        """Run an evaluation whose failure must not cost the training: record it, switch evaluation off, go on."""
        try:
            work()
        except (Divergence, StopRequested):
            raise
        except Exception as exc:  # the evaluator's training, cache or data: the run itself is fine
            self.failures.append(PhaseFailure(phase, exc, self.step))
            self.scorer = None
            self.echo(f"{phase} at step {self.step} failed ({describe_failure(exc)}); training goes on without "
                      "evaluation")

    def _after_export(self, phases: list[tuple[str, Callable[[], Any]]]) -> bool:
        """Run each phase, recording a failure and going on; False when SIGINT/SIGTERM stopped them."""
        phase = phases[0][0]
        self._stop_now = True
        try:
            for phase, work in phases:
                if self._stop_signal is not None:
                    raise StopRequested(self._stop_signal)
                try:
                    work()
                except Exception as exc:  # the generator is exported: whatever fails here is reported, not fatal
                    self.failures.append(PhaseFailure(phase, exc, self.step))
        except StopRequested as stop:
            self._stop_now = False
            self._stop_signal = stop.signum
            if self.dist.is_main:
                self.echo(f"stopped by {signal.Signals(stop.signum).name} during the {phase} at step {self.step}; "
                          f"checkpoint and generator saved. Score it with: ganstab eval --run {self.out}")
            return False
        finally:
            self._stop_now = False
        return True
