"""What every step of the Trainer consumes: real batches and their labels, latents, GP alphas, augmentation.

Every draw is a pure function of a counter (data batches) or comes from a checkpointed generator
(latents, labels of fakes, GP coefficients, augmentation parameters), and under DDP each rank takes
its slice of the global batch, so a resumed or distributed run follows the same trajectory.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from ganstab.augment import augment
from ganstab.models.conditional import run_label_distribution, sample_labels

__all__ = ["InputsMixin"]


class InputsMixin:
    """Mixin of the Trainer: batches, labels, latents, alphas and the augmentation of everything D sees."""

    def _label_probs(self) -> Optional[Tensor]:
        """Class probabilities of G's labels: the data's class frequencies, or uniform (`model.label_sampling`)."""
        probs = run_label_distribution(self.cfg.model, self.data.labels, self.num_classes)
        return None if probs is None else probs.to(self.device)

    def real_labels(self) -> Tensor:
        """Labels of the last real batch (this rank's slice), row for row."""
        size = self.cfg.train.batch_size
        return self.data.rank_labels(self.batch_index - 1, size, self.dist.rank, self.dist.world, self.device)

    def fake_kwargs(self, n: int) -> dict[str, Any]:
        """G's and D's arguments for n fresh fakes: a conditional run samples their labels (checkpointed generator)."""
        kw = self.g_kwargs()
        if self.num_classes:
            kw["y"] = self._shard(sample_labels(n * self.dist.world, self.label_probs, self.gen))
        return kw

    def _shard(self, tensor: Tensor) -> Tensor:
        """This rank's slice of a global batch."""
        if not self.dist.active:
            return tensor
        per = tensor.shape[0] // self.dist.world
        return tensor[self.dist.rank * per:(self.dist.rank + 1) * per]

    def real_batch(self) -> Tensor:
        """The next real batch (fresh for every D step; this rank's slice of the global batch)."""
        size = self.cfg.train.batch_size
        batch = self.data.rank_batch(self.batch_index, size, self.dist.rank, self.dist.world, self.device)
        self.batch_index += 1
        self.images_seen += size * self.dist.world
        return batch.contiguous(memory_format=self.memory_format) if batch.dim() == 4 else batch

    def g_step_reals(self) -> tuple[Tensor, dict[str, Any]]:
        """A fresh real batch for G's relativistic loss, augmented like everything D sees, with D's arguments.

        Fresh, as in R3GAN (brownvc/R3GAN `training/training_loop.py` draws the G phase its own real
        batch): it comes from the same data stream as D's batches (the next one; `images_seen` counts
        it, since D scores it), so resume and DDP sharding stay exact; conditional runs pass its labels.
        """
        real, kw = self.real_batch_and_kwargs()
        return self.augmented(real), kw

    def real_batch_and_kwargs(self) -> tuple[Tensor, dict[str, Any]]:
        """A fresh real batch and D's arguments for it (its labels when conditional: fakes scored beside it get them)."""
        kw = self.g_kwargs()
        real = self.real_batch()
        if self.num_classes:
            kw["y"] = self.real_labels()
        return real, kw

    def latent(self, n: int) -> Tensor:
        """This rank's slice of n * world latent codes from the run's own generator (checkpointed)."""
        z = torch.randn(n * self.dist.world, self.cfg.model.latent_dim, device=self.device, generator=self.gen)
        return self._shard(z)

    def latent_local(self, n: int) -> Tensor:
        """Latent codes that do not advance the run's generator (for probes)."""
        return torch.randn(n, self.cfg.model.latent_dim, device=self.device)

    def gp_alpha(self, n: int) -> Tensor:
        """This rank's slice of the global interpolation coefficients for the gradient penalty."""
        return self._shard(torch.rand(n * self.dist.world, device=self.device, generator=self.gen))

    def augment_p(self) -> float:
        """The augmentation probability now: ADA's adapted p, else `augment.p`."""
        return self.ada.p if self.ada is not None else self.cfg.augment.p

    def augmented(self, images: Tensor) -> Tensor:
        """Everything D sees goes through the same differentiable augmentation (identity without a policy)."""
        if not self.policy:
            return images
        return augment(images, self.policy, self.aug_gen, self.augment_p())

    def augmented_pair(self, first: Tensor, second: Optional[Tensor]) -> tuple[Tensor, Optional[Tensor]]:
        """Both batches augmented with the same draws, sample for sample (zCR compares G(z) with G(z + eps)).

        Without a second batch it is `augmented(first)` and None.
        """
        if second is None:
            return self.augmented(first), None
        if not self.policy:
            return first, second
        state = self.aug_gen.get_state()
        first = augment(first, self.policy, self.aug_gen, self.augment_p())
        self.aug_gen.set_state(state)
        return first, augment(second, self.policy, self.aug_gen, self.augment_p())

    def cr_transformed(self, images: Tensor) -> Tensor:
        """bCR's T(x): `penalty.cr_policy` on every sample (p = 1), its parameters from the augmentation generator."""
        return augment(images, self.cr_policy, self.aug_gen, 1.0)
