"""`model.arch=progressive`: Karras et al. (2018) G/D wrapped for non-power-of-two data.

Data whose side is not a power of two (28x28) is handled by padding to the next power of two with
the background value -1 and cropping G's output back: G's full-resolution output is cropped to the
data size and D pads its input again, so D sees exactly what a user gets, and reals and fakes are
treated the same way at every resolution.
"""

from __future__ import annotations

from torch import Tensor, nn

from ganstab.config import Config, ModelConfig, ProgressiveConfig
from ganstab.models.progressive import (
    ProgressiveDiscriminator,
    ProgressiveGenerator,
    crop_from_pow2,
    next_pow2,
    pad_to_pow2,
)


class GrowingGenerator(nn.Module):
    """G(z, resolution, alpha); at full resolution the output is cropped to the data size."""

    def __init__(self, core: ProgressiveGenerator, data_size: int) -> None:
        super().__init__()
        self.core = core
        self.data_size = data_size
        self.latent_dim = core.latent_dim

    def forward(self, z: Tensor, resolution: int | None = None, alpha: float = 1.0) -> Tensor:
        """Images at `resolution` (default: full size, cropped to the data size)."""
        resolution = resolution or self.core.final_size
        out = self.core(z, resolution, alpha)
        if resolution == self.core.final_size and self.data_size != resolution:
            out = crop_from_pow2(out, self.data_size)
        return out


class GrowingDiscriminator(nn.Module):
    """D(x, resolution, alpha) -> logits; data-size inputs are padded to the power-of-two side."""

    def __init__(self, core: ProgressiveDiscriminator) -> None:
        super().__init__()
        self.core = core

    def forward(self, x: Tensor, resolution: int | None = None, alpha: float = 1.0) -> Tensor:
        """Logits (B,) for images at `resolution` (or data-size images at full resolution)."""
        resolution = resolution or self.core.final_size
        if x.shape[-1] != resolution:
            x = pad_to_pow2(x)
        return self.core(x, resolution, alpha)


def _prog(cfg: Config | None) -> ProgressiveConfig:
    return cfg.progressive if cfg is not None else ProgressiveConfig()


def accepts_progressive(shape: tuple[int, ...]) -> str | None:
    """None when progressive growing can model images of this shape, else the problem with its fix."""
    if len(shape) != 3:
        return "model.arch=progressive needs images but the data are points; use model.arch=toy or mlp"
    if shape[1] != shape[2]:
        return f"model.arch=progressive needs square images, got {shape[1]}x{shape[2]}; set data.image_size"
    if shape[1] < 8:
        return f"model.arch=progressive needs images of side >= 8, got {shape[1]}"
    return None


def build_growing_generator(model_cfg: ModelConfig, shape: tuple[int, ...], cfg: Config | None = None) -> nn.Module:
    """The growing G for images of `shape` (the progressive block of `cfg`, defaults without one)."""
    prog = _prog(cfg)
    final = next_pow2(shape[1])
    core = ProgressiveGenerator(model_cfg.latent_dim, shape[0], final, start=min(prog.start, final),
                                width=model_cfg.width, max_width=prog.max_width,
                                pixel_norm=prog.pixel_norm, equalized_lr=prog.equalized_lr)
    return GrowingGenerator(core, shape[1])


def build_growing_discriminator(model_cfg: ModelConfig, shape: tuple[int, ...],
                                cfg: Config | None = None) -> nn.Module:
    """The growing D for images of `shape` (the progressive block of `cfg`, defaults without one)."""
    prog = _prog(cfg)
    final = next_pow2(shape[1])
    core = ProgressiveDiscriminator(shape[0], final, start=min(prog.start, final), width=model_cfg.width,
                                    max_width=prog.max_width, mbstd_group=prog.mbstd_group,
                                    equalized_lr=prog.equalized_lr, norm=model_cfg.d_norm)
    return GrowingDiscriminator(core)
