"""Progressively grown generator and discriminator (Karras et al. 2018).

Both networks hold blocks, toRGB and fromRGB layers for every resolution start..final from
construction on, so optimisers and checkpoints see one fixed parameter set; blocks above the
current resolution are simply not used until it is reached. The training loop passes the
current ``resolution`` and fade-in ``alpha`` (from ``ganstab.train.schedule.progressive_state``)
to every call, and should reset the Adam state when a resolution is added.

Fade-in while a new resolution r is being added (``alpha`` 0 -> 1):

    G(z) = alpha * toRGB_r(block_r(h)) + (1 - alpha) * upsample2(toRGB_{r/2}(h))
    D(x) = tail(alpha * block_r(fromRGB_r(x)) + (1 - alpha) * fromRGB_{r/2}(avgpool2(x)))

and the real images are faded the same way by ``fade_reals`` so D never sees reals sharper
than the fakes. G's output is linear (no tanh), as in the paper; images live in [-1, 1].

Channel widths: ``min(max_width, width * final_size // resolution)``, i.e. ``width`` channels
at the final resolution, doubling for every halving of the resolution, capped at ``max_width``.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from ganstab.models.layers import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm

LRELU_SLOPE = 0.2
D_NORMS = ("none", "layer", "instance", "spectral")


def is_pow2(n: int) -> bool:
    """Return True when ``n`` is a positive power of two."""
    try:
        value = operator.index(n)
    except TypeError:
        return False
    return value >= 1 and (value & (value - 1)) == 0


def next_pow2(n: int) -> int:
    """Return the smallest power of two that is >= ``n`` (``n`` >= 1), e.g. 28 -> 32, 32 -> 32."""
    if n < 1:
        raise ValueError(f"next_pow2 needs n >= 1, got {n}")
    return 1 << (int(n) - 1).bit_length()


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour x2 upsampling of (N, C, H, W)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample2(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling of (N, C, H, W)."""
    return F.avg_pool2d(x, kernel_size=2)


def fade_blend(high: torch.Tensor, low: torch.Tensor, alpha: float) -> torch.Tensor:
    """Fade-in blend used by G and ``fade_reals``: alpha * high + (1 - alpha) * upsample2(low)."""
    return alpha * high + (1.0 - alpha) * upsample2(low)


def _check_alpha(alpha: float) -> float:
    """Return alpha as a float, refusing values outside [0, 1]."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"fade-in alpha must lie in [0, 1], got {alpha}")
    return alpha


def downsample_to(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Average-pool square power-of-two images down to ``resolution`` by repeated 2x2 pooling."""
    size = x.shape[-1]
    if x.shape[-2] != size or not is_pow2(size):
        raise ValueError(f"expected square power-of-two images, got spatial shape {tuple(x.shape[-2:])}")
    if not is_pow2(resolution) or resolution > size:
        raise ValueError(f"resolution must be a power of two <= {size}, got {resolution}")
    while x.shape[-1] > resolution:
        x = downsample2(x)
    return x


