"""SN-GAN ResNet generator and discriminator (Miyato et al. 2018, the CIFAR-10 ResNet).

- G: z -> Linear -> (width, b_h, b_w) -> up blocks to the image size (3 for 32, 4 for 64) ->
  Norm-ReLU-conv3x3-tanh. Up block: Norm-ReLU-upsample-conv3x3-Norm-ReLU-conv3x3, plus an
  upsample-conv1x1 shortcut.
- D: optimised block (conv3x3-ReLU-conv3x3-avgpool, shortcut avgpool-conv1x1) -> down blocks
  (ReLU-conv3x3-ReLU-conv3x3-avgpool, shortcut conv1x1-avgpool) to 8x8 -> two blocks at 8x8 ->
  ReLU -> sum over pixels -> Linear -> one logit per sample.

`width` is the channel count of every block; SN-GAN's CIFAR model is G width 256 with batch norm
and D width 128 with spectral norm (the defaults here). Weights start Xavier-uniform, gain sqrt(2)
in residual branches and 1 in shortcuts and linear layers, as in SN-GAN. Norm kinds are the
repo's (`feature_norm`, `weight_layer`): 'spectral' wraps every conv and linear layer.

28x28 data use the 32x32 networks with a 2-pixel border of background -1 (the progressive-growing
convention): G's 32x32 output is cropped centrally to 28, D pads its 28x28 input to 32 with -1.

Non-square (C, H, W) images are planned per dimension, not padded (a side of 28 alone is padded to 32):
the network sides must be b_h*2^k and b_w*2^k with b in 3..8 and the same k >= 3 (`plan_sides`). G starts from a
(b_h, b_w) map instead of 4x4 and D's blocks, convolutions and average pools work on any H x W
(its sum pooling reads whatever map is left), so 48x32 uses G 6x4 -> 48x32 and D 48x32 -> 12x8.
Squares of side 32 and 64 get exactly SN-GAN's networks; 40, 48, 56, 80, ... are planned the same way.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ganstab.config import image_hw
from ganstab.models.dcgan import plan_sides
from ganstab.models.norms import feature_norm, weight_layer

__all__ = [
    "SUPPORTED_SIDES",
    "MIN_STEPS",
    "resnet_plan",
    "DownBlock",
    "OptimizedBlock",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "UpBlock",
    "resnet_side_ok",
]

SUPPORTED_SIDES = (24, 28, 32, 40, 48, 56, 64)  # the square sides up to 64 (H x W: planned per dimension, see above)
PADDED_SIDE = {28: 32}  # data side -> side the networks work at
MIN_STEPS = 3  # G's up blocks (D's halvings + 1): SN-GAN's 4x4 -> 32x32 at least
BACKGROUND = -1.0  # the fill of the border added to 28x28 images
RESIDUAL_GAIN = math.sqrt(2.0)


def resnet_plan(height: int, width: int) -> tuple[int, int, int] | None:
    """(base height, base width, up blocks) of the networks for (H, W) data (28 read as 32), or None."""
    return plan_sides(PADDED_SIDE.get(height, height), PADDED_SIDE.get(width, width), MIN_STEPS)


def resnet_side_ok(height: int, width: int | None = None) -> str | None:
    """None when the ResNet models support (H, W) images (W defaults to H), else a one-line message naming the fix."""
    width = height if width is None else width
    if resnet_plan(height, width) is not None:
        return None
    return (f"model.arch=resnet needs image sides b*2^k with b in 3..8 and the same k >= 3 for height and width "
            f"(28 is padded to 32; e.g. 32, 48, 64, 48x32), got {height}x{width}; "
            "set data.image_size=32 (or 64, or [48, 32]) to resize")


def _network_plan(height: int, width: int) -> tuple[int, int, int]:
    """(base height, base width, up blocks) the networks are built for; ValueError for unsupported sizes."""
    plan = resnet_plan(height, width)
    if plan is None:
        raise ValueError(resnet_side_ok(height, width))
    return plan


def _init(norm: str, layer: nn.Conv2d | nn.Linear, gain: float) -> nn.Module:
    """Xavier-uniform weight with `gain`, zero bias, then spectral norm when `norm` is 'spectral'."""
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return weight_layer(norm, layer)


def _sequential(*layers: nn.Module) -> nn.Sequential:
    """nn.Sequential without the Identity placeholders that `feature_norm` returns for spectral/none."""
    return nn.Sequential(*[layer for layer in layers if not isinstance(layer, nn.Identity)])


class UpBlock(nn.Module):
    """G's residual block: Norm-ReLU-upsample-conv3x3-Norm-ReLU-conv3x3 + upsample-conv1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        """Double the side; `norm` is the feature norm (and spectral wrap) of the block."""
        super().__init__()
        self.residual = _sequential(
            feature_norm(norm, in_channels, conv=True), nn.ReLU(), nn.Upsample(scale_factor=2),
            _init(norm, nn.Conv2d(in_channels, out_channels, 3, padding=1), RESIDUAL_GAIN),
            feature_norm(norm, out_channels, conv=True), nn.ReLU(),
            _init(norm, nn.Conv2d(out_channels, out_channels, 3, padding=1), RESIDUAL_GAIN),
        )
        self.shortcut = _sequential(nn.Upsample(scale_factor=2),
                                    _init(norm, nn.Conv2d(in_channels, out_channels, 1), 1.0))

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, s, s) -> (B, out, 2s, 2s)."""
        return self.residual(x) + self.shortcut(x)


class OptimizedBlock(nn.Module):
    """D's first block: conv3x3-Norm-ReLU-conv3x3-avgpool + avgpool-conv1x1 shortcut (no ReLU on the image)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        """Halve the side; `norm` is the feature norm (and spectral wrap) of the block."""
        super().__init__()
        self.residual = _sequential(
            _init(norm, nn.Conv2d(in_channels, out_channels, 3, padding=1), RESIDUAL_GAIN),
            feature_norm(norm, out_channels, conv=True), nn.ReLU(),
            _init(norm, nn.Conv2d(out_channels, out_channels, 3, padding=1), RESIDUAL_GAIN),
            nn.AvgPool2d(2),
        )
        self.shortcut = _sequential(nn.AvgPool2d(2), _init(norm, nn.Conv2d(in_channels, out_channels, 1), 1.0))

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, s, s) -> (B, out, s/2, s/2)."""
        return self.residual(x) + self.shortcut(x)


class DownBlock(nn.Module):
    """D's residual block: Norm-ReLU-conv3x3-Norm-ReLU-conv3x3[-avgpool] + conv1x1[-avgpool] shortcut."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, downsample: bool) -> None:
        """Halve the side when `downsample`; the shortcut is the identity when nothing changes shape."""
        super().__init__()
        pool = [nn.AvgPool2d(2)] if downsample else []
        self.residual = _sequential(
            feature_norm(norm, in_channels, conv=True), nn.ReLU(),
            _init(norm, nn.Conv2d(in_channels, out_channels, 3, padding=1), RESIDUAL_GAIN),
            feature_norm(norm, out_channels, conv=True), nn.ReLU(),
            _init(norm, nn.Conv2d(out_channels, out_channels, 3, padding=1), RESIDUAL_GAIN),
            *pool,
        )
        learnable = downsample or in_channels != out_channels
        self.shortcut = (_sequential(_init(norm, nn.Conv2d(in_channels, out_channels, 1), 1.0), *pool)
                         if learnable else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        """(B, in, s, s) -> (B, out, s or s/2, ...)."""
        return self.residual(x) + self.shortcut(x)


class ResNetGenerator(nn.Module):
    """SN-GAN ResNet G: z -> Linear to (width, b_h, b_w) -> up blocks -> Norm-ReLU-conv3x3-tanh (28: cropped from
    32)."""

    def __init__(self, latent_dim: int, channels: int, side: int | Sequence[int], width: int = 256,
                 norm: str = "batch") -> None:
        """Images (channels, H, W) for `side` N or (H, W) (see the module docstring); `width` channels per block."""
        super().__init__()
        self.latent_dim = latent_dim
        self.side = side
        self.out_hw = image_hw(side)
        self.width = width
        base_h, base_w, steps = _network_plan(*self.out_hw)
        self.base = (base_h, base_w)
        self.project = _init(norm, nn.Linear(latent_dim, width * base_h * base_w), 1.0)
        blocks = [UpBlock(width, width, norm) for _ in range(steps)]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = _sequential(
            feature_norm(norm, width, conv=True), nn.ReLU(),
            _init(norm, nn.Conv2d(width, channels, 3, padding=1), 1.0), nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Images (B, channels, H, W) in [-1, 1]."""
        h = self.project(z).view(z.shape[0], self.width, *self.base)
        images = self.to_image(self.blocks(h))
        (height, width), (net_h, net_w) = self.out_hw, images.shape[-2:]
        if (net_h, net_w) != (height, width):
            top, left = (net_h - height) // 2, (net_w - width) // 2
            images = images[..., top:top + height, left:left + width]
        return images


class ResNetDiscriminator(nn.Module):
    """SN-GAN ResNet D: optimised block -> blocks down to 8x8 -> 2 blocks -> ReLU -> sum pool -> Linear."""

    def __init__(self, channels: int, side: int | Sequence[int], width: int = 128, norm: str = "spectral") -> None:
        """D for (channels, H, W) images, `side` N or (H, W); a side of 28 is padded to 32 with -1."""
        super().__init__()
        self.side = side
        height, width_px = image_hw(side)
        base_h, base_w, steps = _network_plan(height, width_px)
        net_h, net_w = base_h * 2 ** steps, base_w * 2 ** steps
        # F.pad order: (left, right, top, bottom)
        self.border = ((net_w - width_px) // 2, (net_w - width_px) // 2, (net_h - height) // 2, (net_h - height) // 2)
        blocks: list[nn.Module] = [OptimizedBlock(channels, width, norm)]
        blocks += [DownBlock(width, width, norm, downsample=True) for _ in range(steps - 2)]
        blocks += [DownBlock(width, width, norm, downsample=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.head = _init(norm, nn.Linear(width, 1), 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (B,)."""
        if any(self.border):
            x = F.pad(x, self.border, value=BACKGROUND)
        features = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.head(features).squeeze(1)
