"""SN-GAN ResNet generator and discriminator in ganstab.models.resnet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.testing import assert_close

from ganstab.models.resnet import (
    DownBlock,
    OptimizedBlock,
    ResNetDiscriminator,
    ResNetGenerator,
    UpBlock,
    resnet_side_ok,
)

WIDTH = 16
LATENT = 8


def _z(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, LATENT, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("channels,side", [(1, 28), (1, 32), (3, 32), (3, 64)])
def test_shapes_and_range(channels: int, side: int) -> None:
    torch.manual_seed(0)
    g = ResNetGenerator(LATENT, channels, side, width=WIDTH)
    d = ResNetDiscriminator(channels, side, width=WIDTH)
    images = g(_z(3))
    assert images.shape == (3, channels, side, side)
    assert bool(((images >= -1) & (images <= 1)).all())
    assert d(images).shape == (3,)


@pytest.mark.parametrize("side,up_blocks,down_blocks", [(28, 3, 1), (32, 3, 1), (64, 4, 2)])
def test_block_counts_follow_sn_gan(side: int, up_blocks: int, down_blocks: int) -> None:
    g = ResNetGenerator(LATENT, 1, side, width=WIDTH)
    d = ResNetDiscriminator(1, side, width=WIDTH)
    assert sum(isinstance(m, UpBlock) for m in g.modules()) == up_blocks
    assert isinstance(d.blocks[0], OptimizedBlock)
    downs = [m for m in d.blocks if isinstance(m, DownBlock)]
    assert len(downs) == down_blocks + 2
    assert [isinstance(m.shortcut, nn.Identity) for m in downs] == [False] * down_blocks + [True, True]


def test_28_discriminator_equals_32_discriminator_on_input_padded_with_minus_one() -> None:
    torch.manual_seed(0)
    d28 = ResNetDiscriminator(1, 28, width=WIDTH).eval()
    d32 = ResNetDiscriminator(1, 32, width=WIDTH).eval()
    d32.load_state_dict(d28.state_dict())
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    assert_close(d28(x), d32(F.pad(x, (2, 2, 2, 2), value=-1.0)))


def test_28_generator_is_the_32_generator_cropped_centrally() -> None:
    torch.manual_seed(0)
    g28 = ResNetGenerator(LATENT, 1, 28, width=WIDTH).eval()
    g32 = ResNetGenerator(LATENT, 1, 32, width=WIDTH).eval()
    g32.load_state_dict(g28.state_dict())
    z = _z(2)
    assert_close(g28(z), g32(z)[..., 2:30, 2:30])


def test_spectral_norm_wraps_every_d_layer_only_when_asked() -> None:
    spectral = ResNetDiscriminator(3, 32, width=WIDTH, norm="spectral")
    layers = [m for m in spectral.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 2 + 1 + 2 + 1 + 2 + 2 + 1  # optimised (2 + shortcut), down (2 + shortcut), 2 x 2, head
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in spectral.modules())
    plain = ResNetDiscriminator(3, 32, width=WIDTH, norm="none")
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_generator_uses_batch_norm_by_default() -> None:
    g = ResNetGenerator(LATENT, 3, 32, width=WIDTH)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 2 * 3 + 1
    assert not any(parametrize.is_parametrized(m) for m in g.modules())


def test_gradient_flows_from_d_logit_to_every_g_parameter() -> None:
    torch.manual_seed(0)
    g = ResNetGenerator(LATENT, 1, 28, width=WIDTH)
    d = ResNetDiscriminator(1, 28, width=WIDTH)
    d(g(_z(4))).sum().backward()
    grads = [p.grad for p in g.parameters()]
    assert all(grad is not None and bool(torch.isfinite(grad).all()) for grad in grads)
    assert float(torch.stack([grad.norm() for grad in grads]).sum()) > 0
    assert float(g.project.weight.grad.norm()) > 0


def test_unsupported_side_message() -> None:
    message = ("model.arch=resnet needs image sides b*2^k with b in 3..8 and the same k >= 3 for height and width "
               "(28 is padded to 32; e.g. 32, 48, 64, 48x32), got 36x36; "
               "set data.image_size=32 (or 64, or [48, 32]) to resize")
    assert resnet_side_ok(36) == message
    assert [resnet_side_ok(side) for side in (24, 28, 32, 40, 48, 56, 64)] == [None] * 7
    with pytest.raises(ValueError) as raised:
        ResNetGenerator(LATENT, 3, 36, width=WIDTH)
    assert str(raised.value) == message
