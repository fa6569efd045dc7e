"""Sampling from a trained G and writing samples as PNG grids, image folders, scatter plots or arrays."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["generate", "quantize", "to_uint8", "to_uint8_rgb", "image_grid", "save_image_grid", "save_scatter",
           "save_figure", "save_image_folder", "class_rows", "class_grid", "GRID_MAX_CLASSES"]


@torch.no_grad()
def generate(generator: nn.Module, z: Tensor, batch_size: int = 256, labels: Optional[Tensor] = None,
             **g_kwargs: Any) -> Tensor:
    """Samples from G in eval mode under no_grad (G's previous mode is restored); `labels` for a conditional G."""
    was_training = generator.training
    generator.eval()
    try:
        outs = []
        for i in range(0, z.shape[0], batch_size):
            extra = {} if labels is None else {"y": labels[i:i + batch_size].to(z.device)}
            outs.append(generator(z[i:i + batch_size], **g_kwargs, **extra).float())
    finally:
        generator.train(was_training)
    return torch.cat(outs).cpu()


def quantize(images: Tensor) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, C, H, W): round((clamp(x, -1, 1) + 1) * 127.5), halves to even (0 -> 128).

    The one pixel rule of every PNG, grid and uint8 tensor ganstab writes: -1 -> 0, 1 -> 255.
    """
    return ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C), by `quantize`."""
    return quantize(images).permute(0, 2, 3, 1).cpu().numpy()


def to_uint8_rgb(images: Tensor) -> Tensor:
    """(N, 1 or 3, H, W) in [-1, 1] -> uint8 (N, 3, H, W) by `quantize`; gray repeated on 3 channels for FID tools."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    pixels = quantize(images)
    return pixels.repeat(1, 3, 1, 1) if pixels.shape[1] == 1 else pixels


def image_grid(images: Tensor, nrow: Optional[int] = None, pad: int = 2, upscale: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one uint8 (H', W', C) array with `pad` pixel borders."""
    n, c, h, w = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    tiles = to_uint8(images)
    if upscale > 1:
        tiles = tiles.repeat(upscale, axis=1).repeat(upscale, axis=2)
        h, w = h * upscale, w * upscale
    grid = np.zeros((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = tiles[i]
    return grid


def save_image_grid(images: Tensor, path: Path, min_side: int = 256, nrow: Optional[int] = None) -> Path:
    """Write a PNG grid of images (`nrow` per row), upscaled (nearest) so small images stay visible."""
    from PIL import Image

    height, width = images.shape[-2:]
    per_row = nrow or max(1, int(math.ceil(math.sqrt(images.shape[0]))))
    upscale = max(1, min(8, min_side // (width * per_row)))  # a row of tiles about min_side pixels wide
    grid = image_grid(images, nrow=nrow, upscale=max(upscale, 1 if min(height, width) >= 32 else 2))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if grid.shape[2] == 1 else "RGB"
    Image.fromarray(grid[:, :, 0] if mode == "L" else grid, mode=mode).save(path)
    return path


def save_scatter(points: Tensor, path: Path, centers: Optional[Tensor] = None, title: str = "") -> Path:
    """Scatter plot of 2-D samples over the true modes (red crosses), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = points.detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color="tab:blue", label="samples")
    if centers is not None:
        c = centers.detach().cpu().numpy()
        ax.scatter(c[:, 0], c[:, 1], marker="x", s=40, color="tab:red", label="modes")
        span = float(np.abs(c).max()) * 1.5 + 0.5
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    return save_figure(fig, path)


def save_figure(fig: "Figure", path: Path) -> Path:
    """Lay out, save as PNG (creating folders) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_image_folder(images: Tensor, folder: Path) -> int:
    """Write one PNG per image (the layout pytorch-fid and clean-fid read); returns the count."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arr = to_uint8(images)
    for i, img in enumerate(arr):
        Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(folder / f"{i:06d}.png")
    return len(arr)


GRID_MAX_CLASSES = 100  # a class grid shows at most this many classes (a row each)


def class_rows(num_classes: int, n: int) -> Tensor:
    """Labels for a grid with one row per class: each class repeated max(1, n // num_classes) times; of data with
    more than GRID_MAX_CLASSES classes (stacked data: 1,000) the first GRID_MAX_CLASSES, once each."""
    per_class = max(1, n // num_classes)
    return torch.arange(min(num_classes, GRID_MAX_CLASSES)).repeat_interleave(per_class)


def class_grid(fixed_z: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """(latents, labels) of a grid with one row per class (`class_rows`): the fixed noise reused cyclically, so that
    data with more classes than noise vectors (100 classes, 64 samples) still get one row per class."""
    labels = class_rows(num_classes, len(fixed_z))
    rows = torch.arange(len(labels), device=fixed_z.device) % len(fixed_z)
    return fixed_z[rows], labels
