"""Statistics that expose augmentations leaking into a generator's samples (Zhao et al. 2020; Karras et al. 2020).

When D sees augmented reals but unaugmented fakes, G learns to produce the augmentations. Each
statistic here is large on images that carry one augmentation and small on clean ones, so the
values of generated images can be compared with the range of real images:

- `border_rows`: the fraction of image rows and columns at the edge that are entirely background
  (-1): translation pads with -1, so translated images have more of them;
- `constant_squares`: the fraction of images holding a square of side >= side/4 of one constant
  value away from the background: cutout fills a square with 0;
- `dark_offset`: how far each image's darkest pixels (its 5th percentile) sit from the background
  value -1, averaged over images: the colour transform shifts brightness by up to +-0.5 and scales
  contrast, which lifts or sinks the dark background of every image.

Augmentation can only raise each of them, so the check is one-sided. `leakage_range` gives the
range of each statistic over disjoint subsets of real images; `EXPOSES` names the transform each
statistic exposes, and the same statistic of real images put through that transform alone measures
the augmentation's own effect. `leak_thresholds` puts each threshold above the real range's top by
`margin` (a quarter) of the way to the augmented value: a generator's continuous outputs never hit
the exact background value -1 of real pixels, so the bare real range would flag every generator on
`dark_offset`. `leaks` names the statistics of generated images above their thresholds.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["EXPOSES", "border_rows", "constant_squares", "dark_offset", "leakage_statistics", "leakage_range",
           "leak_thresholds", "leaks"]

# statistic -> the augmentation it exposes
EXPOSES: dict[str, str] = {"border_rows": "translation", "constant_squares": "cutout", "dark_offset": "color"}


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


def dark_offset(images: Tensor, quantile: float = 0.05, background: float = -1.0) -> float:
    """Mean over images of |the image's `quantile` pixel value - background|: 0 on images with a clean background."""
    x = images.float().flatten(1)
    return float((torch.quantile(x, quantile, dim=1) - background).abs().mean())


def leakage_statistics(images: Tensor) -> dict[str, float]:
    """Every leakage statistic of a batch of images (N, C, H, W) in [-1, 1]."""
    return {"border_rows": border_rows(images), "constant_squares": constant_squares(images),
            "dark_offset": dark_offset(images)}


def leakage_range(images: Tensor, parts: int = 10) -> dict[str, tuple[float, float]]:
    """(min, max) of each statistic over `parts` disjoint equal subsets of the images (real ones)."""
    if parts < 1 or images.shape[0] < parts:
        raise ValueError(f"leakage_range needs at least {parts} images for {parts} parts, got {images.shape[0]}")
    size = images.shape[0] // parts
    values = [leakage_statistics(images[i * size:(i + 1) * size]) for i in range(parts)]
    return {name: (min(v[name] for v in values), max(v[name] for v in values)) for name in values[0]}


def leak_thresholds(real_range: dict[str, tuple[float, float]], augmented: dict[str, float],
                    margin: float = 0.25) -> dict[str, float]:
    """Per statistic: the real range's top plus `margin` of the way up to its value on augmented reals."""
    return {name: hi + margin * max(0.0, augmented[name] - hi) for name, (_, hi) in real_range.items()}


def leaks(statistics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Names of the statistics above their thresholds (augmentation only raises them)."""
    return [name for name, value in statistics.items() if value > thresholds[name]]
