"""The memory check of a config: parameters of G and D counted on the meta device, against the free memory.

Training (`ganstab.pipeline.check_memory`) and loading an exported generator (`ganstab.export`) ask the
same question before anything is allocated: would these networks fit?
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ganstab.config import Config
from ganstab.data.images import available_host_memory
from ganstab.models import build_discriminator, build_generator

__all__ = ["TRAINING_BYTES_PER_PARAMETER", "MemoryShortfall", "available_memory", "parameter_count",
           "memory_shortfall"]

TRAINING_BYTES_PER_PARAMETER = 16  # float32 weight + gradient + Adam's two moments


@dataclass(frozen=True)
class MemoryShortfall:
    """G and D of a config that do not fit: their parameters, the bytes they need and the bytes free."""

    parameters: int
    need: int
    free: int


def available_memory(device: torch.device) -> Optional[int]:
    """Bytes free for new tensors: CUDA's free memory, else MemAvailable of /proc/meminfo (None when unknown)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return available_host_memory()


def parameter_count(cfg: Config, shape: tuple[int, ...], classes: int = 0) -> Optional[int]:
    """Parameters of G and D, counted on the meta device (nothing allocated); None when that is not possible."""
    try:
        with torch.device("meta"):
            nets = (build_generator(cfg.model, shape, cfg, classes), build_discriminator(cfg.model, shape, cfg, classes))
    except Exception:  # a layer that cannot be built on the meta device: skip the estimate
        return None
    return sum(p.numel() for net in nets for p in net.parameters())


def memory_shortfall(cfg: Config, shape: tuple[int, ...], free: Optional[int], classes: int = 0) -> Optional[MemoryShortfall]:
    """The shortfall when G and D's training state (16 bytes a parameter) exceeds `free` bytes, else None."""
    count = parameter_count(cfg, tuple(shape), classes)
    if count is None or free is None or count * TRAINING_BYTES_PER_PARAMETER <= free:
        return None
    return MemoryShortfall(count, count * TRAINING_BYTES_PER_PARAMETER, free)
