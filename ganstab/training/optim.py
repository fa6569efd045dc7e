"""Optimisers of G and D (each with its own lr and betas: TTUR) and the gradient norm the loop logs."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

__all__ = ["make_optimizer", "grad_norm"]


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float,
                   betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Adam (with its own lr/betas per network: TTUR) or RMSProp (the WGAN-clip recipe)."""
    params = list(params)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    try:  # one fused kernel per step (CUDA, and the CPU since PyTorch 2.4)
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), foreach=True)


def grad_norm(module: nn.Module) -> Tensor:
    """Total L2 norm of the gradients of a module's parameters (0 when none)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
