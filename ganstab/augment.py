"""Differentiable image augmentations (DiffAugment, Zhao et al. 2020) and the ADA controller (Karras et al. 2020).

Everything D sees -- reals and fakes, in the D step and in the G step -- goes through the same
`augment` call, so the transforms must be differentiable (gradients reach G through them) or they
leak into G's samples. Images are (N, C, H, W) in [-1, 1] with C = 1 or 3.

Transforms (each draws its random parameters per sample from the `torch.Generator` it is given,
never from the global RNG):

- ``color``: brightness ``x + b`` with b ~ U(-0.5, 0.5); saturation ``m_c + s * (x - m_c)`` with
  m_c the per-pixel mean over channels and s ~ U(0, 2) (a no-op for one channel); contrast
  ``m + k * (x - m)`` with m the per-image mean and k ~ U(0.5, 1.5). The result is not clamped.
- ``translation``: integer shift of up to ``round(side / 8)`` pixels per axis, uncovered pixels
  set to the background value -1 (``TRANSLATION_FILL``).
- ``cutout``: a square of half the side (rounded) set to 0 (``CUTOUT_FILL``: DiffAugment's value,
  mid-grey in [-1, 1], visible on dark and light backgrounds alike), centred at a uniform pixel
  and clipped at the image border.

ADA: r_t = E[sign(D(real))] measures D's overfitting; p rises by ``images / speed_images`` when
r_t exceeds the target (0.6 in the paper) and falls by the same amount when below, within [0, 1].
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ganstab.errors import ConfigError

__all__ = [
    "CUTOUT_FILL",
    "TRANSLATION_FILL",
    "POLICIES",
    "AdaController",
    "ada_signal",
    "ada_update",
    "adjust_color",
    "augment",
    "color",
    "cutout",
    "cutout_square",
    "parse_policy",
    "translate",
    "translation",
]

TRANSLATION_FILL = -1.0  # background (black) in [-1, 1]: what a shift uncovers
CUTOUT_FILL = 0.0  # DiffAugment's cutout value: mid-grey in [-1, 1]
TRANSLATION_RATIO = 0.125  # largest shift as a fraction of the side
CUTOUT_RATIO = 0.5  # cutout square side as a fraction of the image side


def _uniform(n: int, low: float, high: float, generator: torch.Generator, like: Tensor) -> Tensor:
    """n draws of U(low, high) from `generator`, on the device and in the dtype of `like`."""
    draws = torch.rand(n, generator=generator, device=generator.device)
    return (low + (high - low) * draws).to(device=like.device, dtype=like.dtype)


def _integers(n: int, low: int, high: int, generator: torch.Generator, like: Tensor) -> Tensor:
    """n integers uniform in [low, high] (inclusive) from `generator`, on the device of `like`."""
    draws = torch.randint(low, high + 1, (n,), generator=generator, device=generator.device)
    return draws.to(like.device)


def adjust_color(x: Tensor, brightness: Tensor, saturation: Tensor, contrast: Tensor) -> Tensor:
    """Per-sample ``x + b``, then ``m_c + s (x - m_c)`` (channel mean), then ``m + k (x - m)`` (image mean)."""
    per_sample = (-1, 1, 1, 1)
    x = x + brightness.view(per_sample)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = channel_mean + saturation.view(per_sample) * (x - channel_mean)
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return image_mean + contrast.view(per_sample) * (x - image_mean)


def color(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random brightness U(-0.5, 0.5), saturation U(0, 2) and contrast U(0.5, 1.5) per sample."""
    n = x.shape[0]
    brightness = _uniform(n, -0.5, 0.5, generator, x)
    saturation = _uniform(n, 0.0, 2.0, generator, x)
    contrast = _uniform(n, 0.5, 1.5, generator, x)
    return adjust_color(x, brightness, saturation, contrast)


def translate(x: Tensor, shift_y: Tensor, shift_x: Tensor, fill: float = TRANSLATION_FILL) -> Tensor:
    """Move sample b's content down by shift_y[b] and right by shift_x[b] pixels, uncovered pixels = `fill`.

    ``out[b, c, i, j] = x[b, c, i - shift_y[b], j - shift_x[b]]`` where that pixel exists, else
    `fill`. Built from a one-pixel `fill` border and two gathers, so gradients reach every moved pixel.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1), value=fill)
    rows = (torch.arange(h, device=x.device) - shift_y.view(-1, 1) + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device) - shift_x.view(-1, 1) + 1).clamp(0, w + 1)
    moved_rows = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2))
    return moved_rows.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def translation(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random integer shift per sample of up to round(side / 8) pixels per axis, padded with -1."""
    n, _, h, w = x.shape
    max_y, max_x = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    shift_y = _integers(n, -max_y, max_y, generator, x)
    shift_x = _integers(n, -max_x, max_x, generator, x)
    return translate(x, shift_y, shift_x)


