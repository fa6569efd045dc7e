"""PacGAN packing (Lin et al. 2018): D judges m samples at once, concatenated into one input.

`PackedDiscriminator` wraps an inner D built for the packed input size: a batch (B, *shape) is
reshaped to (B/m, m * prod(shape)) and the inner D returns one logit per pack, so D sees
B/m logits for B samples. Real batches pack only reals and fake batches only fakes, which is
what lets D notice a generator that puts too little mass on some modes.

Penalties computed on the packed D stay per sample in the loop's sense: the input gradient of
sample i is the slice of its pack's gradient that belongs to it, so R1 (mean over samples of
the squared norm) equals the packed input's squared norm divided by m.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from torch import Tensor, nn

from ganstab.errors import ConfigError


def packed_shape(shape: Sequence[int], pack: int) -> tuple[int]:
    """The flat input shape of the inner D for samples of `shape` packed `pack` at a time."""
    if pack < 1:
        raise ValueError(f"pack must be >= 1, got {pack}")
    return (pack * math.prod(shape),)


class PackedDiscriminator(nn.Module):
    """(B, *shape) -> (B/m, m*prod(shape)) -> inner D -> logits (B/m,)."""

    def __init__(self, inner: nn.Module, pack: int) -> None:
        super().__init__()
        if pack < 1:
            raise ValueError(f"pack must be >= 1, got {pack}")
        self.inner = inner
        self.pack = pack

    def forward(self, x: Tensor, **kwargs: Any) -> Tensor:
        """Logits of shape (B/m,), one per pack of m consecutive samples."""
        batch = x.shape[0]
        if batch % self.pack:
            raise ValueError(f"batch of {batch} samples cannot be packed {self.pack} at a time; "
                             f"use a batch size divisible by model.pack={self.pack}")
        return self.inner(x.reshape(batch // self.pack, -1), **kwargs)


#: Architectures whose D takes flat vectors, so that packing is a reshape in front of it.
PACKABLE_ARCHS = ("toy", "mlp")


def check_packable(arch: str, pack: int) -> None:
    """Raise ConfigError when `model.pack` > 1 is asked of an architecture without a flat-input D."""
    if pack > 1 and arch not in PACKABLE_ARCHS:
        raise ConfigError(f"model.pack={pack} is implemented for model.arch={' and '.join(PACKABLE_ARCHS)} "
                          f"(flat-input discriminators), not {arch}; set model.pack=1")
