"""torch.distributed plumbing (DDP over gloo/nccl, launched by torchrun) and mixed-precision helpers.

Each process trains on its own slice of every global batch: rank r of W takes samples
[r*B, (r+1)*B) of the global batch of W*B (data, latents and gradient-penalty alphas are drawn
globally from the same seeded generators and sliced), so W ranks x batch B follow the same
trajectory as 1 rank x batch W*B up to floating-point reduction order.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ganstab import penalties
from ganstab.config import TrainConfig
from ganstab.errors import ConfigError


@dataclass
class DistContext:
    """Rank, world size and device of this process (world 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when training with more than one process."""
        return self.world > 1


@dataclass
class Runtime:
    """Where this process trains: its device and its place among the torchrun processes."""

    device: torch.device
    dist: DistContext


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; other names as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is available; use train.device=cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={name} but MPS is not available; use train.device=cpu or auto")
    return device


def init_runtime(train_cfg: TrainConfig) -> Runtime:
    """Threads, determinism, device and process group of this process, checked against the config."""
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    if train_cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    device = resolve_device(train_cfg.device)
    ctx = init_distributed(device)
    if ctx.active and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    if train_cfg.precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return Runtime(device, ctx)


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group torchrun set up (env WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        here = True
    return DistContext(rank=rank, world=world, local_rank=local_rank, initialised_here=here)


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group if this module created it."""
    if ctx.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: dict[str, float], ctx: DistContext, device: torch.device) -> dict[str, float]:
    """Average scalar statistics over ranks (every rank gets the same numbers)."""
    if not ctx.active or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= ctx.world
    return dict(zip(keys, tensor.tolist()))


def mean_over_ranks(tensor: Tensor, ctx: DistContext) -> Tensor:
    """The element-wise mean of a tensor over ranks, on its device (no host sync); the tensor itself in one process."""
    if not ctx.active:
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / ctx.world


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True when `flag` is set on any rank (used so that every rank stops at the same step)."""
    if not ctx.active:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.active:
        dist.barrier()


class CriticPass(nn.Module):
    """Every D evaluation of one D step in a single module call, so DDP sees one forward per backward.

    Returns (d_real, d_fake, gp, r1, classes, r2, extra_logits); gp/r1/r2 are None when not requested,
    classes holds the class logits on reals and fakes of an AC-GAN discriminator (None otherwise),
    extra_logits D's logits on each batch of `extra` (the consistency terms' T(x) and G(z + eps)). The penalties are
    the pure functions of `ganstab.penalties`; this module only groups the calls.
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.D = discriminator

    def forward(self, real: Tensor, fake: Tensor, gp_alpha: Optional[Tensor] = None, gp_target: float = 1.0,
                r1: bool = False, scale: float | Tensor = 1.0, d_kwargs: Optional[dict[str, Any]] = None,
                r2: bool = False, extra: tuple[Tensor, ...] = (),
                ) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor], Optional[tuple[Tensor, Tensor]],
                           Optional[Tensor], tuple[Tensor, ...]]:
        """D logits on reals and fakes plus the requested penalties (and AC-GAN class logits)."""
        kw = d_kwargs or {}

        def critic(x: Tensor) -> Tensor:
            return self.D(x, **kw)

        classes = None
        if getattr(self.D, "mode", None) == "acgan":
            (d_real, real_cls), (d_fake, fake_cls) = self.D.forward_with_classes(real), self.D.forward_with_classes(fake)
            classes = (real_cls, fake_cls)
        else:
            d_real = critic(real)
            d_fake = critic(fake)
        gp = None
        if gp_alpha is not None:
            gp = penalties.gradient_penalty(critic, real, fake, gp_target, alpha=gp_alpha, scale=scale)
        r1_value = penalties.r1_penalty(critic, real, scale=scale) if r1 else None
        r2_value = penalties.r2_penalty(critic, fake, scale=scale) if r2 else None
        return d_real, d_fake, gp, r1_value, classes, r2_value, tuple(critic(x) for x in extra)


def wrap_ddp(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP wrapper with broadcast_buffers=False (several D passes per step), or the module itself."""
    if not ctx.active:
        return module
    ids = [device.index if device.index is not None else ctx.local_rank] if device.type == "cuda" else None
    return DDP(module, device_ids=ids, broadcast_buffers=False)


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device) -> ContextManager:
    """torch.autocast for bf16/fp16, a null context for fp32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """One GradScaler per network; enabled only for fp16 (bf16 needs no loss scaling)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
