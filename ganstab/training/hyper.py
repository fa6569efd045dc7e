"""The Trainer's scheduled hyperparameters: `schedule.<name>` values for each step, set on the optimisers.

Each step begins by evaluating every schedule at `images_seen` (`ganstab.training.schedule.scheduled_values`,
a pure function of that checkpointed counter, so a resumed run gets exactly the values of an
uninterrupted one); learning rates become the scheduled value times the recovery scale, Adam's beta2
the scheduled value, and penalty weights are read through `hyper(key)`.
"""

from __future__ import annotations

from ganstab.config import configured_value
from ganstab.training.schedule import scheduled_values

__all__ = ["HyperMixin"]


class HyperMixin:
    """Mixin of the Trainer: `apply_schedules` before each step, `hyper(key)` and the values it logs."""

    scheduled: dict[str, float] = {}  # this step's values of the scheduled keys (replaced, never changed in place)

    def apply_schedules(self) -> None:
        """Set this step's `schedule.*` values and the optimisers' lr (times the recovery scale) and beta2."""
        if not self.cfg.schedule:
            return
        self.scheduled = scheduled_values(self.cfg, self.images_seen)
        self.apply_lr_scale()
        for opt, key in ((self.opt_g, "optim.g_beta2"), (self.opt_d, "optim.d_beta2")):
            if key in self.scheduled:
                for group in opt.param_groups:
                    group["betas"] = (group["betas"][0], self.scheduled[key])

    def hyper(self, key: str) -> float:
        """A schedulable key's value for this step: the scheduled one, else the configured one."""
        value = self.scheduled.get(key)
        return configured_value(self.cfg, key) if value is None else value

    def schedule_log(self) -> dict[str, float]:
        """The scheduled values of this step for the metrics line ('penalty.r1' as 'penalty_r1'; lrs are lr_g/lr_d)."""
        return {key.replace(".", "_"): value for key, value in self.scheduled.items() if not key.endswith("_lr")}
