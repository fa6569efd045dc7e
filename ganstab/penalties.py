"""Discriminator regularisers as pure functions of (D, inputs).

The penalties return *unweighted* values; the loop multiplies by the configured weight. They
create the graph needed for double back-propagation (`create_graph=True`) so that the returned
tensor's gradient flows into D's parameters, but they never call `.backward()` themselves.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

Critic = Callable[[Tensor], Tensor]


def _input_gradients(discriminator: Critic, x: Tensor, scale: float | Tensor = 1.0) -> Tensor:
    """Per-sample gradients of D's summed output w.r.t. x, flattened to (B, -1).

    Summing the outputs is exact for per-sample gradients as long as D treats samples
    independently (hence: no batch norm in a penalised critic). `scale` supports the AMP
    recipe: the output is scaled before autograd.grad and the gradients unscaled after.
    """
    x = x.detach().requires_grad_(True)
    out = discriminator(x)
    (grad,) = torch.autograd.grad(
        outputs=out.float().sum() * scale, inputs=x, create_graph=True
    )
    grad = grad.float() / scale
    return grad.reshape(grad.shape[0], -1)


def interpolate(real: Tensor, fake: Tensor, generator: torch.Generator | None = None,
                alpha: Tensor | None = None) -> Tensor:
    """Random per-sample points on the lines between real and fake (alpha shape (B, 1, ..., 1))."""
    if real.shape != fake.shape:
        raise ValueError(f"real and fake shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    if alpha is None:
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype, generator=generator)
    else:
        alpha = alpha.reshape(shape).to(device=real.device, dtype=real.dtype)
    return alpha * real.detach() + (1.0 - alpha) * fake.detach()


def gradient_penalty(
    discriminator: Critic,
    real: Tensor,
    fake: Tensor,
    target: float = 1.0,
    generator: torch.Generator | None = None,
    scale: float | Tensor = 1.0,
    alpha: Tensor | None = None,
) -> Tensor:
    """WGAN-GP penalty mean_i (||grad D(x_hat_i)||_2 - target)^2, per sample, any input rank."""
    x_hat = interpolate(real, fake, generator, alpha)
    norms = _input_gradients(discriminator, x_hat, scale).norm(2, dim=1)
    return (norms - target).pow(2).mean()


def _zero_centred_penalty(discriminator: Critic, x: Tensor, scale: float | Tensor) -> Tensor:
    """mean_i ||grad_x D(x_i)||_2^2, per sample (the penalty of R1 and R2)."""
    return _input_gradients(discriminator, x, scale).pow(2).sum(dim=1).mean()


def r1_penalty(discriminator: Critic, real: Tensor, scale: float | Tensor = 1.0) -> Tensor:
    """R1 penalty mean_i ||grad_x D(x_i)||_2^2 on real samples (Mescheder et al. 2018)."""
    return _zero_centred_penalty(discriminator, real, scale)


def r2_penalty(discriminator: Critic, fake: Tensor, scale: float | Tensor = 1.0) -> Tensor:
    """R2 penalty mean_i ||grad_x D(x_i)||_2^2 on generated samples, detached from G (Mescheder et al. 2018; R3GAN)."""
    return _zero_centred_penalty(discriminator, fake, scale)


@torch.no_grad()
def clip_weights(module: nn.Module, c: float) -> None:
    """Clamp every parameter of the module to [-c, c] in place (WGAN weight clipping)."""
    if c <= 0:
        raise ValueError(f"clip value must be positive, got {c}")
    for param in module.parameters():
        param.clamp_(-c, c)


def lazy_weight(weight: float, every: int, d_step: int) -> float:
    """Lazy regularisation (StyleGAN2): the full weight times `every` on every `every`-th D step, else 0."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    return weight * every if d_step % every == 0 else 0.0
