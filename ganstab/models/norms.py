"""Normalisation choices for G and D: batch, instance, layer, spectral, none."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def feature_norm(kind: str, features: int, conv: bool) -> nn.Module:
    """The normalisation layer placed after a linear/conv layer (Identity for spectral/none)."""
    if kind == "batch":
        return nn.BatchNorm2d(features) if conv else nn.BatchNorm1d(features)
    if kind == "instance":
        if not conv:
            raise ValueError("instance norm needs conv feature maps; use layer norm for MLP models")
        return nn.InstanceNorm2d(features, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)
    if kind in ("spectral", "none"):
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def weight_layer(kind: str, layer: nn.Module) -> nn.Module:
    """Wrap a linear/conv layer with spectral normalisation when `kind` is 'spectral'."""
    return spectral_norm(layer) if kind == "spectral" else layer
