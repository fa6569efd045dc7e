"""The PacGAN 2-D benchmarks: a ring of 8 Gaussians and a 5x5 grid of Gaussians."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

RING8_STD = 0.01
GRID25_STD = 0.05


def ring8_centers() -> Tensor:
    """Eight modes evenly spaced on the unit circle (PacGAN: radius 1)."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=1).float()


def grid25_centers() -> Tensor:
    """Twenty-five modes on the grid {-4,-2,0,2,4}^2 (PacGAN)."""
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def mixture_sampler(centers: Tensor, std: float) -> Callable[[int, torch.Generator], Tensor]:
    """A sampler (n, generator) -> (n, 2) points from an equal-weight Gaussian mixture."""

    def sample(n: int, gen: torch.Generator) -> Tensor:
        which = torch.randint(0, centers.shape[0], (n,), generator=gen)
        noise = torch.randn(n, 2, generator=gen) * std
        return centers[which] + noise

    return sample