def cutout_square(x: Tensor, top: Tensor, left: Tensor, size: tuple[int, int],
                  fill: float = CUTOUT_FILL) -> Tensor:
    """Set rows top[b] .. top[b]+size[0]-1 x cols left[b] .. left[b]+size[1]-1 of sample b to `fill` (clipped)."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h)
    cols = torch.arange(w, device=x.device).view(1, w)
    in_rows = (rows >= top.view(-1, 1)) & (rows < top.view(-1, 1) + size[0])
    in_cols = (cols >= left.view(-1, 1)) & (cols < left.view(-1, 1) + size[1])
    mask = in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w)
    return x.masked_fill(mask, fill)


def cutout(x: Tensor, generator: torch.Generator) -> Tensor:
    """Per sample, set a square of half the side centred at a uniform random pixel to 0 (clipped at borders)."""
    n, _, h, w = x.shape
    size = (int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5))
    centre_y = _integers(n, 0, h - 1, generator, x)
    centre_x = _integers(n, 0, w - 1, generator, x)
    return cutout_square(x, centre_y - size[0] // 2, centre_x - size[1] // 2, size)


POLICIES: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def _unknown_transform(name: str, key: str = "augment.policy") -> ConfigError:
    """The one-line error for a transform name that is not in POLICIES (`key`: the config key that named it)."""
    return ConfigError(f"unknown augmentation {name!r} in {key}; known: {', '.join(POLICIES)}")


def parse_policy(text: str, key: str = "augment.policy") -> tuple[str, ...]:
    """Comma-separated transform names ('color,translation,cutout') -> tuple; ConfigError naming `key` if unknown."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if name not in POLICIES:
            raise _unknown_transform(name, key)
    return names


def augment(x: Tensor, policy: Sequence[str], generator: torch.Generator, p: float = 1.0) -> Tensor:
    """Apply the policy's transforms in order, each to each sample with probability p.

    For every transform: one U(0, 1) draw per sample decides (draw < p) whether that sample is
    transformed, then the transform draws its parameters for all samples. The number of draws
    does not depend on p, so p=0 returns the input values exactly and a changing ADA p keeps
    the generator's stream aligned.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augmentation probability p must be within [0, 1], got {p}")
    for name in policy:
        transform = POLICIES.get(name)
        if transform is None:
            raise _unknown_transform(name)
        chosen = torch.rand(x.shape[0], generator=generator, device=generator.device) < p
        transformed = transform(x, generator)
        x = torch.where(chosen.to(x.device).view(-1, 1, 1, 1), transformed, x)
    return x


def ada_signal(d_real_logits: Tensor) -> Tensor:
    """The ADA overfitting heuristic r_t = mean(sign(D(real))), a detached scalar in [-1, 1]."""
    return torch.sign(d_real_logits.detach()).mean()


def ada_update(p: float, r_t: float, target: float, batch_images: int, speed_images: int = 500_000) -> float:
    """``clamp(p + sign(r_t - target) * batch_images / speed_images, 0, 1)``: 0 -> 1 takes speed_images images."""
    if speed_images <= 0:
        raise ValueError(f"speed_images must be positive, got {speed_images}")
    direction = (r_t > target) - (r_t < target)
    return float(min(max(p + direction * batch_images / speed_images, 0.0), 1.0))


class AdaController:
    """ADA's p: accumulate sign(D(real)) with `observe`, and every `interval` images move p with `ada_update`.

    The state is plain Python numbers (p and the signal sum as float, counts as int), so a
    checkpoint restores it exactly. Per process: under DDP all-reduce the logits or counts first.
    """

    def __init__(self, target: float = 0.6, interval: int = 256, speed_images: int = 500_000,
                 p: float = 0.0) -> None:
        """`interval`: images between updates (ADA: 4 minibatches); `speed_images`: images for p to go 0 -> 1."""
        if interval < 1 or speed_images < 1:
            raise ValueError(f"interval and speed_images must be >= 1, got {interval} and {speed_images}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation probability p must be within [0, 1], got {p}")
        self.target = float(target)
        self.interval = int(interval)
        self.speed_images = int(speed_images)
        self.p = float(p)
        self.signal_sum = 0.0
        self.signal_count = 0
        self.images_since_update = 0
        self.last_signal = 0.0

    def observe(self, d_real_logits: Tensor) -> None:
        """Add the signs of one batch of D's real logits to the running signal (one host sync)."""
        self.signal_sum += float(torch.sign(d_real_logits.detach()).sum())
        self.signal_count += d_real_logits.numel()

    def step(self, images: int) -> float:
        """Count `images` more real images; once `interval` are reached, move p by r_t and reset. Returns p.

        An interval without any observation leaves p unchanged (there is no signal to act on).
        """
        self.images_since_update += int(images)
        if self.images_since_update < self.interval:
            return self.p
        if self.signal_count > 0:
            self.last_signal = self.signal_sum / self.signal_count
            self.p = ada_update(self.p, self.last_signal, self.target, self.images_since_update,
                                self.speed_images)
        self.signal_sum = 0.0
        self.signal_count = 0
        self.images_since_update = 0
        return self.p

    def state_dict(self) -> dict[str, float | int]:
        """The mutable state as plain numbers (hyperparameters come from the config)."""
        return {
            "p": self.p,
            "signal_sum": self.signal_sum,
            "signal_count": self.signal_count,
            "images_since_update": self.images_since_update,
            "last_signal": self.last_signal,
        }

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restore what `state_dict` returned."""
        self.p = float(state["p"])
        self.signal_sum = float(state["signal_sum"])
        self.signal_count = int(state["signal_count"])
        self.images_since_update = int(state["images_since_update"])
        self.last_signal = float(state["last_signal"])
