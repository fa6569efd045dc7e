"""Schedules as pure functions of images seen: progressive growing's phases and the `schedule.*` ramps.

`schedule_value` moves a value from start to end over a number of real images (linear, or a
half cosine as R3GAN's recipes do for gamma, the learning rate and Adam's beta2), and
`scheduled_values` evaluates every `schedule.<name>` entry of a config at `images_seen`.

The schedule is a sequence of phases measured in real images shown to D:

    start resolution: ``stable_images`` stable (alpha 1.0)
    each doubling:    ``fade_images`` fading in (alpha 0 -> 1 linearly),
                      then ``stable_images`` stable (alpha 1.0)
    final resolution: stays forever (alpha 1.0)

Because the state is a pure function of ``images_seen``, a resumed run lands in exactly
the same resolution and alpha without storing any flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ganstab.config import Config, configured_value
from ganstab.models.progressive import is_pow2, next_pow2

__all__ = ["ProgressiveSchedule", "is_pow2", "next_pow2", "phase_index", "progressive_state", "schedule_from_epochs",
           "schedule_value", "scheduled_values"]


def schedule_value(start: float, end: float, images: int, images_seen: int, kind: str = "cosine") -> float:
    """start + (end - start) * s(t), t = min(images_seen / images, 1); s = t (linear) or (1 - cos(pi t)) / 2 (cosine).

    The value is `start` at 0 images and `end` from `images` on; the cosine moves slowly at both
    ends (R3GAN's `cosine_decay_with_warmup` without warm-up has the same shape).
    """
    if images < 1:
        raise ValueError(f"a schedule needs images >= 1, got {images}")
    if images_seen < 0:
        raise ValueError(f"images_seen must be >= 0, got {images_seen}")
    t = min(images_seen / images, 1.0)
    if kind == "linear":
        shape = t
    elif kind == "cosine":
        shape = 0.5 * (1.0 - math.cos(math.pi * t))
    else:
        raise ValueError(f"unknown schedule kind {kind!r}; known kinds: linear, cosine")
    return end if t >= 1.0 else start + (end - start) * shape


def scheduled_values(cfg: Config, images_seen: int) -> dict[str, float]:
    """{scheduled key: its value after images_seen real images}, each starting from the key's configured value."""
    return {entry.key: schedule_value(configured_value(cfg, entry.key), entry.end, entry.images, images_seen,
                                      entry.kind)
            for entry in cfg.schedule.values()}


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Resolutions start..final (powers of two) with stable and fade-in lengths in images."""

    start: int
    final: int
    stable_images: int
    fade_images: int

    def __post_init__(self) -> None:
        """Validate: powers of two, start <= final, non-negative phase lengths."""
        if not is_pow2(self.start) or not is_pow2(self.final):
            raise ValueError(
                f"progressive start and final resolutions must be powers of two, "
                f"got start={self.start}, final={self.final}"
            )
        if self.start > self.final:
            raise ValueError(
                f"progressive start resolution {self.start} exceeds final resolution {self.final}"
            )
        if self.stable_images < 0 or self.fade_images < 0:
            raise ValueError(
                f"stable_images and fade_images must be >= 0, "
                f"got {self.stable_images} and {self.fade_images}"
            )

    @property
    def num_growths(self) -> int:
        """Number of doublings from start to final resolution."""
        return (self.final // self.start).bit_length() - 1

    @property
    def resolutions(self) -> tuple[int, ...]:
        """All resolutions visited, start..final."""
        return tuple(self.start << k for k in range(self.num_growths + 1))

    @property
    def images_to_final(self) -> int:
        """Images seen at the moment the final resolution has fully faded in (alpha reaches 1)."""
        if self.num_growths == 0:
            return 0
        return self.stable_images + self.num_growths * self.fade_images + (
            self.num_growths - 1
        ) * self.stable_images


def _locate(images_seen: int, schedule: ProgressiveSchedule) -> tuple[int, float]:
    """Return (growth index, alpha) for ``images_seen``; growth index 0 is the start resolution."""
    if images_seen < 0:
        raise ValueError(f"images_seen must be >= 0, got {images_seen}")
    remaining = images_seen
    if remaining < schedule.stable_images:
        return 0, 1.0
    remaining -= schedule.stable_images
    for growth in range(1, schedule.num_growths + 1):
        if remaining < schedule.fade_images:
            return growth, remaining / schedule.fade_images
        remaining -= schedule.fade_images
        if remaining < schedule.stable_images:
            return growth, 1.0
        remaining -= schedule.stable_images
    return schedule.num_growths, 1.0


def progressive_state(images_seen: int, schedule: ProgressiveSchedule) -> tuple[int, float]:
    """Return (current resolution, fade-in alpha) after ``images_seen`` real images."""
    growth, alpha = _locate(images_seen, schedule)
    return schedule.start << growth, alpha


def phase_index(images_seen: int, schedule: ProgressiveSchedule) -> int:
    """Return 0 at the start resolution, +1 at the first image of each new resolution's fade-in."""
    return _locate(images_seen, schedule)[0]


def epochs_to_images(increase_every_epochs: float, dataset_size: int) -> int:
    """Convert the config's epoch-based ``progressive.increase_every`` to images (1 epoch = dataset_size).

    The result is the length of one growth period, fade plus stable. ``schedule_from_epochs``
    splits it half fade, half stable, which is the paper's pattern (800k images fading in, then
    800k stable, so one resolution is added every 1.6M images after an initial 800k stable).
    """
    if dataset_size < 1:
        raise ValueError(f"dataset_size must be >= 1, got {dataset_size}")
    if increase_every_epochs <= 0:
        raise ValueError(f"progressive.increase_every must be > 0 epochs, got {increase_every_epochs}")
    images = int(round(increase_every_epochs * dataset_size))
    if images < 2:
        raise ValueError(
            f"progressive.increase_every={increase_every_epochs} epochs of {dataset_size} images "
            f"is {images} image(s); need at least 2 (one fade, one stable)"
        )
    return images


def schedule_from_epochs(
    start: int, final: int, increase_every_epochs: float, dataset_size: int
) -> ProgressiveSchedule:
    """Build a schedule from ``increase_every`` epochs: half of each period fades, half is stable.

    The start resolution trains stable for half a period, then every full period adds one
    resolution (fade_images = period // 2, stable_images = period - fade_images).
    """
    period = epochs_to_images(increase_every_epochs, dataset_size)
    fade = period // 2
    return ProgressiveSchedule(start=start, final=final, stable_images=period - fade, fade_images=fade)
