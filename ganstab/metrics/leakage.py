"""Statistics that expose augmentations leaking into a generator's samples (Zhao et al. 2020; Karras et al. 2020).

When D sees augmented reals but unaugmented fakes, G learns to produce the augmentations. Each
statistic here is large on images that carry one augmentation and small on clean ones, so the
values of generated images can be compared with the range of real images:

- `border_rows`: the fraction of image rows and columns at the edge that are entirely background
  (-1): translation pads with -1, so translated images have more of them;
- `constant_squares`: the fraction of images holding a square of side >= side/4 of one constant
  value away from the background: cutout fills a square with 0;
- `mean_color`: the mean value over all pixels: the colour transform shifts brightness.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["border_rows", "constant_squares", "mean_color", "leakage_statistics"]


def border_rows(images: Tensor, background: float = -1.0, tol: float = 1e-3) -> float:
    """Fraction of the outermost rows and columns (both sides) of each image that are entirely background."""
    x = images.float()
    edges = [x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]]  # (N, C, side) each
    flags = [(edge - background).abs().amax(dim=(1, 2)) <= tol for edge in edges]
    return float(torch.stack(flags).float().mean())


def constant_squares(images: Tensor, fraction: float = 0.25, background: float = -1.0, tol: float = 1e-3) -> float:
    """Fraction of images with a constant square of side `fraction` x side whose value is not the background."""
    x = images.float().mean(dim=1, keepdim=True)  # (N, 1, H, W)
    side = max(2, int(round(x.shape[-1] * fraction)))
    windows = x.unfold(2, side, 1).unfold(3, side, 1)  # (N, 1, H', W', side, side)
    spread = windows.amax(dim=(-2, -1)) - windows.amin(dim=(-2, -1))
    value = windows.mean(dim=(-2, -1))
    hit = (spread <= tol) & ((value - background).abs() > tol)
    return float(hit.flatten(1).any(dim=1).float().mean())


def mean_color(images: Tensor) -> float:
    """The mean pixel value of the images (in [-1, 1])."""
    return float(images.float().mean())


def leakage_statistics(images: Tensor) -> dict[str, float]:
    """Every leakage statistic of a batch of images (N, C, H, W) in [-1, 1]."""
    return {"border_rows": border_rows(images), "constant_squares": constant_squares(images),
            "mean_color": mean_color(images)}
