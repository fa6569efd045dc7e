"""FreezeD (Mo et al. 2020): fine-tune a trained GAN with the discriminator's first blocks frozen.

D's *blocks*, in forward order, are its weight layers (linear, convolution, embedding) each with the
normalisation layers that follow it, except that a residual block of the ResNet D and a conditional D's output head (projection or
AC-GAN) count as one block each.
Freezing block k sets `requires_grad=False` on its parameters; the optimiser then holds only the rest.
Buffers still move: batch-norm statistics and spectral norm's power-iteration vectors follow the new data.
"""

from __future__ import annotations

from torch import nn

from ganstab.models.conditional import ACGANHead, ProjectionHead
from ganstab.models.resnet import DownBlock, OptimizedBlock

__all__ = ["discriminator_blocks", "freeze_discriminator_blocks"]

_WEIGHT_LAYERS = (nn.Linear, nn.Conv2d, nn.Conv1d, nn.Embedding)
_UNITS = (OptimizedBlock, DownBlock, ProjectionHead, ACGANHead)


def discriminator_blocks(discriminator: nn.Module) -> list[list[nn.Module]]:
    """D's blocks in forward (registration) order: each a weight layer, residual block or head, plus the norms after it."""
    blocks: list[list[nn.Module]] = []
    inside_unit: tuple[str, ...] = ()
    for name, module in discriminator.named_modules():
        if inside_unit and name.startswith(inside_unit):
            continue
        if isinstance(module, _UNITS):
            blocks.append([module])
            inside_unit = (name + ".",)
        elif isinstance(module, _WEIGHT_LAYERS) or hasattr(module, "effective_weight"):
            blocks.append([module])
        elif blocks and not list(module.children()) and any(True for _ in module.parameters(recurse=False)):
            blocks[-1].append(module)  # a normalisation layer's affine parameters belong to the block before it
    return blocks


def freeze_discriminator_blocks(discriminator: nn.Module, count: int) -> int:
    """Freeze D's first `count` blocks (their parameters stop learning); returns how many blocks D has.

    Raises ValueError when `count` would leave no block trainable (D's output layer must keep learning).
    """
    blocks = discriminator_blocks(discriminator)
    if count >= len(blocks):
        raise ValueError(f"model.freeze_d={count} but this discriminator has {len(blocks)} blocks, the last of them "
                         f"its output layer; freeze at most {len(blocks) - 1}")
    for block in blocks[:count]:
        for module in block:
            module.requires_grad_(False)
    return len(blocks)
