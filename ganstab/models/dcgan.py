"""DCGAN-style conv G and D for square images of side 4*2^k or 7*2^k (8, 14, 16, 28, 32, 64, ...)."""

from __future__ import annotations

from torch import Tensor, nn

from ganstab.models.norms import feature_norm, weight_layer


def conv_plan(size: int) -> tuple[int, int]:
    """(base side, number of 2x steps) for an image side, or ValueError when it does not fit."""
    for base in (4, 7):
        steps = 0
        side = size
        while side > base and side % 2 == 0:
            side //= 2
            steps += 1
        if side == base and steps >= 1:
            return base, steps
    raise ValueError(f"side {size} is not 4*2^k or 7*2^k with k >= 1")


class DCGANGenerator(nn.Module):
    """z -> Linear to (C, s0, s0) -> [ConvT 4x4 stride 2 - Norm - ReLU] ... -> ConvT to image -> Tanh."""

    def __init__(self, latent_dim: int, channels: int, size: int, width: int, norm: str) -> None:
        super().__init__()
        base, steps = conv_plan(size)
        self.latent_dim = latent_dim
        self.base = base
        ch = width * 2 ** (steps - 1)
        self.base_channels = ch
        self.project = weight_layer(norm, nn.Linear(latent_dim, ch * base * base))
        layers: list[nn.Module] = [feature_norm(norm, ch, conv=True), nn.ReLU()]
        for _ in range(steps - 1):
            layers += [weight_layer(norm, nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1)),
                       feature_norm(norm, ch // 2, conv=True), nn.ReLU()]
            ch //= 2
        layers += [weight_layer(norm, nn.ConvTranspose2d(ch, channels, 4, 2, 1)), nn.Tanh()]
        self.net = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])

    def forward(self, z: Tensor) -> Tensor:
        """Images (B, C, size, size) in [-1, 1]."""
        h = self.project(z).view(z.shape[0], self.base_channels, self.base, self.base)
        return self.net(h)


class DCGANDiscriminator(nn.Module):
    """image -> Conv 4x4 stride 2 - LeakyReLU, then [Conv - Norm - LeakyReLU] ... -> Linear(1) logits."""

    def __init__(self, channels: int, size: int, width: int, norm: str, slope: float = 0.2) -> None:
        super().__init__()
        base, steps = conv_plan(size)
        ch = width
        layers: list[nn.Module] = [weight_layer(norm, nn.Conv2d(channels, ch, 4, 2, 1)), nn.LeakyReLU(slope)]
        for _ in range(steps - 1):
            layers += [weight_layer(norm, nn.Conv2d(ch, ch * 2, 4, 2, 1)),
                       feature_norm(norm, ch * 2, conv=True), nn.LeakyReLU(slope)]
            ch *= 2
        self.features = nn.Sequential(*[m for m in layers if not isinstance(m, nn.Identity)])
        self.head = weight_layer(norm, nn.Linear(ch * base * base, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape (B,)."""
        return self.head(self.features(x).flatten(1)).squeeze(1)
