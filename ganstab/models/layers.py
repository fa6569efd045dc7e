"""Building blocks of progressive growing (Karras et al. 2018).

- Equalised learning rate: weights are stored N(0, 1) and multiplied at run time by the He
  constant ``gain / sqrt(fan_in)``, so Adam's per-parameter step size acts equally on every layer.
  With ``equalized=False`` the same classes are ordinary He-initialised layers (scale 1).
- Pixel norm: each pixel's feature vector normalised to unit mean square (used in G).
- Minibatch standard deviation: one extra feature map per group of samples that carries the
  group's average standard deviation, so D can see a lack of variety (used in D's last block).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HE_GAIN = math.sqrt(2.0)


class _EqualizedBase(nn.Module):
    """Shared weight/bias set-up for the equalised-lr linear and conv layers."""

    def _init_params(self, shape: tuple[int, ...], fan_in: int, bias: bool, gain: float, equalized: bool) -> None:
        """Create weight (N(0,1) if equalised else N(0, He std)) and a zero bias."""
        he_std = gain / math.sqrt(fan_in)
        self.gain = float(gain)
        self.fan_in = int(fan_in)
        self.equalized = bool(equalized)
        self.scale = he_std if equalized else 1.0
        init_std = 1.0 if equalized else he_std
        self.weight = nn.Parameter(torch.randn(shape) * init_std)
        if bias:
            self.bias = nn.Parameter(torch.zeros(shape[0]))
        else:
            self.register_parameter("bias", None)

    def effective_weight(self) -> torch.Tensor:
        """The weight actually applied: stored weight times the run-time scale."""
        return self.weight * self.scale


class EqualizedLinear(_EqualizedBase):
    """Dense layer with equalised learning rate (run-time scale gain/sqrt(in_features))."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        gain: float = HE_GAIN,
        equalized: bool = True,
    ) -> None:
        """Create an (out_features, in_features) weight; ``equalized=False`` gives a plain He layer."""
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self._init_params((out_features, in_features), in_features, bias, gain, equalized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``x @ (weight * scale).T + bias``."""
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, gain={self.gain:.4g}, equalized={self.equalized}"
        )


class EqualizedConv2d(_EqualizedBase):
    """2-D convolution with equalised learning rate (run-time scale gain/sqrt(in_ch * k * k))."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        gain: float = HE_GAIN,
        equalized: bool = True,
    ) -> None:
        """Create a square-kernel conv; ``equalized=False`` gives a plain He-initialised conv."""
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        fan_in = in_channels * kernel_size * kernel_size
        self._init_params((out_channels, in_channels, kernel_size, kernel_size), fan_in, bias, gain, equalized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve with ``weight * scale``."""
        return F.conv2d(x, self.effective_weight(), self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, "
            f"gain={self.gain:.4g}, equalized={self.equalized}"
        )


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector: x / sqrt(mean over channels of x^2 + eps)."""

    def __init__(self, eps: float = 1e-8) -> None:
        """``eps`` keeps the division finite for an all-zero feature vector."""
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise over dim 1 (channels); works for (N, C) and (N, C, H, W)."""
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStdDev(nn.Module):
    """Append one feature map holding the average standard deviation of the sample's group.

    The batch is split into consecutive groups of ``group_size`` samples (samples 0..G-1 form
    the first group, and so on), so a batch made of reals followed by fakes, each a multiple of
    G, never mixes the two in a group. Per group: the standard deviation over the group of every
    feature at every pixel (biased, sqrt(var + 1e-8)), averaged over C, H, W to one number, which
    is appended as an extra constant channel to each sample of that group.
    When the batch is smaller than ``group_size`` the whole batch is one group (as in the paper's
    code), so a single small evaluation batch still works.
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8) -> None:
        """``group_size`` G >= 1 must divide the batch size (or exceed it)."""
        super().__init__()
        if group_size < 1:
            raise ValueError(f"minibatch stddev group size must be >= 1, got {group_size}")
        self.group_size = int(group_size)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, C, H, W) to (N, C + 1, H, W)."""
        n, c, h, w = x.shape
        group = min(self.group_size, n)
        if n % group != 0:
            raise ValueError(
                f"minibatch stddev group size {group} does not divide batch size {n}; "
                f"choose train.batch_size divisible by {group} or set progressive.mbstd_group "
                f"to a divisor"
            )
        grouped = x.reshape(n // group, group, c, h, w)
        variance = (grouped - grouped.mean(dim=1, keepdim=True)).pow(2).mean(dim=1)
        stddev = torch.sqrt(variance + self.eps).mean(dim=(1, 2, 3))
        stat_map = stddev.repeat_interleave(group).reshape(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, stat_map.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return f"group_size={self.group_size}"
