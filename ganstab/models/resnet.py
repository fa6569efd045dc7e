"""SN-GAN ResNet generator and discriminator (Miyato et al. 2018, the CIFAR-10 ResNet).

- G: z -> Linear -> (width, 4, 4) -> up blocks to the image side (3 for 32, 4 for 64) ->
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
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ganstab.models.norms import feature_norm, weight_layer

__all__ = [
    "SUPPORTED_SIDES",
    "DownBlock",
    "OptimizedBlock",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "UpBlock",
    "resnet_side_ok",
]

SUPPORTED_SIDES = (28, 32, 64)
PADDED_SIDE = {28: 32}  # data side -> side the networks work at
BACKGROUND = -1.0  # the fill of the border added to 28x28 images
RESIDUAL_GAIN = math.sqrt(2.0)


def resnet_side_ok(side: int) -> str | None:
    """None when the ResNet models support images of this side, else a one-line message naming the fix."""
    if side in SUPPORTED_SIDES:
        return None
    return (f"model.arch=resnet supports image sides 28, 32 and 64, got {side}; "
            "set data.image_size=32 (or 28/64) to resize")


def _network_side(side: int) -> int:
    """The side the networks are built for (28 -> 32); ValueError for unsupported sides."""
    problem = resnet_side_ok(side)
    if problem is not None:
        raise ValueError(problem)
    return PADDED_SIDE.get(side, side)


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
    """SN-GAN ResNet G: z -> Linear to (width, 4, 4) -> up blocks -> Norm-ReLU-conv3x3-tanh (28: cropped from 32)."""

    def __init__(self, latent_dim: int, channels: int, side: int, width: int = 256, norm: str = "batch") -> None:
        """Images (channels, side, side) for side 28, 32 or 64; `width` channels in every block."""
        super().__init__()
        self.latent_dim = latent_dim
        self.side = side
        self.width = width
        net_side = _network_side(side)
        self.project = _init(norm, nn.Linear(latent_dim, width * 4 * 4), 1.0)
        blocks = [UpBlock(width, width, norm) for _ in range(int(math.log2(net_side // 4)))]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = _sequential(
            feature_norm(norm, width, conv=True), nn.ReLU(),
            _init(norm, nn.Conv2d(width, channels, 3, padding=1), 1.0), nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Images (B, channels, side, side) in [-1, 1]."""
        h = self.project(z).view(z.shape[0], self.width, 4, 4)
        images = self.to_image(self.blocks(h))
        border = (images.shape[-1] - self.side) // 2
        if border:
            images = images[..., border:border + self.side, border:border + self.side]
        return images


class ResNetDiscriminator(nn.Module):
    """SN-GAN ResNet D: optimised block -> blocks down to 8x8 -> 2 blocks -> ReLU -> sum pool -> Linear."""

    def __init__(self, channels: int, side: int, width: int = 128, norm: str = "spectral") -> None:
        """D for (channels, side, side) images, side 28 (padded to 32 with -1), 32 or 64."""
        super().__init__()
        self.side = side
        net_side = _network_side(side)
        self.border = (net_side - side) // 2
        blocks: list[nn.Module] = [OptimizedBlock(channels, width, norm)]
        blocks += [DownBlock(width, width, norm, downsample=True) for _ in range(int(math.log2(net_side)) - 4)]
        blocks += [DownBlock(width, width, norm, downsample=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.head = _init(norm, nn.Linear(width, 1), 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (B,)."""
        if self.border:
            x = F.pad(x, (self.border,) * 4, value=BACKGROUND)
        features = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.head(features).squeeze(1)
