"""Exponential moving average of G's weights, with its half-life given in images."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(batch_size: int, half_life_images: float) -> float:
    """Per-step decay so that a weight's influence halves after `half_life_images` images."""
    if half_life_images <= 0:
        return 0.0
    return 0.5 ** (batch_size / half_life_images)


def make_ema(generator: nn.Module) -> nn.Module:
    """A frozen copy of G used for sampling (eval mode, no gradients)."""
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * G for parameters; buffers (BN statistics) are copied."""
    ema_params = list(ema.parameters())
    g_params = list(generator.parameters())
    if ema_params:
        torch._foreach_lerp_(ema_params, g_params, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), generator.buffers()):
        b_ema.copy_(b)
