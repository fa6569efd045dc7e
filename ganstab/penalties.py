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


def consistency_penalty(a: Tensor, b: Tensor) -> Tensor:
    """mean_i mean_j (a_ij - b_ij)^2: per sample, the mean squared difference over its features, then over the batch.

    Consistency regularisation (Zhao et al. 2020, "Improved Consistency Regularization for GANs"):
    bCR uses it on D's logits of x and T(x) (reals and fakes, T a random transform), zCR on D's
    logits of G(z) and G(z + eps) and, negated, on the images G(z), G(z + eps) as G's diversity term.
    Both sides carry gradients. Over features it is a mean, not a sum (as StudioGAN's MSE), so a
    weight means the same at any image size; for logits (B,) or (B, 1) it is mean_i (a_i - b_i)^2.
    """
    if a.shape != b.shape:
        raise ValueError(f"consistency penalty needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = (a.float() - b.float()).reshape(a.shape[0], -1)
    return diff.pow(2).mean(dim=1).mean()


def perturb_latents(z: Tensor, noise: Tensor, sigma: float) -> Tensor:
    """zCR's perturbed latents z + sigma * noise, with noise ~ N(0, 1) drawn by the caller (so eps ~ N(0, sigma^2))."""
    if z.shape != noise.shape:
        raise ValueError(f"latents and noise shapes differ: {tuple(z.shape)} vs {tuple(noise.shape)}")
    return z + sigma * noise


def lazy_weight(weight: float, every: int, d_step: int) -> float:
    """Lazy regularisation (StyleGAN2): the full weight times `every` on every `every`-th D step, else 0."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    return weight * every if d_step % every == 0 else 0.0
