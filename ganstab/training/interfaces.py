"""What the loop exchanges with the rooms that build it: the watcher and scorer it is handed, what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence

import torch
from torch import Tensor, nn

from ganstab.errors import GanstabError

__all__ = ["Watcher", "RunScorer", "EventSink", "RunResult", "Divergence", "StopRequested", "PhaseFailure",
           "describe_failure", "training_eval_seed", "fixed_latents"]


def fixed_latents(seed: int, n: int, latent_dim: int) -> Tensor:
    """The fixed noise batch of a run (sample grids, the diversity metric): the same in training and `ganstab eval`."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed + 2))


def training_eval_seed(seed: int, split: str = "validation") -> int:
    """The latent seed of the evaluations on `split`: every validation score shares one, the final test score has its
    own (so the test line's samples are not the ones that selected; `ganstab eval --run` defaults to it)."""
    return seed + (7 if split == "test" else 3)


class Watcher(Protocol):
    """What the loop needs of the stability doctor: new findings per logged line, a resumable state."""

    def update(self, record: dict[str, Any]) -> Sequence[Any]:
        """New findings (objects with severity, message, advice, start_step, end_step, is_divergence, to_dict)."""

    def state_dict(self) -> dict[str, Any]:
        """Plain state for checkpoints."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`."""

    def active_keys(self) -> list[str]:
        """The episodes (findings) under way at the latest record; empty when all is well."""


class EventSink(Protocol):
    """Where the loop mirrors its outputs besides the run folder's files (TensorBoard)."""

    def scalars(self, step: int, record: dict[str, Any]) -> None:
        """A logged training or evaluation line."""

    def text(self, step: int, tag: str, text: str) -> None:
        """A finding as text."""

    def image(self, step: int, tag: str, png: Path) -> None:
        """A sample grid or scatter plot written as PNG."""

    def close(self) -> None:
        """Flush and close."""


class RunScorer(Protocol):
    """What the loop needs of the evaluator: scores of a generator and which scores are better."""

    def evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                 fixed_z: Optional[Tensor] = None, seed: int = 0, split: str = "validation") -> dict[str, float]:
        """Metric name -> value for samples of `generator` against the real reference `split` ("validation" for
        all that selects or steers, "test" for the final report only)."""

    def provenance(self, split: str) -> dict[str, Any]:
        """Keys split, reference_n, n, features, resize of the last score against `split` (logged with eval_)."""

    def is_better(self, new: dict[str, float], best: Optional[dict[str, float]]) -> bool:
        """Whether `new` beats `best` on the main metric."""

    def main_metric_name(self) -> str:
        """The name of the main metric (as in the scores)."""

    def prepare(self) -> None:
        """Build (or load) the evaluator network now, so that its one-time cost is not an evaluation's."""

    def quick_evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                       fixed_z: Optional[Tensor] = None, seed: int = 0) -> dict[str, float]:
        """A few cheap scores (class balance, diversity) between full evaluations; {} when there are none."""

    def supports_quick(self) -> bool:
        """Whether `quick_evaluate` scores anything for this run."""

    def first_cost_guess(self) -> float:
        """Seconds a full evaluation is assumed to cost until the first one is measured (eval.every=auto)."""


@dataclass
class RunResult:
    """What a finished (or interrupted) run produced."""

    out: Path
    steps: int
    d_steps: int
    images_seen: int
    interrupted: bool = False
    last_record: dict = field(default_factory=dict)
    recoveries: int = 0
    stop_signal: Optional[int] = None  # the signal that stopped an interrupted run (SIGINT, SIGTERM)
    failures: list = field(default_factory=list)  # PhaseFailure of each phase after training that failed


@dataclass
class PhaseFailure:
    """A phase that failed after the generator was exported (evaluation, samples, plots, report): what and why."""

    phase: str  # e.g. "final evaluation"
    error: BaseException
    step: int


def describe_failure(error: BaseException) -> str:
    """One line for an error met after training: a user-facing error as it is, an OS error with its file, else the
    exception's type and first line."""
    if isinstance(error, GanstabError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f" {error.filename!r}" if error.filename else ""
        return f"{error.strerror}{where}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class StopRequested(BaseException):
    """Raised by the signal handler while a phase after the export runs (SIGINT/SIGTERM stop it at once)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Findings with this code prefix are a mode collapse: recovery rolls back to the best evaluation's state
COLLAPSE_PREFIX = "mode_collapse."


class Divergence(RuntimeError):
    """Raised inside the loop on a failure that automatic recovery handles: non-finite values, an explosion
    (`fatal`: the run stops when it cannot be recovered), dead training or a mode collapse (not fatal: training
    goes on)."""

    def __init__(self, message: str, code: str = "divergence.nonfinite", start_step: int = 0,
                 fatal: bool = True) -> None:
        super().__init__(message)
        self.code, self.start_step, self.fatal = code, int(start_step), fatal
