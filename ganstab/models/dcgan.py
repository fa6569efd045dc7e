"""DCGAN-style conv G and D for (C, H, W) images whose sides are b_h*2^k and b_w*2^k with b in 3..8 and the
same k >= 1 (8, 12, 14, 16, 28, 32, 64, 48x32, 64x48, ...): G projects z to a (b_h, b_w) map and doubles both
sides k times; D halves them k times and reads the (b_h, b_w) map. The largest k is used, so the square
sides that fitted before (4*2^k, 7*2^k) keep their networks."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ganstab.config import image_hw
from ganstab.models.norms import feature_norm, weight_layer

__all__ = ["BASE_SIDES", "plan_sides", "conv_plan", "conv_plan_hw", "DCGANGenerator", "DCGANDiscriminator"]

BASE_SIDES = range(3, 9)  # sides of the smallest map (squares keep 4 or 7: 32/64, 28); 3..8 allows 48x32, 64x48
MAX_STEPS = 10  # 2^10 = 1024, the largest data.image_size


def plan_sides(height: int, width: int, min_steps: int = 1) -> tuple[int, int, int] | None:
    """(base height, base width, k) with height = base_h*2^k, width = base_w*2^k, both bases in 3..8 and
    k >= min_steps (the largest such k, so 32 is 4*2^3, not 8*2^2), or None when there is none."""
    for steps in range(MAX_STEPS, min_steps - 1, -1):
        scale = 2 ** steps
        if height % scale or width % scale:
            continue
        if height // scale in BASE_SIDES and width // scale in BASE_SIDES:
            return height // scale, width // scale, steps
    return None


def conv_plan_hw(height: int, width: int) -> tuple[int, int, int]:
    """(base height, base width, number of 2x steps) for (H, W) images, or ValueError when they do not fit."""
    plan = plan_sides(height, width, 1)
    if plan is None:
        raise ValueError(f"{height}x{width} is not b_h*2^k x b_w*2^k with b in 3..8 and k >= 1")
    return plan


def conv_plan(size: int) -> tuple[int, int]:
    """(base side, number of 2x steps) for a square image side, or ValueError when it does not fit."""
    plan = plan_sides(size, size, 1)
    if plan is None:
        raise ValueError(f"side {size} is not b*2^k with b in 3..8 and k >= 1")
    return plan[0], plan[2]


class DCGANGenerator(nn.Module):
    """z -> Linear to (C, b_h, b_w) -> [ConvT 4x4 stride 2 - Norm - ReLU] ... -> ConvT to image -> Tanh."""

    def __init__(self, latent_dim: int, channels: int, size: int | Sequence[int], width: int, norm: str) -> None:
        """Images (channels, H, W) for `size` N (square) or (H, W)."""
        super().__init__()
        base_h, base_w, steps = conv_plan_hw(*image_hw(size))
        self.latent_dim = latent_dim
        self.base = (base_h, base_w)
        ch = width * 2 ** (steps - 1)
        self.base_channels = ch
        self.project = weight_layer(norm, nn.Linear(latent_dim, ch * base_h * base_w))
        layers: list[nn.Module] = [feature_norm(norm, ch, conv=True), nn.ReLU()]
        for _ in range(steps - 1):
            layers += [weight_layer(norm, nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1)),
                       feature_norm(norm, ch // 2, conv=True), nn.ReLU()]
            ch //= 2
        layers += [weight_layer(norm, nn.ConvTranspose2d(ch, channels, 4, 2, 1)), nn.Tanh()]
        self.net = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])

    def forward(self, z: Tensor) -> Tensor:
        """Images (B, C, H, W) in [-1, 1]."""
        h = self.project(z).view(z.shape[0], self.base_channels, *self.base)
        return self.net(h)


class DCGANDiscriminator(nn.Module):
    """image -> Conv 4x4 stride 2 - LeakyReLU, then [Conv - Norm - LeakyReLU] ... -> Linear(1) logits."""

    def __init__(self, channels: int, size: int | Sequence[int], width: int, norm: str, slope: float = 0.2) -> None:
        """D for (channels, H, W) images, `size` N (square) or (H, W)."""
        super().__init__()
        base_h, base_w, steps = conv_plan_hw(*image_hw(size))
        ch = width
        layers: list[nn.Module] = [weight_layer(norm, nn.Conv2d(channels, ch, 4, 2, 1)), nn.LeakyReLU(slope)]
        for _ in range(steps - 1):
            layers += [weight_layer(norm, nn.Conv2d(ch, ch * 2, 4, 2, 1)),
                       feature_norm(norm, ch * 2, conv=True), nn.LeakyReLU(slope)]
            ch *= 2
        self.features = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.head = weight_layer(norm, nn.Linear(ch * base_h * base_w, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (B,)."""
        return self.head(self.features(x).flatten(1)).squeeze(1)
