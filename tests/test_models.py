"""Architectures: the blog MLP layer by layer, DCGAN shapes, every norm, spectral parametrisation, toy MLPs."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.testing import assert_close

from ganstab.config import ConfigError, validate
from ganstab.pipeline import load_config
from ganstab.models import ARCHITECTURES, build_discriminator, build_generator, check_fit
from ganstab.models.dcgan import DCGANDiscriminator, DCGANGenerator, conv_plan

NORMS = ("batch", "instance", "layer", "spectral", "none")
WEIGHT_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def model_cfg(**model):
    return validate({"model": model, "data": {"name": "folder"}}).model


def blog_model_cfg():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the blog preset's two-sided smoothing warns
        cfg = load_config(None, ["out=unused"], preset="blog")
    assert cfg.data.name == "fashion-mnist"
    return cfg.model


def weight_layers(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, WEIGHT_TYPES)]


# ---------------------------------------------------------------- the blog recipe

def test_blog_generator_layer_by_layer():
    g = build_generator(blog_model_cfg(), (1, 28, 28))
    layers = list(g.net)
    expected = [
        (nn.Linear, 100, 256), (nn.BatchNorm1d, 256), (nn.ReLU,),
        (nn.Linear, 256, 512), (nn.BatchNorm1d, 512), (nn.ReLU,),
        (nn.Linear, 512, 1024), (nn.BatchNorm1d, 1024), (nn.ReLU,),
        (nn.Linear, 1024, 784), (nn.Tanh,),
    ]
    assert [type(m) for m in layers] == [e[0] for e in expected]
    for module, spec in zip(layers, expected):
        if spec[0] is nn.Linear:
            assert (module.in_features, module.out_features) == spec[1:]
        if spec[0] is nn.BatchNorm1d:
            assert module.num_features == spec[1]
    # the whole module holds nothing else
    assert [type(m) for m in g.modules() if m is not g and m is not g.net] == [e[0] for e in expected]
    g.eval()
    out = g(torch.randn(3, 100))
    assert out.shape == (3, 1, 28, 28)
    assert out.abs().max() <= 1.0


def test_blog_discriminator_layer_by_layer():
    d = build_discriminator(blog_model_cfg(), (1, 28, 28))
    layers = list(d.net)
    expected = [
        (nn.Linear, 784, 1024), (nn.LeakyReLU,),
        (nn.Linear, 1024, 512), (nn.BatchNorm1d, 512), (nn.LeakyReLU,),
        (nn.Linear, 512, 256), (nn.BatchNorm1d, 256), (nn.LeakyReLU,),
        (nn.Linear, 256, 1),
    ]
    assert [type(m) for m in layers] == [e[0] for e in expected]
    for module, spec in zip(layers, expected):
        if spec[0] is nn.Linear:
            assert (module.in_features, module.out_features) == spec[1:]
    assert d(torch.randn(4, 1, 28, 28)).shape == (4,)


# ---------------------------------------------------------------- DCGAN

@pytest.mark.parametrize("size,plan", [(8, (4, 1)), (14, (7, 1)), (16, (4, 2)), (28, (7, 2)), (32, (4, 3)),
                                       (64, (4, 4)), (56, (7, 3)), (10, (5, 1)), (12, (3, 2)), (24, (3, 3)),
                                       (48, (3, 4))])
def test_conv_plan(size, plan):
    assert conv_plan(size) == plan


@pytest.mark.parametrize("size", [4, 7, 9, 18, 30, 1, 0])
def test_conv_plan_rejects(size):
    with pytest.raises(ValueError, match=re.escape(f"side {size} is not b*2^k with b in 3..8 and k >= 1")):
        conv_plan(size)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 28, 32, 64])
def test_dcgan_output_shapes(size, channels):
    cfg = model_cfg(arch="dcgan", latent_dim=16, width=8, g_norm="batch", d_norm="spectral")
    g = build_generator(cfg, (channels, size, size))
    d = build_discriminator(cfg, (channels, size, size))
    assert isinstance(g, DCGANGenerator) and isinstance(d, DCGANDiscriminator)
    images = g(torch.randn(2, 16))
    assert images.shape == (2, channels, size, size)
    assert images.abs().max() <= 1.0
    logits = d(images)
    assert logits.shape == (2,)
    # the last conv-transpose brings the channels; the head reads the base-resolution features
    base, steps = conv_plan(size)
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == steps and convs[-1].out_channels == channels
    head_in = 8 * 2 ** (steps - 1) * base * base
    head = d.head.parametrizations.weight.original if parametrize.is_parametrized(d.head) else d.head.weight
    assert head.shape == (1, head_in)


def test_dcgan_rejects_shapes_that_do_not_fit():
    cfg = model_cfg(arch="dcgan")
    with pytest.raises(ConfigError) as info:
        build_generator(cfg, (1, 30, 30))
    assert str(info.value) == (
        "model.arch=dcgan needs image sides b*2^k with b in 3..8 and the same k >= 1 for height and width "
        "(e.g. 8, 12, 14, 16, 28, 32, 64, 48x32), got 30x30; set data.image_size=32 (or 28, 64, [48, 32]) to resize"
    )
    with pytest.raises(ConfigError) as info:  # 16x48: 4*2^2 x 12*2^2 (12 > 8) or 2*2^3 x 6*2^3 (2 < 3)
        build_discriminator(cfg, (1, 16, 48))
    assert str(info.value) == (
        "model.arch=dcgan needs image sides b*2^k with b in 3..8 and the same k >= 1 for height and width "
        "(e.g. 8, 12, 14, 16, 28, 32, 64, 48x32), got 16x48; set data.image_size=32 (or 28, 64, [48, 32]) to resize"
    )
    with pytest.raises(ConfigError) as info:
        check_fit(cfg, (2,))
    assert str(info.value) == "model.arch=dcgan needs images but the data are points; use model.arch=toy or mlp"


# ---------------------------------------------------------------- norms

def norm_types(module: nn.Module) -> set[type]:
    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)
    return {type(m) for m in module.modules() if isinstance(m, kinds)}


EXPECTED_CONV_NORM = {
    "batch": {nn.BatchNorm2d}, "instance": {nn.InstanceNorm2d}, "layer": {nn.GroupNorm},
    "spectral": set(), "none": set(),
}
EXPECTED_MLP_NORM = {"batch": {nn.BatchNorm1d}, "layer": {nn.LayerNorm}, "spectral": set(), "none": set()}


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_builds_and_runs_in_dcgan(norm):
    cfg = model_cfg(arch="dcgan", latent_dim=8, width=4, g_norm=norm, d_norm=norm)
    shape = (1, 28, 28)
    g, d = build_generator(cfg, shape), build_discriminator(cfg, shape)
    assert norm_types(g) == EXPECTED_CONV_NORM[norm]
    assert norm_types(d) == EXPECTED_CONV_NORM[norm]
    images = g(torch.randn(4, 8))
    logits = d(images)
    assert images.shape == (4, 1, 28, 28) and logits.shape == (4,)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in d.parameters())
    g.eval(), d.eval()
    assert g(torch.randn(1, 8)).shape == (1, 1, 28, 28)


@pytest.mark.parametrize("arch", ["mlp", "toy"])
@pytest.mark.parametrize("norm", ["batch", "layer", "spectral", "none"])
def test_every_norm_builds_and_runs_in_mlps(arch, norm):
    shape = (1, 8, 8) if arch == "mlp" else (2,)
    cfg = model_cfg(arch=arch, latent_dim=4, width=16, depth=2, hidden=[16, 8] if arch == "mlp" else None,
                    g_norm=norm, d_norm=norm)
    g, d = build_generator(cfg, shape), build_discriminator(cfg, shape)
    assert norm_types(g) == EXPECTED_MLP_NORM[norm]
    expected_d = EXPECTED_MLP_NORM[norm]
    assert norm_types(d) == expected_d
    samples = g(torch.randn(4, 4))
    assert samples.shape == (4, *shape)
    assert d(samples).shape == (4,)


@pytest.mark.parametrize("arch", ["mlp", "toy"])
@pytest.mark.parametrize("which", ["g_norm", "d_norm"])
def test_instance_norm_refused_without_conv_maps(arch, which):
    shape = (1, 8, 8) if arch == "mlp" else (2,)
    cfg = model_cfg(arch="dcgan")
    cfg.arch = arch
    setattr(cfg, which, "instance")
    with pytest.raises(ConfigError) as info:
        build_generator(cfg, shape)
    assert str(info.value) == (
        f"instance norm needs conv feature maps and model.arch={arch} has none; use model.g_norm/d_norm=layer"
    )


@pytest.mark.parametrize("arch,shape", [("dcgan", (3, 16, 16)), ("mlp", (1, 8, 8)), ("toy", (2,))])
def test_spectral_norm_parametrises_every_weight_layer(arch, shape):
    cfg = model_cfg(arch=arch, latent_dim=4, width=8, depth=2, g_norm="spectral", d_norm="spectral",
                    hidden=[8, 8] if arch == "mlp" else None)
    g, d = build_generator(cfg, shape), build_discriminator(cfg, shape)
    for net, make_input in ((g, lambda: torch.randn(2, cfg.latent_dim)), (d, lambda: torch.randn(2, *shape))):
        layers = weight_layers(net)
        assert layers
        for layer in layers:
            assert parametrize.is_parametrized(layer, "weight"), layer
            (sn,) = layer.parametrizations.weight
            assert type(sn).__name__ == "_SpectralNorm"
        # in training mode the power iteration runs; the normalised weight's spectral norm approaches 1
        net.train()
        with torch.no_grad():
            for _ in range(30):
                net(make_input())
        net.eval()
        for layer in layers:
            w = layer.weight.detach()
            if isinstance(layer, nn.ConvTranspose2d):
                w = w.transpose(0, 1)
            sigma = torch.linalg.matrix_norm(w.flatten(1), ord=2)
            assert_close(sigma, torch.tensor(1.0), atol=0.05, rtol=0)


@pytest.mark.parametrize("norm", ["batch", "layer", "none", "instance"])
def test_no_parametrisation_without_spectral(norm):
    cfg = model_cfg(arch="dcgan", width=4, g_norm=norm, d_norm=norm)
    for net in (build_generator(cfg, (1, 16, 16)), build_discriminator(cfg, (1, 16, 16))):
        assert not any(parametrize.is_parametrized(m) for m in net.modules())


def test_spectral_in_d_only():
    cfg = model_cfg(arch="dcgan", width=4, g_norm="batch", d_norm="spectral")
    g, d = build_generator(cfg, (1, 16, 16)), build_discriminator(cfg, (1, 16, 16))
    assert not any(parametrize.is_parametrized(m) for m in g.modules())
    assert all(parametrize.is_parametrized(m, "weight") for m in weight_layers(d))
    assert len(weight_layers(d)) == 3  # conv, conv, linear head


# ---------------------------------------------------------------- toy

def test_toy_shapes():
    cfg = model_cfg(arch="toy", latent_dim=2, width=32, depth=3, g_norm="none", d_norm="none")
    g, d = build_generator(cfg, (2,)), build_discriminator(cfg, (2,))
    assert [(m.in_features, m.out_features) for m in weight_layers(g)] == [(2, 32), (32, 32), (32, 32), (32, 2)]
    assert [(m.in_features, m.out_features) for m in weight_layers(d)] == [(2, 32), (32, 32), (32, 32), (32, 1)]
    # points are not squashed: no Tanh at the end of the toy generator
    assert isinstance(list(g.net)[-1], nn.Linear)
    assert not any(isinstance(m, nn.Tanh) for m in g.modules())
    points = g(torch.randn(5, 2))
    assert points.shape == (5, 2)
    assert d(points).shape == (5,)


def test_toy_hidden_overrides_width_and_depth():
    cfg = model_cfg(arch="toy", latent_dim=3, hidden=[5, 7], g_norm="none", d_norm="none")
    g = build_generator(cfg, (2,))
    assert [(m.in_features, m.out_features) for m in weight_layers(g)] == [(3, 5), (5, 7), (7, 2)]


def test_toy_refuses_images():
    cfg = model_cfg(arch="toy")
    with pytest.raises(ConfigError) as info:
        build_generator(cfg, (3, 32, 32))
    assert str(info.value) == (
        "model.arch=toy is for 2-D points but the data are images of shape 3x32x32; use model.arch=dcgan or mlp"
    )


def test_unknown_arch():
    cfg = model_cfg(arch="dcgan")
    cfg.arch = "stylegan"
    with pytest.raises(ConfigError, match=r"^unknown model\.arch 'stylegan'; known architectures: mlp, dcgan, toy"):
        build_generator(cfg, (1, 8, 8))


def test_registry_names():
    assert {"mlp", "dcgan", "toy"} <= set(ARCHITECTURES)
