"""Architecture registry: build_generator / build_discriminator from `cfg.model` and the data shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn

from ganstab.config import Config, ModelConfig
from ganstab.errors import ConfigError
from ganstab.models.conditional import (ConditionalDCGANGenerator, ConditionalMLPGenerator,
                                        conditional_dcgan_discriminator, conditional_mlp_discriminator)
from ganstab.models.dcgan import DCGANDiscriminator, DCGANGenerator, plan_sides
from ganstab.models.mlp import MLPDiscriminator, MLPGenerator
from ganstab.models.packing import PackedDiscriminator, check_packable, packed_shape
from ganstab.models.progressive_arch import (accepts_progressive, build_growing_discriminator,
                                             build_growing_generator)
from ganstab.models.resnet import ResNetDiscriminator, ResNetGenerator, resnet_side_ok

__all__ = ["Architecture", "ARCHITECTURES", "BLOG_HIDDEN", "MLP_HIDDEN", "architectures", "check_fit",
           "build_generator", "build_discriminator"]

BLOG_HIDDEN = (256, 512, 1024)  # the commonly published MLP generator (preset `blog`)
MLP_HIDDEN = (256, 256)  # the generic MLP's default


@dataclass(frozen=True)
class Architecture:
    """A named pair of builders plus the data kinds it accepts."""

    build_g: Callable[..., nn.Module]  # (model_cfg, shape, full_cfg_or_None) -> module
    build_d: Callable[..., nn.Module]
    accepts: Callable[[tuple[int, ...]], str | None]  # returns an error message or None
    summary: str


def _accept_any(shape: tuple[int, ...]) -> str | None:
    return None


def _accept_points(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 1:
        return (f"model.arch=toy is for 2-D points but the data are images of shape {'x'.join(map(str, shape))}; "
                "use model.arch=dcgan or mlp")
    return None


def _accept_conv(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 3:
        return "model.arch=dcgan needs images but the data are points; use model.arch=toy or mlp"
    c, h, w = shape
    if plan_sides(h, w, 1) is None:
        return (f"model.arch=dcgan needs image sides b*2^k with b in 3..8 and the same k >= 1 for height and width "
                f"(e.g. 8, 12, 14, 16, 28, 32, 64, 48x32), got {h}x{w}; "
                "set data.image_size=32 (or 28, 64, [48, 32]) to resize")
    return None


def _hidden(model_cfg, default: Sequence[int]) -> list[int]:
    if model_cfg.hidden:
        return list(model_cfg.hidden)
    return list(default)


def _mlp_g(model_cfg, shape: tuple[int, ...], cfg=None) -> nn.Module:
    return MLPGenerator(model_cfg.latent_dim, shape, _hidden(model_cfg, MLP_HIDDEN), model_cfg.g_norm,
                        tanh=len(shape) == 3)


def _mlp_d(model_cfg, shape: tuple[int, ...], cfg=None) -> nn.Module:
    return MLPDiscriminator(shape, list(reversed(_hidden(model_cfg, MLP_HIDDEN))), model_cfg.d_norm)


def _toy_g(model_cfg, shape: tuple[int, ...], cfg=None) -> nn.Module:
    hidden = _hidden(model_cfg, [model_cfg.width] * model_cfg.depth)
    return MLPGenerator(model_cfg.latent_dim, shape, hidden, model_cfg.g_norm, tanh=False)


def _toy_d(model_cfg, shape: tuple[int, ...], cfg=None) -> nn.Module:
    hidden = _hidden(model_cfg, [model_cfg.width] * model_cfg.depth)
    return MLPDiscriminator(shape, hidden, model_cfg.d_norm)


def _dcgan_g(model_cfg, shape: tuple[int, ...], cfg=None) -> nn.Module:
    return DCGANGenerator(model_cfg.latent_dim, shape[0], shape[1:], model_cfg.width, model_cfg.g_norm)


def _dcgan_d(model_cfg, shape: tuple[int, ...], cfg=None) -> nn.Module:
    return DCGANDiscriminator(shape[0], shape[1:], model_cfg.width, model_cfg.d_norm)


def _accept_resnet(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 3:
        return "model.arch=resnet needs images but the data are points; use model.arch=toy or mlp"
    return resnet_side_ok(shape[1], shape[2])


def _resnet_g(model_cfg: ModelConfig, shape: tuple[int, ...], cfg: Config | None = None) -> nn.Module:
    return ResNetGenerator(model_cfg.latent_dim, shape[0], shape[1:], 2 * model_cfg.width, model_cfg.g_norm)


def _resnet_d(model_cfg: ModelConfig, shape: tuple[int, ...], cfg: Config | None = None) -> nn.Module:
    return ResNetDiscriminator(shape[0], shape[1:], model_cfg.width, model_cfg.d_norm)


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture(_mlp_g, _mlp_d, _accept_any,
                        "fully connected G/D (model.hidden, default 256-256; the blog preset uses 256-512-1024)"),
    "dcgan": Architecture(_dcgan_g, _dcgan_d, _accept_conv,
                          "conv G/D for images of b*2^k x b'*2^k, b and b' in 3..8 (8, 14, 28, 32, 64, 48x32, ...; "
                          "model.width)"),
    "toy": Architecture(_toy_g, _toy_d, _accept_points,
                        "small MLPs for 2-D points (model.width x model.depth)"),
    "resnet": Architecture(_resnet_g, _resnet_d, _accept_resnet,
                           "SN-GAN ResNet G/D (Miyato et al. 2018) for sides 28, 32, 64 (48x32, ... per dimension); "
                           "G has 2 x model.width "
                           "channels, D model.width (SN-GAN: 256 / 128)"),
    "progressive": Architecture(build_growing_generator, build_growing_discriminator, accepts_progressive,
                                "Karras et al. 2018 growing G/D (4x4 -> full size with fade-in; see the "
                                "progressive.* keys)"),
}


def _lookup(model_cfg: ModelConfig, shape: tuple[int, ...]) -> Architecture:
    arch = ARCHITECTURES.get(model_cfg.arch)
    if arch is None:
        raise ConfigError(f"unknown model.arch {model_cfg.arch!r}; known architectures: {', '.join(ARCHITECTURES)}")
    problem = arch.accepts(tuple(shape))
    if problem is not None:
        raise ConfigError(problem)
    if model_cfg.g_norm == "instance" and len(shape) == 1 or (
        model_cfg.arch in ("mlp", "toy") and "instance" in (model_cfg.g_norm, model_cfg.d_norm)
    ):
        raise ConfigError(f"instance norm needs conv feature maps and model.arch={model_cfg.arch} has none; "
                          "use model.g_norm/d_norm=layer")
    return arch


def architectures() -> dict[str, Architecture]:
    """The registry: architecture name -> builders."""
    return ARCHITECTURES


def check_fit(model_cfg: ModelConfig, shape: tuple[int, ...], cfg: Config | None = None) -> None:
    """Raise ConfigError when the architecture cannot model data of this shape."""
    _lookup(model_cfg, shape)
    check_packable(model_cfg.arch, getattr(model_cfg, "pack", 1))


def _conditional_g(model_cfg: ModelConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The class-conditional G of an mlp, toy or dcgan config (conditional BN or a label embedding)."""
    if model_cfg.arch == "dcgan":
        return ConditionalDCGANGenerator(model_cfg.latent_dim, shape[0], shape[1:], model_cfg.width, model_cfg.g_norm,
                                         num_classes)
    default = MLP_HIDDEN if model_cfg.arch == "mlp" else [model_cfg.width] * model_cfg.depth
    return ConditionalMLPGenerator(model_cfg.latent_dim, shape, _hidden(model_cfg, default), model_cfg.g_norm,
                                   num_classes, tanh=len(shape) == 3)