def fade_reals(x_full: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
    """Real images at ``resolution``, blended with their upsampled half-resolution version by alpha.

    alpha = 1 gives plain average pooling to ``resolution``; alpha = 0 gives the
    nearest-upsampled ``resolution // 2`` pooling, exactly as G's output is blended.
    """
    alpha = _check_alpha(alpha)
    x_res = downsample_to(x_full, resolution)
    if alpha >= 1.0:
        return x_res
    if resolution < 2:
        raise ValueError("fade_reals with alpha < 1 needs resolution >= 2")
    return fade_blend(x_res, downsample2(x_res), alpha)


def pad_to_pow2(x: torch.Tensor, fill: float = -1.0) -> torch.Tensor:
    """Pad H and W up to the next power of two with ``fill`` (-1 = black in [-1, 1]), centred.

    For 28x28 data (MNIST-like, black background) this gives 32x32 with a 2-pixel border on
    every side; ``crop_from_pow2(y, 28)`` undoes it on generated samples.
    """
    h, w = x.shape[-2:]
    th, tw = next_pow2(h), next_pow2(w)
    top, left = (th - h) // 2, (tw - w) // 2
    return F.pad(x, (left, tw - w - left, top, th - h - top), value=fill)


def crop_from_pow2(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Centre-crop images padded by ``pad_to_pow2`` back to ``size`` (int or (H, W))."""
    h, w = (size, size) if isinstance(size, int) else size
    ph, pw = x.shape[-2:]
    if h > ph or w > pw:
        raise ValueError(f"cannot crop {(ph, pw)} images to larger size {(h, w)}")
    top, left = (ph - h) // 2, (pw - w) // 2
    return x[..., top : top + h, left : left + w]


def _resolutions(start: int, final_size: int) -> tuple[int, ...]:
    """Validate start/final and list the resolutions start, 2*start, ..., final_size."""
    if not is_pow2(start) or not is_pow2(final_size) or start < 2:
        raise ValueError(
            f"start and final_size must be powers of two (start >= 2), got start={start}, "
            f"final_size={final_size}; pad 28x28 data to 32 with pad_to_pow2"
        )
    if start > final_size:
        raise ValueError(f"start resolution {start} exceeds final_size {final_size}")
    return tuple(start << k for k in range(int(math.log2(final_size // start)) + 1))


def _widths(resolutions: tuple[int, ...], final_size: int, width: int, max_width: int) -> dict[int, int]:
    """Channels per resolution: width at final_size, doubling per halving, capped at max_width."""
    if width < 1 or max_width < 1:
        raise ValueError(f"width and max_width must be >= 1, got {width}, {max_width}")
    return {res: min(max_width, width * (final_size // res)) for res in resolutions}


def _stage(resolution: int, resolutions: tuple[int, ...]) -> int:
    """Index of ``resolution`` in ``resolutions`` or a ValueError listing the valid ones."""
    if resolution not in resolutions:
        raise ValueError(f"resolution {resolution} not among the network's resolutions {list(resolutions)}")
    return resolutions.index(resolution)


class _GInitialBlock(nn.Module):
    """Latent -> (C, start, start): (pixel-normalised latent), dense, conv 3x3."""

    def __init__(self, latent_dim: int, out_ch: int, start: int, pixel_norm: bool, equalized: bool) -> None:
        """Build the dense projection and the 3x3 conv."""
        super().__init__()
        self.out_ch = out_ch
        self.start = start
        self.latent_norm: nn.Module = PixelNorm() if pixel_norm else nn.Identity()
        # Gain sqrt(2)/4: the dense layer plays the paper's 4x4 conv on a 1x1 latent, whose
        # He constant counts fan_in = latent_dim * 16.
        self.dense = EqualizedLinear(
            latent_dim, out_ch * start * start, gain=math.sqrt(2.0) / 4, equalized=equalized
        )
        self.conv = EqualizedConv2d(out_ch, out_ch, 3, padding=1, equalized=equalized)
        self.norm: nn.Module = PixelNorm() if pixel_norm else nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map (N, latent_dim) to (N, C, start, start) features."""
        h = self.dense(self.latent_norm(z)).view(z.shape[0], self.out_ch, self.start, self.start)
        h = self.norm(F.leaky_relu(h, LRELU_SLOPE))
        return self.norm(F.leaky_relu(self.conv(h), LRELU_SLOPE))


class _GBlock(nn.Module):
    """Upsample x2, then two 3x3 convs, each followed by LeakyReLU 0.2 and (optional) pixel norm."""

    def __init__(self, in_ch: int, out_ch: int, pixel_norm: bool, equalized: bool) -> None:
        """Build the two convs."""
        super().__init__()
        self.conv1 = EqualizedConv2d(in_ch, out_ch, 3, padding=1, equalized=equalized)
        self.conv2 = EqualizedConv2d(out_ch, out_ch, 3, padding=1, equalized=equalized)
        self.norm: nn.Module = PixelNorm() if pixel_norm else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map (N, in_ch, r/2, r/2) to (N, out_ch, r, r)."""
        h = upsample2(h)
        h = self.norm(F.leaky_relu(self.conv1(h), LRELU_SLOPE))
        return self.norm(F.leaky_relu(self.conv2(h), LRELU_SLOPE))


class ProgressiveGenerator(nn.Module):
    """Karras et al. 2018 generator: G(z, resolution, alpha) -> (N, channels, resolution, resolution)."""

    def __init__(
        self,
        latent_dim: int,
        channels: int,
        final_size: int,
        start: int = 4,
        width: int = 64,
        max_width: int = 256,
        pixel_norm: bool = True,
        equalized_lr: bool = True,
    ) -> None:
        """Create blocks and toRGB layers for every resolution start..final_size (powers of two)."""
        super().__init__()
        self.latent_dim = latent_dim
        self.channels = channels
        self.final_size = final_size
        self.start = start
        self.resolutions = _resolutions(start, final_size)
        self.widths = _widths(self.resolutions, final_size, width, max_width)
        self.initial = _GInitialBlock(latent_dim, self.widths[start], start, pixel_norm, equalized_lr)
        self.blocks = nn.ModuleDict(
            {
                str(res): _GBlock(self.widths[res // 2], self.widths[res], pixel_norm, equalized_lr)
                for res in self.resolutions[1:]
            }
        )
        self.to_rgb = nn.ModuleDict(
            {
                str(res): EqualizedConv2d(self.widths[res], channels, 1, gain=1.0, equalized=equalized_lr)
                for res in self.resolutions
            }
        )

    def forward(self, z: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
        """Generate images at ``resolution``, fading in its block with weight ``alpha``.

        ``alpha`` is ignored at the start resolution (there is nothing to fade from).
        """
        stage = _stage(resolution, self.resolutions)
        alpha = _check_alpha(alpha)
        h = self.initial(z)
        for res in self.resolutions[1:stage]:
            h = self.blocks[str(res)](h)
        if stage == 0:
            return self.to_rgb[str(resolution)](h)
        new = self.to_rgb[str(resolution)](self.blocks[str(resolution)](h))
        if alpha >= 1.0:
            return new
        return fade_blend(new, self.to_rgb[str(resolution // 2)](h), alpha)


def _d_norm(kind: str, ch: int) -> nn.Module:
    """Normalisation layer for D's convs; spectral norm is applied to weights separately."""
    if kind == "layer":
        return nn.GroupNorm(1, ch)
    if kind == "instance":
        return nn.InstanceNorm2d(ch, affine=True)
    return nn.Identity()


class _DBlock(nn.Module):
    """Two 3x3 convs (norm, LeakyReLU 0.2 after each), then 2x2 average pooling."""

    def __init__(self, in_ch: int, out_ch: int, norm: str, equalized: bool) -> None:
        """Build the two convs and their norms."""
        super().__init__()
        self.conv1 = EqualizedConv2d(in_ch, in_ch, 3, padding=1, equalized=equalized)
        self.norm1 = _d_norm(norm, in_ch)
        self.conv2 = EqualizedConv2d(in_ch, out_ch, 3, padding=1, equalized=equalized)
        self.norm2 = _d_norm(norm, out_ch)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map (N, in_ch, r, r) to (N, out_ch, r/2, r/2)."""
        h = F.leaky_relu(self.norm1(self.conv1(h)), LRELU_SLOPE)
        h = F.leaky_relu(self.norm2(self.conv2(h)), LRELU_SLOPE)
        return downsample2(h)


class _DFinalBlock(nn.Module):
    """At the start resolution: minibatch stddev, conv 3x3, dense to features, dense to 1 logit."""

    def __init__(self, ch: int, start: int, mbstd_group: int, norm: str, equalized: bool) -> None:
        """Build the tail; ``mbstd_group`` 0 leaves out the minibatch stddev channel."""
        super().__init__()
        self.mbstd: nn.Module = MinibatchStdDev(mbstd_group) if mbstd_group > 0 else nn.Identity()
        in_ch = ch + (1 if mbstd_group > 0 else 0)
        self.conv = EqualizedConv2d(in_ch, ch, 3, padding=1, equalized=equalized)
        self.norm = _d_norm(norm, ch)
        self.dense = EqualizedLinear(ch * start * start, ch, equalized=equalized)
        self.out = EqualizedLinear(ch, 1, gain=1.0, equalized=equalized)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map (N, C, start, start) features to (N,) logits."""
        h = F.leaky_relu(self.norm(self.conv(self.mbstd(h))), LRELU_SLOPE)
        h = F.leaky_relu(self.dense(h.flatten(1)), LRELU_SLOPE)
        return self.out(h).squeeze(1)


class ProgressiveDiscriminator(nn.Module):
    """Karras et al. 2018 discriminator: D(x, resolution, alpha) -> (N,) logits.

    ``norm`` is one of "none", "layer", "instance", "spectral"; batch norm is refused because
    progressive growing is trained with WGAN-GP, whose per-sample penalty batch norm breaks.
    Spectral norm requires ``equalized_lr=False`` (both rescale the weights).
    """

    def __init__(
        self,
        channels: int,
        final_size: int,
        start: int = 4,
        width: int = 64,
        max_width: int = 256,
        mbstd_group: int = 4,
        equalized_lr: bool = True,
        norm: str = "none",
    ) -> None:
        """Create fromRGB layers and blocks for every resolution start..final_size."""
        super().__init__()
        if norm == "batch":
            raise ValueError(
                "batch norm is not allowed in the progressive discriminator: it couples samples "
                "and breaks the per-sample gradient penalty; use one of " + ", ".join(D_NORMS)
            )
        if norm not in D_NORMS:
            raise ValueError(f"unknown discriminator norm {norm!r}; known: {', '.join(D_NORMS)}")
        if norm == "spectral" and equalized_lr:
            raise ValueError(
                "spectral norm and equalized learning rate both rescale the weights; "
                "set equalized_lr=False to use norm='spectral'"
            )
        if mbstd_group < 0:
            raise ValueError(f"mbstd_group must be >= 0 (0 disables), got {mbstd_group}")
        self.channels = channels
        self.final_size = final_size
        self.start = start
        self.mbstd_group = mbstd_group
        self.resolutions = _resolutions(start, final_size)
        self.widths = _widths(self.resolutions, final_size, width, max_width)
        self.from_rgb = nn.ModuleDict(
            {
                str(res): EqualizedConv2d(channels, self.widths[res], 1, equalized=equalized_lr)
                for res in self.resolutions
            }
        )
        self.blocks = nn.ModuleDict(
            {
                str(res): _DBlock(self.widths[res], self.widths[res // 2], norm, equalized_lr)
                for res in self.resolutions[1:]
            }
        )
        self.final = _DFinalBlock(self.widths[start], start, mbstd_group, norm, equalized_lr)
        if norm == "spectral":
            layers = [m for m in self.modules() if isinstance(m, (EqualizedConv2d, EqualizedLinear))]
            for layer in layers:
                nn.utils.parametrizations.spectral_norm(layer)

    def forward(self, x: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
        """Score (N, channels, resolution, resolution) images, fading in the new block by ``alpha``.

        ``alpha`` is ignored at the start resolution (there is nothing to fade from).
        """
        stage = _stage(resolution, self.resolutions)
        alpha = _check_alpha(alpha)
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[-2:] != (resolution, resolution):
            raise ValueError(
                f"discriminator at resolution {resolution} expects (N, {self.channels}, "
                f"{resolution}, {resolution}) images, got {tuple(x.shape)}"
            )
        h = self.from_rgb[str(resolution)](x)
        h = F.leaky_relu(h, LRELU_SLOPE)
        if stage > 0:
            h = self.blocks[str(resolution)](h)
            if alpha < 1.0:
                old = F.leaky_relu(self.from_rgb[str(resolution // 2)](downsample2(x)), LRELU_SLOPE)
                h = alpha * h + (1.0 - alpha) * old
        for res in reversed(self.resolutions[1:stage]):
            h = self.blocks[str(res)](h)
        return self.final(h)
