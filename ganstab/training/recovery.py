"""Automatic recovery of the Trainer: roll back to the newest valid checkpoint with lower learning rates."""

from __future__ import annotations

from ganstab.errors import TrainingDiverged
from ganstab.rundir import append_jsonl
from ganstab.training import checkpoint as ckpt
from ganstab.training.interfaces import Divergence

__all__ = ["RecoveryMixin"]


class RecoveryMixin:
    """Mixin of the Trainer: `recover_or_stop`, `apply_lr_scale` and the message that gives up."""

    def recover_or_stop(self, exc: Divergence) -> None:
        """Roll back after a divergence, or stop with TrainingDiverged when recovery is not possible."""
        if not self._recover(str(exc)):
            raise TrainingDiverged(self._give_up_message(str(exc))) from None

    def _recover(self, reason: str) -> bool:
        """Roll back to the newest valid checkpoint and scale both lrs; False when not possible."""
        cfg = self.cfg
        if not cfg.train.recover or self.recoveries >= cfg.train.max_recoveries:
            return False
        path = ckpt.newest_valid_checkpoint(self.run_dir.checkpoints, warn=self.echo)
        if path is None:
            return False
        recoveries, lr_scale = self.recoveries + 1, self.lr_scale * cfg.train.recover_lr_factor
        self.restore(ckpt.load_checkpoint(path, map_location=self.device), drop_findings=False)
        self.recoveries, self.lr_scale = recoveries, lr_scale
        self.apply_lr_scale()
        lr_g, lr_d = self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"]
        if self.dist.is_main:
            self.echo(f"recovery {recoveries}/{cfg.train.max_recoveries}: {reason}; rolled back to step {self.step} "
                      f"and scaled both learning rates by {cfg.train.recover_lr_factor} "
                      f"(lr_g={lr_g:.3g}, lr_d={lr_d:.3g})")
            append_jsonl(self.run_dir.recoveries, [{"step": self.step, "reason": reason, "lr_scale": lr_scale,
                                                    "lr_g": lr_g, "lr_d": lr_d}])
        return True

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
        """Set both optimisers' lrs to the configured lrs times the recovery scale."""
        for opt, base in ((self.opt_g, self.cfg.optim.g_lr), (self.opt_d, self.cfg.optim.d_lr)):
            for group in opt.param_groups:
                group["lr"] = base * self.lr_scale
