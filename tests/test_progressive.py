"""Tests for progressive growing: schedule, equalised-lr layers, minibatch stddev, G/D fade-in."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ganstab.models.layers import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm
from ganstab.models.progressive import (
    ProgressiveDiscriminator,
    ProgressiveGenerator,
    crop_from_pow2,
    fade_reals,
    pad_to_pow2,
)
from ganstab.training.schedule import (
    ProgressiveSchedule,
    epochs_to_images,
    next_pow2,
    phase_index,
    progressive_state,
    schedule_from_epochs,
)

SMALL = dict(width=4, max_width=8)


# ---------------------------------------------------------------- schedule

# start 4, final 16, 100 stable, 64 fade:
#   [0, 100) 4 stable | [100, 164) 8 fade | [164, 264) 8 stable
#   [264, 328) 16 fade | [328, inf) 16 stable
SCHED = ProgressiveSchedule(start=4, final=16, stable_images=100, fade_images=64)


@pytest.mark.parametrize(
    "images, resolution, alpha, phase",
    [
        (0, 4, 1.0, 0),
        (99, 4, 1.0, 0),
        (100, 8, 0.0, 1),
        (116, 8, 0.25, 1),
        (132, 8, 0.5, 1),
        (163, 8, 63 / 64, 1),
        (164, 8, 1.0, 1),
        (263, 8, 1.0, 1),
        (264, 16, 0.0, 2),
        (312, 16, 0.75, 2),
        (328, 16, 1.0, 2),
        (428, 16, 1.0, 2),
        (10**12, 16, 1.0, 2),
    ],
)
def test_schedule_boundaries_and_mid_fade(images: int, resolution: int, alpha: float, phase: int) -> None:
    assert progressive_state(images, SCHED) == (resolution, alpha)
    assert phase_index(images, SCHED) == phase


def test_schedule_properties_and_degenerate_cases() -> None:
    assert SCHED.resolutions == (4, 8, 16)
    assert SCHED.images_to_final == 328
    same = ProgressiveSchedule(start=32, final=32, stable_images=10, fade_images=10)
    assert [progressive_state(i, same) for i in (0, 5, 10**6)] == [(32, 1.0)] * 3
    no_fade = ProgressiveSchedule(start=4, final=8, stable_images=10, fade_images=0)
    assert progressive_state(9, no_fade) == (4, 1.0)
    assert progressive_state(10, no_fade) == (8, 1.0)
    assert phase_index(10, no_fade) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(start=3, final=16, stable_images=1, fade_images=1),
        dict(start=4, final=28, stable_images=1, fade_images=1),
        dict(start=16, final=8, stable_images=1, fade_images=1),
        dict(start=4, final=8, stable_images=-1, fade_images=1),
    ],
)
def test_schedule_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ProgressiveSchedule(**kwargs)


def test_schedule_rejects_negative_images() -> None:
    with pytest.raises(ValueError):
        progressive_state(-1, SCHED)


def test_epochs_to_images_and_half_half_split() -> None:
    assert epochs_to_images(2, 60000) == 120000
    assert epochs_to_images(0.5, 1000) == 500
    sched = schedule_from_epochs(4, 32, increase_every_epochs=1, dataset_size=1001)
    assert sched == ProgressiveSchedule(start=4, final=32, stable_images=501, fade_images=500)
    with pytest.raises(ValueError):
        epochs_to_images(0, 100)
    with pytest.raises(ValueError):
        epochs_to_images(1, 0)


def test_next_pow2() -> None:
    assert [next_pow2(n) for n in (1, 2, 3, 4, 5, 28, 32, 33)] == [1, 2, 4, 4, 8, 32, 32, 64]
    with pytest.raises(ValueError):
        next_pow2(0)


# ---------------------------------------------------------------- layers


def test_equalized_linear_runtime_scale_and_init() -> None:
    torch.manual_seed(0)
    layer = EqualizedLinear(256, 128)
    assert_close(layer.weight.std().item(), 1.0, atol=0.02, rtol=0)
    assert_close(layer.bias, torch.zeros(128))
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(5, 256)
    expected = F.linear(x, layer.weight * (math.sqrt(2) / math.sqrt(256)), layer.bias)
    assert_close(layer(x), expected)


def test_equalized_conv_runtime_scale_and_init() -> None:
    torch.manual_seed(0)
    layer = EqualizedConv2d(32, 64, 3, padding=1, gain=1.0)
    assert_close(layer.weight.std().item(), 1.0, atol=0.02, rtol=0)
    assert_close(layer.bias, torch.zeros(64))
    x = torch.randn(2, 32, 5, 5)
    expected = F.conv2d(x, layer.weight * (1.0 / math.sqrt(32 * 9)), layer.bias, padding=1)
    assert_close(layer(x), expected)


def test_unequalized_layers_are_plain_he_layers() -> None:
    torch.manual_seed(0)
    conv = EqualizedConv2d(32, 64, 3, equalized=False)
    he_std = math.sqrt(2) / math.sqrt(32 * 9)
    assert_close(conv.weight.std().item(), he_std, atol=0.02 * he_std, rtol=0)
    x = torch.randn(2, 32, 5, 5)
    assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias))
    lin = EqualizedLinear(8, 3, bias=False, equalized=False)
    assert lin.bias is None
    v = torch.randn(4, 8)
    assert_close(lin(v), F.linear(v, lin.weight))


def test_pixel_norm_values() -> None:
    x = torch.tensor([[3.0, 4.0], [0.0, 2.0]]).reshape(2, 2, 1, 1)
    # rows: mean square (9 + 16) / 2 = 12.5 and (0 + 4) / 2 = 2
    expected = torch.tensor([[3 / math.sqrt(12.5), 4 / math.sqrt(12.5)], [0.0, 2 / math.sqrt(2)]])
    assert_close(PixelNorm()(x), expected.reshape(2, 2, 1, 1))


def test_minibatch_stddev_hand_computed() -> None:
    # batch of 4 samples, C=1, H=1, W=2, groups of 2: {0, 1} and {2, 3}
    x = torch.tensor(
        [
            [[[1.0, 3.0]]],
            [[[3.0, 5.0]]],
            [[[0.0, 0.0]]],
            [[[2.0, 4.0]]],
        ]
    )
    # group {0,1}: pixel 0 values (1, 3) -> std 1; pixel 1 (3, 5) -> std 1; mean 1
    # group {2,3}: pixel 0 values (0, 2) -> std 1; pixel 1 (0, 4) -> std 2; mean 1.5
    eps = 1e-8
    g0 = (math.sqrt(1 + eps) + math.sqrt(1 + eps)) / 2
    g1 = (math.sqrt(1 + eps) + math.sqrt(4 + eps)) / 2
    stat = torch.tensor([g0, g0, g1, g1]).reshape(4, 1, 1, 1).expand(4, 1, 1, 2)
    out = MinibatchStdDev(group_size=2)(x)
    assert out.shape == (4, 2, 1, 2)
    assert_close(out, torch.cat([x, stat], dim=1))
    # one group of 4 samples; averaged over channels and pixels as well
    y = torch.tensor([0.0, 2.0, 4.0, 6.0]).reshape(4, 1, 1, 1).repeat(1, 2, 1, 1)
    y[:, 1] *= 2  # channel 1: values 0, 4, 8, 12 -> std sqrt(20); channel 0 std sqrt(5)
    expected_stat = (math.sqrt(5 + eps) + math.sqrt(20 + eps)) / 2
    assert_close(MinibatchStdDev(4)(y)[:, 2], torch.full((4, 1, 1), expected_stat))


def test_minibatch_stddev_group_must_divide_batch() -> None:
    msg = (
        "minibatch stddev group size 4 does not divide batch size 6; choose train.batch_size "
        "divisible by 4 or set progressive.mbstd_group to a divisor"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        MinibatchStdDev(4)(torch.zeros(6, 3, 4, 4))


# ---------------------------------------------------------------- networks


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_at_every_resolution(channels: int) -> None:
    torch.manual_seed(0)
    g = ProgressiveGenerator(latent_dim=8, channels=channels, final_size=32, **SMALL)
    d = ProgressiveDiscriminator(channels=channels, final_size=32, **SMALL)
    z = torch.randn(4, 8)
    with torch.no_grad():
        for res in (4, 8, 16, 32):
            for alpha in (0.0, 0.5, 1.0):
                images = g(z, res, alpha)
                assert images.shape == (4, channels, res, res)
                logits = d(images, res, alpha)
                assert logits.shape == (4,)
                assert torch.isfinite(logits).all()


def test_widths_halve_and_cap() -> None:
    g = ProgressiveGenerator(latent_dim=8, channels=3, final_size=32, width=4, max_width=8)
    assert g.widths == {4: 8, 8: 8, 16: 8, 32: 4}
    d = ProgressiveDiscriminator(channels=3, final_size=32, width=2, max_width=64)
    assert d.widths == {4: 16, 8: 8, 16: 4, 32: 2}


def test_generator_fade_in_is_continuous() -> None:
    torch.manual_seed(0)
    g = ProgressiveGenerator(latent_dim=8, channels=3, final_size=16, **SMALL)
    z = torch.randn(3, 8)
    with torch.no_grad():
        for res in (8, 16):
            low = g(z, res // 2, 1.0)
            assert_close(g(z, res, 0.0), F.interpolate(low, scale_factor=2, mode="nearest"))
            high = g(z, res, 1.0)
            up = F.interpolate(low, scale_factor=2, mode="nearest")
            assert_close(g(z, res, 0.25), 0.25 * high + 0.75 * up)


def test_discriminator_fade_in_is_continuous() -> None:
    torch.manual_seed(0)
    d = ProgressiveDiscriminator(channels=3, final_size=16, **SMALL)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert_close(d(x, 16, 0.0), d(F.avg_pool2d(x, 2), 8, 1.0))
        x8 = torch.randn(4, 3, 8, 8)
        assert_close(d(x8, 8, 0.0), d(F.avg_pool2d(x8, 2), 4, 1.0))


def test_all_parameters_exist_from_the_start() -> None:
    g = ProgressiveGenerator(latent_dim=8, channels=1, final_size=32, **SMALL)
    d = ProgressiveDiscriminator(channels=1, final_size=32, **SMALL)
    g_names = [n for n, _ in g.named_parameters()]
    d_names = [n for n, _ in d.named_parameters()]
    assert {"blocks.32.conv2.weight", "to_rgb.32.weight", "to_rgb.4.weight"} <= set(g_names)
    assert {"blocks.32.conv1.weight", "from_rgb.32.weight", "from_rgb.4.weight"} <= set(d_names)
    z = torch.randn(4, 8)
    d(g(z, 4, 1.0), 4, 1.0).sum().backward()
    assert g.blocks["32"].conv1.weight.grad is None
    assert g.initial.dense.weight.grad is not None
    assert [n for n, _ in g.named_parameters()] == g_names
    assert [n for n, _ in d.named_parameters()] == d_names


def test_discriminator_options() -> None:
    x = torch.randn(6, 1, 8, 8)
    d = ProgressiveDiscriminator(channels=1, final_size=8, mbstd_group=0, norm="layer", **SMALL)
    assert d(x, 8, 0.5).shape == (6,)
    d_sn = ProgressiveDiscriminator(channels=1, final_size=8, equalized_lr=False, norm="spectral", **SMALL)
    assert d_sn(x[:4], 8, 1.0).shape == (4,)
    with pytest.raises(ValueError, match="batch norm"):
        ProgressiveDiscriminator(channels=1, final_size=8, norm="batch")
    with pytest.raises(ValueError, match="equalized_lr=False"):
        ProgressiveDiscriminator(channels=1, final_size=8, norm="spectral")
    with pytest.raises(ValueError, match="does not divide batch size 6"):
        ProgressiveDiscriminator(channels=1, final_size=8, **SMALL)(x, 8, 1.0)


def test_bad_resolution_and_alpha_rejected() -> None:
    g = ProgressiveGenerator(latent_dim=8, channels=1, final_size=16, **SMALL)
    z = torch.randn(2, 8)
    with pytest.raises(ValueError, match="not among"):
        g(z, 32, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        g(z, 8, 1.5)
    with pytest.raises(ValueError):
        ProgressiveGenerator(latent_dim=8, channels=1, final_size=28)


# ---------------------------------------------------------------- reals


def test_fade_reals_endpoints_and_mid() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert_close(fade_reals(x, 8, 1.0), F.avg_pool2d(x, 4))
    low = F.interpolate(F.avg_pool2d(x, 8), scale_factor=2, mode="nearest")
    assert_close(fade_reals(x, 8, 0.0), low)
    assert_close(fade_reals(x, 8, 0.3), 0.3 * F.avg_pool2d(x, 4) + 0.7 * low)
    assert_close(fade_reals(x, 32, 1.0), x)


def test_pad_crop_round_trip() -> None:
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    padded = pad_to_pow2(x)
    assert padded.shape == (2, 1, 32, 32)
    assert_close(padded[..., 2:30, 2:30], x)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert_close(padded[..., border], torch.full((2, 1, int(border.sum())), -1.0))
    assert_close(crop_from_pow2(padded, 28), x)
    assert_close(crop_from_pow2(pad_to_pow2(torch.zeros(1, 1, 5, 12)), (5, 12)), torch.zeros(1, 1, 5, 12))
