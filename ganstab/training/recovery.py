"""Automatic recovery of the Trainer: each kind of failure gets its documented remedy.

- divergence (NaN/Inf, an exploding loss or gradient): roll back and scale both learning rates by
  `train.recover_lr_factor` (the run stops when this cannot be done: no recovery left);
- dead training (a gradient at zero, losses constant: D has won): roll back and scale D's learning
  rate only (training goes on when no recovery is left; the finding stays in findings.jsonl);
- mode collapse (the evaluation series: modes, coverage, class balance or diversity lost): roll back
  to the training state of the best evaluation so far (kept in best/) and scale G's learning rate
  only, the TTUR direction of the doctor's advice (G slower than D); training goes on when no
  recovery is left.

Otherwise a rollback goes to the newest valid checkpoint taken before the episode began: one of the rotated
checkpoints or the last known good one, kept outside the rotation, so the same episode is not
replayed. Every recovery is a line of recoveries.jsonl (what failed, what changed, where it rolled
back to); the next evaluation after it adds a line with the main metric afterwards.
"""

from __future__ import annotations

from typing import Any

from ganstab.errors import TrainingDiverged
from ganstab.rundir import append_jsonl, checkpoint_step
from ganstab.training import checkpoint as ckpt
from ganstab.training.interfaces import COLLAPSE_PREFIX, Divergence

__all__ = ["RecoveryMixin", "REMEDIES"]

# failure code prefix -> (learning rates scaled, what the remedy is)
REMEDIES: dict[str, tuple[tuple[str, ...], str]] = {
    "divergence.": (("g", "d"), "scaled both learning rates"),
    "training.dead": (("d",), "scaled D's learning rate"),
    COLLAPSE_PREFIX: (("g",), "scaled G's learning rate"),
}


def remedy_for(code: str) -> tuple[tuple[str, ...], str]:
    """The learning rates to scale and the remedy's description for a failure code."""
    for prefix, remedy in REMEDIES.items():
        if code.startswith(prefix):
            return remedy
    return REMEDIES["divergence."]


class RecoveryMixin:
    """Mixin of the Trainer: `recover_or_stop`, `apply_lr_scale` and the message that gives up."""

    def recover_or_stop(self, exc: Divergence) -> None:
        """Roll back with the failure's remedy, or stop (fatal failures) when recovery is not possible."""
        if self._recover(exc):
            return
        if exc.fatal:
            raise TrainingDiverged(self._give_up_message(str(exc))) from None

    def _recover(self, exc: Divergence) -> bool:
        """Roll back to a checkpoint from before the episode and apply the remedy; False when not possible."""
        cfg = self.cfg
        if not cfg.train.recover or self.recoveries >= cfg.train.max_recoveries:
            return False
        path = self._rollback_target(exc)
        if path is None:
            return False
        before = self._lrs()
        failed_at = self.step
        recoveries, scales = self.recoveries + 1, {"g": self.lr_scale_g, "d": self.lr_scale_d}
        nets, remedy = remedy_for(exc.code)
        for net in nets:
            scales[net] *= cfg.train.recover_lr_factor
        self.restore(ckpt.load_checkpoint(path), drop_findings=False)  # on the CPU, as resume_from loads it
        self.recoveries, self.lr_scale_g, self.lr_scale_d = recoveries, scales["g"], scales["d"]
        self.apply_lr_scale()
        after = self._lrs()
        self._report_after_recovery = recoveries
        if self.dist.is_main:
            self.echo(f"recovery {recoveries}/{cfg.train.max_recoveries}: {exc}; rolled back to step {self.step} "
                      f"and {remedy} by {cfg.train.recover_lr_factor} (lr_g={after[0]:.3g}, lr_d={after[1]:.3g})")
            append_jsonl(self.run_dir.recoveries, [{
                "recovery": recoveries, "step": self.step, "failed_at": failed_at, "code": exc.code,
                "reason": str(exc), "remedy": remedy, "lr_scale": min(scales.values()), "lr_g_before": before[0],
                "lr_d_before": before[1], "lr_g": after[0], "lr_d": after[1], "from_checkpoint": path.name}])
        return True

    def _rollback_target(self, exc: Divergence) -> Any:
        """The checkpoint to roll back to: for a collapse the best evaluation's state when it is from before the
        episode began (a best inside the episode is already collapsed), else the newest valid checkpoint from
        before the episode."""
        start = max(exc.start_step, 1)
        if exc.code.startswith(COLLAPSE_PREFIX):
            best = ckpt.newest_valid_before(self.run_dir.best, start, warn=self.echo) \
                if self.run_dir.best.is_dir() else None
            if best is not None and (checkpoint_step(best.name) or 0) < start:
                return best
        return ckpt.newest_valid_before(self.run_dir.checkpoints, start, warn=self.echo)

    def _lrs(self) -> tuple[float, float]:
        return self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"]

    def report_after_recovery(self, scores: dict[str, Any], metric: str) -> None:
        """After the first evaluation following a recovery: a recoveries.jsonl line with the metric then."""
        number = self._report_after_recovery
        if not number or not self.dist.is_main or metric not in scores:
            return
        append_jsonl(self.run_dir.recoveries, [{"recovery": number, "after_step": self.step, "metric": metric,
                                                "value": scores[metric]}])
        self._report_after_recovery = 0

    def _give_up_message(self, reason: str) -> str:
        if not self.cfg.train.recover:
            why = "automatic recovery is off (train.recover=false)"
        elif self.recoveries >= self.cfg.train.max_recoveries:
            why = f"after {self.recoveries} recoveries (train.max_recoveries={self.cfg.train.max_recoveries})"
        else:
            why = "no valid checkpoint to roll back to"
        return (f"training diverged: {reason.rstrip('.')}; stopped {why}. Try lower learning rates "
                f"(optim.g_lr/optim.d_lr), loss.kind=hinge with model.d_norm=spectral, or penalty.gp=10; "
                f"see 'ganstab doctor {self.out}'")

    def apply_lr_scale(self) -> None:
        """Set each optimiser's lr to its configured (or scheduled: `hyper`) lr times its recovery scale."""
        for opt, base, scale in ((self.opt_g, self.hyper("optim.g_lr"), self.lr_scale_g),
                                 (self.opt_d, self.hyper("optim.d_lr"), self.lr_scale_d)):
            for group in opt.param_groups:
                group["lr"] = base * scale
