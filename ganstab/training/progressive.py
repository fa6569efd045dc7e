"""Progressive growing in the loop: schedule position from images seen, faded reals, Adam reset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ganstab.config import Config
from ganstab.models.progressive import crop_from_pow2, fade_reals, next_pow2, pad_to_pow2
from ganstab.sampling import generate, save_image_grid
from ganstab.training.loop import Trainer
from ganstab.training.optim import make_optimizer
from ganstab.training.schedule import ProgressiveSchedule, phase_index, progressive_state, schedule_from_epochs

__all__ = ["ProgressiveTrainer", "schedule_for"]


def schedule_for(cfg: Config, data_size: int, side: int) -> ProgressiveSchedule:
    """The schedule from the progressive block (images, or the epoch-based `increase_every`)."""
    prog = cfg.progressive
    final = next_pow2(side)
    start = min(prog.start, final)
    if not prog.grow:
        return ProgressiveSchedule(start=final, final=final, stable_images=0, fade_images=0)
    if prog.increase_every is not None:
        return schedule_from_epochs(start, final, prog.increase_every, max(data_size, 1))
    return ProgressiveSchedule(start=start, final=final, stable_images=prog.stable_images,
                               fade_images=prog.fade_images)


class ProgressiveTrainer(Trainer):
    """Trainer whose G/D grow from `progressive.start` to the data's (power-of-two) size."""

    def __init__(self, cfg: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.schedule = schedule_for(cfg, len(self.data), self.shape[-1])
        self.resolution, self.alpha = progressive_state(0, self.schedule)
        self.phase = phase_index(0, self.schedule)

    def g_kwargs(self) -> dict[str, Any]:
        """Current resolution and fade-in alpha for G and D."""
        return {"resolution": self.resolution, "alpha": self.alpha}

    def before_step(self) -> None:
        """Move along the schedule; when a resolution is added, reset Adam state (configurable)."""
        self.resolution, self.alpha = progressive_state(self.images_seen, self.schedule)
        phase = phase_index(self.images_seen, self.schedule)
        if phase != self.phase:
            self.phase = phase
            if self.cfg.progressive.reset_optimizer:
                self.reset_optimizers()

    def reset_optimizers(self) -> None:
        """Fresh optimisers (Karras et al. reset Adam when layers are added), keeping the lr scale."""
        cfg = self.cfg
        self.opt_g = make_optimizer(cfg.optim.name, self.G.parameters(), cfg.optim.g_lr, cfg.optim.g_betas)
        self.opt_d = make_optimizer(cfg.optim.name, self.D.parameters(), cfg.optim.d_lr, cfg.optim.d_betas)
        self.apply_lr_scale()

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore, then recompute the schedule position from images seen (no stored flags)."""
        super().load_state(state)
        self.resolution, self.alpha = progressive_state(self.images_seen, self.schedule)
        self.phase = phase_index(self.images_seen, self.schedule)

    def real_batch(self) -> torch.Tensor:
        """Real images faded exactly like G's output (padded to the power-of-two side below full size).

        At full resolution G's output is cropped to the data size and D pads its input, so the
        faded reals are cropped the same way and both enter D through the same padding.
        """
        batch = super().real_batch()
        side = batch.shape[-1]
        if side != self.schedule.final:
            batch = pad_to_pow2(batch)
        batch = fade_reals(batch, self.resolution, self.alpha)
        if self.resolution == self.schedule.final and side != self.schedule.final:
            batch = crop_from_pow2(batch, side)
        return batch

    def extra_log(self) -> dict[str, Any]:
        """Resolution and alpha in every metrics line."""
        return {"resolution": self.resolution, "alpha": round(self.alpha, 6)}

    def save_samples(self) -> Path | None:
        """Sample grid at the current resolution, upsampled (nearest) to the full size for display."""
        if not self.dist.is_main:
            return None
        samples = generate(self.sampler_net(), self.fixed_z, **self.g_kwargs())
        if samples.shape[-1] < self.schedule.final:
            samples = F.interpolate(samples, size=(self.schedule.final,) * 2, mode="nearest")
        path = save_image_grid(samples, self.run_dir.sample(self.step, f"_res{self.resolution}"))
        if self.sink is not None:
            self.sink.image(self.step, "samples", path)
        return path
