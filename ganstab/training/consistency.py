"""Consistency regularisation in the Trainer (Zhao et al. 2020, "Improved Consistency Regularization for GANs").

- bCR: D's logits on what it sees, x, and on T(x), with T the DiffAugment transforms of
  `penalty.cr_policy` (every sample, p = 1, on top of `augment.policy`), for reals and fakes;
  the D objective adds `penalty.bcr_real` / `penalty.bcr_fake` times mean_i (D(x_i) - D(T(x_i)))^2.
- zCR: z' = z + eps with eps ~ N(0, `penalty.zcr_sigma`^2); D adds `penalty.zcr` times
  mean_i (D(G(z_i)) - D(G(z'_i)))^2 and G subtracts `penalty.zcr_gen` times the mean squared
  difference of G(z) and G(z'), so that G keeps nearby latents apart.

The values come from the pure functions of `ganstab.penalties`; the draws from the run's checkpointed
generators (T's parameters from the augmentation generator, eps from the latent one), so resume is exact.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from ganstab import penalties

__all__ = ["ConsistencyMixin"]


class ConsistencyMixin:
    """Mixin of the Trainer: zCR's pairs G(z), G(z + eps), and the inputs and values of the consistency terms."""

    def zcr_active(self) -> bool:
        """zCR needs G(z + eps) beside G(z) (for D's consistency term, G's diversity term or both)."""
        return self.cfg.penalty.zcr > 0 or self.cfg.penalty.zcr_gen > 0

    def generate(self, n: int, kw: dict[str, Any]) -> tuple[Tensor, Optional[Tensor]]:
        """G(z) for n fresh latents; with zCR also G(z + sigma * noise), from one G pass over the batch [z; z + eps].

        One pass keeps a single forward per backward under DDP; G's batch norm (if any) then normalises
        both halves with the same statistics, so the pair differs by the latent perturbation only.
        """
        z = self.latent(n)
        if not self.zcr_active():
            return self.g_forward(z, **kw), None
        z_eps = penalties.perturb_latents(z, self.latent(n), self.cfg.penalty.zcr_sigma)
        both_kw = {k: torch.cat([v, v]) if k == "y" else v for k, v in kw.items()}
        both = self.g_forward(torch.cat([z, z_eps]), **both_kw)
        return both[:z.shape[0]], both[z.shape[0]:]

    def consistency_inputs(self, real: Tensor, fake: Tensor, fake_eps: Optional[Tensor]) -> dict[str, Tensor]:
        """Images whose D logits the consistency terms need: bCR's T(real) and T(fake), zCR's G(z + eps)."""
        penalty = self.cfg.penalty
        extra: dict[str, Tensor] = {}
        if penalty.bcr_real > 0:
            extra["bcr_real"] = self.cr_transformed(real)
        if penalty.bcr_fake > 0:
            extra["bcr_fake"] = self.cr_transformed(fake)
        if penalty.zcr > 0 and fake_eps is not None:
            extra["zcr"] = fake_eps
        return extra

    @staticmethod
    def consistency_terms(d_real: Tensor, d_fake: Tensor, extra_logits: dict[str, Tensor]) -> dict[str, Tensor]:
        """Unweighted bCR (D(x) vs D(T(x)) on reals and fakes) and zCR (D(G(z)) vs D(G(z + eps))) values."""
        partner = {"bcr_real": d_real, "bcr_fake": d_fake, "zcr": d_fake}
        return {name: penalties.consistency_penalty(partner[name], logits) for name, logits in extra_logits.items()}

    def consistency_objective_terms(self, d_real: Tensor, d_fake: Tensor,
                                    extra_logits: dict[str, Tensor]) -> dict[str, Any]:
        """`discriminator_objective`'s keyword arguments of the consistency terms: each value and its weight now."""
        terms = self.consistency_terms(d_real, d_fake, extra_logits)
        out: dict[str, Any] = {}
        for name, key in (("bcr_real", "penalty.bcr_real"), ("bcr_fake", "penalty.bcr_fake"), ("zcr", "penalty.zcr")):
            if name in terms:
                out[name], out[f"{name}_weight"] = terms[name], self.hyper(key)
        return out

    def generator_consistency(self, fake: Tensor, fake_eps: Optional[Tensor]) -> Optional[Tensor]:
        """zCR's unweighted diversity term of G, mean squared difference of G(z) and G(z + eps) (None when off)."""
        if fake_eps is None or self.cfg.penalty.zcr_gen <= 0:
            return None
        return penalties.consistency_penalty(fake, fake_eps)
