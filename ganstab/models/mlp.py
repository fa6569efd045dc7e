"""Fully connected G and D: the blog generator for 28x28 and a generic MLP for any sample shape."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ganstab.models.norms import feature_norm, weight_layer


class MLPGenerator(nn.Module):
    """z -> [Linear-Norm-ReLU] * len(hidden) -> Linear -> Tanh (images) or identity (points)."""

    def __init__(self, latent_dim: int, out_shape: Sequence[int], hidden: Sequence[int], norm: str,
                 tanh: bool = True) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.out_shape = tuple(out_shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [weight_layer(norm, nn.Linear(width, h)), feature_norm(norm, h, conv=False), nn.ReLU()]
            width = h
        layers.append(weight_layer(norm, nn.Linear(width, math.prod(self.out_shape))))
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])

    def forward(self, z: Tensor) -> Tensor:
        """Map latent codes (B, latent_dim) to samples (B, *out_shape)."""
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """x -> flatten -> Linear-LeakyReLU, then [Linear-Norm-LeakyReLU] ... -> Linear(1) logits."""

    def __init__(self, in_shape: Sequence[int], hidden: Sequence[int], norm: str, slope: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = math.prod(in_shape)
        for i, h in enumerate(hidden):
            layers.append(weight_layer(norm, nn.Linear(width, h)))
            if i > 0:
                layers.append(feature_norm(norm, h, conv=False))
            layers.append(nn.LeakyReLU(slope))
            width = h
        layers.append(weight_layer(norm, nn.Linear(width, 1)))
        self.net = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (B,)."""
        return self.net(torch.flatten(x, 1)).squeeze(1)
