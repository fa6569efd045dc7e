"""The Trainer's networks before training: SyncBN under DDP, channels_last on CUDA, and torch.compile."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NetworksMixin"]


class NetworksMixin:
    """Mixin of the Trainer: `_prepare_networks` (before DDP wrapping) and `_compile` (train.compile)."""

    def _prepare_networks(self, generator: nn.Module, discriminator: nn.Module) -> tuple[nn.Module, nn.Module]:
        """SyncBN under DDP when asked for, channels_last for conv nets on CUDA."""
        if self.dist.active and self.cfg.train.sync_bn:
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
            discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
        self.memory_format = torch.preserve_format
        if self.device.type == "cuda" and len(self.shape) == 3:
            self.memory_format = torch.channels_last
            generator.to(memory_format=torch.channels_last)
            discriminator.to(memory_format=torch.channels_last)
        return generator, discriminator

    def _compile(self) -> None:
        """torch.compile G and D where supported; fall back to eager with a message otherwise."""
        saved = [{k: v.clone() for k, v in net.state_dict().items()} for net in (self.G, self.D)]
        try:
            g_compiled = torch.compile(self.G_net)
            d_compiled = torch.compile(self.D)
            kw = self.g_kwargs()
            with torch.no_grad():
                d_compiled(g_compiled(self.latent_local(2), **kw), **kw)
        except Exception as exc:  # compile support varies by platform and PyTorch build
            self.echo(f"train.compile: torch.compile is not supported here ({type(exc).__name__}); "
                      "continuing without it")
            return
        finally:
            for net, state in zip((self.G, self.D), saved):  # the probe must not move BN statistics
                net.load_state_dict(state)
        self.g_forward, self.d_forward = g_compiled, d_compiled
