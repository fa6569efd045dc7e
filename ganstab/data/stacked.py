"""Stacked images: independently drawn 1-channel images as the channels of one image (StackedMNIST).

Metz et al. 2017 (unrolled GANs), VEEGAN, PacGAN and R3GAN measure mode collapse on MNIST digits
stacked three deep: each of the 1,000 class triples is a mode. Here the single-channel images are
Fashion-MNIST's; a stacked image's label is its class triple read as a base-`classes` number,
c0 * 100 + c1 * 10 + c2 for three channels of ten classes.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["STACK_CHANNELS", "STACKED_TRAIN_SIZE", "STACKED_TEST_SIZE", "STACKED_TEST_SEED", "stack_channels",
           "triple_labels"]

#: Channels of a stacked image (three: 10 ** 3 = 1,000 modes for ten classes)
STACK_CHANNELS = 3
#: Stacked training images drawn when data.limit is not set (as many as Fashion-MNIST's training split)
STACKED_TRAIN_SIZE = 60_000
#: Stacked test images drawn from the test split (the held-out reference; as many as its images)
STACKED_TEST_SIZE = 10_000
#: Seed of the test draw: one reference for every run, whatever its seed
STACKED_TEST_SEED = 26_000


def triple_labels(channel_labels: Tensor, classes: int) -> Tensor:
    """(N, C) per-channel classes -> (N,) mode index sum_c label_c * classes^(C-1-c) (c0*100+c1*10+c2 for C=3)."""
    if channel_labels.ndim != 2:
        raise ValueError(f"channel labels must have shape (N, C), got {tuple(channel_labels.shape)}")
    weights = classes ** torch.arange(channel_labels.shape[1] - 1, -1, -1, dtype=torch.int64)
    return (channel_labels.to(torch.int64) * weights.to(channel_labels.device)).sum(dim=1)


def stack_channels(images: Tensor, labels: Optional[Tensor], n: int, generator: torch.Generator,
                   channels: int = STACK_CHANNELS, classes: int = 10) -> tuple[Tensor, Optional[Tensor]]:
    """n images (n, channels, H, W), each channel an image of `images` (M, 1, H, W) drawn uniformly and
    independently (with replacement) by `generator`, and their triple labels (None without `labels`)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"stacking needs 1-channel images (M, 1, H, W), got {tuple(images.shape)}")
    if n < 1 or len(images) == 0:
        raise ValueError(f"need n >= 1 and at least one image, got n={n} and {len(images)} images")
    rows = torch.randint(0, len(images), (n, channels), generator=generator)
    stacked = images.index_select(0, rows.reshape(-1)).reshape(n, channels, *images.shape[2:])
    if labels is None:
        return stacked, None
    return stacked, triple_labels(labels.index_select(0, rows.reshape(-1)).reshape(n, channels), classes)