def _conditional_d(model_cfg: ModelConfig, shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The projection (or AC-GAN) D of an mlp, toy or dcgan config."""
    mode = model_cfg.d_condition
    if model_cfg.arch == "dcgan":
        return conditional_dcgan_discriminator(shape[0], shape[1:], model_cfg.width, model_cfg.d_norm, num_classes,
                                               mode)
    if model_cfg.arch == "mlp":
        return conditional_mlp_discriminator(shape, list(reversed(_hidden(model_cfg, MLP_HIDDEN))), model_cfg.d_norm,
                                             num_classes, mode)
    return conditional_mlp_discriminator(shape, _hidden(model_cfg, [model_cfg.width] * model_cfg.depth),
                                         model_cfg.d_norm, num_classes, mode)


def _check_classes(model_cfg: ModelConfig, num_classes: int) -> None:
    if model_cfg.conditional and num_classes < 2:
        raise ConfigError(f"model.conditional=true needs labelled data with at least 2 classes, got {num_classes}; "
                          "use data with labels (digits, fashion-mnist, mnist, npz with y, class sub-folders) "
                          "or set model.conditional=false")


def build_generator(model_cfg: ModelConfig, shape: tuple[int, ...], cfg: Config | None = None,
                    num_classes: int = 0) -> nn.Module:
    """The generator named by `model_cfg.arch` for samples of `shape`; class-conditional G(z, y) when asked for."""
    arch = _lookup(model_cfg, shape)
    if model_cfg.conditional:
        _check_classes(model_cfg, num_classes)
        return _conditional_g(model_cfg, tuple(shape), num_classes)
    return arch.build_g(model_cfg, tuple(shape), cfg)


def build_discriminator(model_cfg: ModelConfig, shape: tuple[int, ...], cfg: Config | None = None,
                        num_classes: int = 0) -> nn.Module:
    """The discriminator named by `model_cfg.arch` for samples of `shape` (logits (B,), or (B/m,) packed; D(x, y)
    when conditional)."""
    arch = _lookup(model_cfg, shape)
    if model_cfg.conditional:
        _check_classes(model_cfg, num_classes)
        return _conditional_d(model_cfg, tuple(shape), num_classes)
    pack = getattr(model_cfg, "pack", 1)
    if pack > 1:  # PacGAN: the inner D is built for m samples concatenated
        check_packable(model_cfg.arch, pack)
        return PackedDiscriminator(arch.build_d(model_cfg, packed_shape(shape, pack), cfg), pack)
    return arch.build_d(model_cfg, tuple(shape), cfg)
