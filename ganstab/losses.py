"""GAN losses as pure functions of discriminator logits.

Every function takes raw logits (no sigmoid applied) and returns a scalar tensor. Nothing here
calls an optimiser or `.backward()`. `discriminator_objective` assembles D's whole objective
(loss plus weighted regularisers) so that the training loop writes no formula of its own.

Conventions (B = batch, logits of shape (B,) or (B, 1)):
- minimax / nonsaturating D: BCE-with-logits(real, real_target) + BCE-with-logits(fake, fake_target)
- minimax G (the saturating original): mean log(1 - sigmoid(f)) = -mean(softplus(f))
- nonsaturating G: -mean log(sigmoid(f)) = mean(softplus(-f))
- wasserstein D: mean(fake) - mean(real); G: -mean(fake)
- lsgan D: 0.5*mean((real - a)^2) + 0.5*mean((fake - b)^2); G: 0.5*mean((fake - 1)^2)
- hinge D: mean(relu(1 - real)) + mean(relu(1 + fake)); G: -mean(fake)
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSS_KINDS", "TARGETED_KINDS", "discriminator_loss", "generator_loss", "drift_penalty",
           "discriminator_objective", "class_loss", "generator_objective"]

LOSS_KINDS: tuple[str, ...] = ("minimax", "nonsaturating", "wasserstein", "lsgan", "hinge")
# Losses whose D targets are probabilities, so that label smoothing means something.
TARGETED_KINDS: frozenset[str] = frozenset({"minimax", "nonsaturating", "lsgan"})


def _check_kind(kind: str) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown loss kind {kind!r}; known kinds: {', '.join(LOSS_KINDS)}")


def _bce_logits(logits: Tensor, target: float) -> Tensor:
    """Mean binary cross-entropy of logits against a constant target in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def _d_bce(real: Tensor, fake: Tensor, real_target: float, fake_target: float) -> Tensor:
    return _bce_logits(real, real_target) + _bce_logits(fake, fake_target)


def _d_wasserstein(real: Tensor, fake: Tensor, real_target: float, fake_target: float) -> Tensor:
    return fake.mean() - real.mean()


def _d_lsgan(real: Tensor, fake: Tensor, real_target: float, fake_target: float) -> Tensor:
    return 0.5 * (real - real_target).pow(2).mean() + 0.5 * (fake - fake_target).pow(2).mean()


def _d_hinge(real: Tensor, fake: Tensor, real_target: float, fake_target: float) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


_D_LOSSES: dict[str, Callable[[Tensor, Tensor, float, float], Tensor]] = {
    "minimax": _d_bce,
    "nonsaturating": _d_bce,
    "wasserstein": _d_wasserstein,
    "lsgan": _d_lsgan,
    "hinge": _d_hinge,
}

_G_LOSSES: dict[str, Callable[[Tensor], Tensor]] = {
    "minimax": lambda fake: -F.softplus(fake).mean(),
    "nonsaturating": lambda fake: F.softplus(-fake).mean(),
    "wasserstein": lambda fake: -fake.mean(),
    "lsgan": lambda fake: 0.5 * (fake - 1.0).pow(2).mean(),
    "hinge": lambda fake: -fake.mean(),
}


def discriminator_loss(
    kind: str,
    real_logits: Tensor,
    fake_logits: Tensor,
    real_target: float = 1.0,
    fake_target: float = 0.0,
) -> Tensor:
    """Discriminator loss of the given kind from logits; targets apply to minimax/nonsaturating/lsgan."""
    _check_kind(kind)
    if kind not in TARGETED_KINDS and (real_target != 1.0 or fake_target != 0.0):
        raise ValueError(
            f"label targets have no meaning for the {kind} loss; use real_target=1.0, fake_target=0.0"
        )
    return _D_LOSSES[kind](real_logits.float(), fake_logits.float(), real_target, fake_target)


def generator_loss(kind: str, fake_logits: Tensor) -> Tensor:
    """Generator loss of the given kind from D's logits on generated samples (targets never smoothed)."""
    _check_kind(kind)
    return _G_LOSSES[kind](fake_logits.float())


def drift_penalty(real_logits: Tensor) -> Tensor:
    """ProGAN's drift term mean(D(real)^2), which keeps a Wasserstein critic's output near zero."""
    return real_logits.float().pow(2).mean()


def discriminator_objective(
    kind: str,
    real_logits: Tensor,
    fake_logits: Tensor,
    real_target: float = 1.0,
    fake_target: float = 0.0,
    gp: Optional[Tensor] = None,
    gp_weight: float = 0.0,
    r1: Optional[Tensor] = None,
    r1_gamma: float = 0.0,
    drift_weight: float = 0.0,
    aux_class: Optional[Tensor] = None,
    aux_weight: float = 0.0,
    bcr_real: Optional[Tensor] = None,
    bcr_real_weight: float = 0.0,
    bcr_fake: Optional[Tensor] = None,
    bcr_fake_weight: float = 0.0,
    zcr: Optional[Tensor] = None,
    zcr_weight: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """D's objective: loss + gp_weight * GP + r1_gamma / 2 * R1 + drift_weight * mean(D(real)^2) + aux_weight * CE
    + bcr_real_weight * bCR(real) + bcr_fake_weight * bCR(fake) + zcr_weight * zCR(D).

    Returns (total, parts) where parts holds `loss_d` and each active term's unweighted value
    (`gp`, `r1`, `drift`, `class_d`: AC-GAN's class cross-entropy, `bcr_real`, `bcr_fake`, `zcr_d`),
    for logging. GP, R1 and the consistency terms are computed by `ganstab.penalties`.
    """
    loss = discriminator_loss(kind, real_logits, fake_logits, real_target, fake_target)
    parts: dict[str, Tensor] = {"loss_d": loss}
    total = loss
    if gp is not None:
        total = total + gp_weight * gp
        parts["gp"] = gp
    if r1 is not None:
        total = total + 0.5 * r1_gamma * r1
        parts["r1"] = r1
    if drift_weight > 0:
        drift = drift_penalty(real_logits)
        total = total + drift_weight * drift
        parts["drift"] = drift
    if aux_class is not None:
        total = total + aux_weight * aux_class
        parts["class_d"] = aux_class
    for name, term, weight in (("bcr_real", bcr_real, bcr_real_weight), ("bcr_fake", bcr_fake, bcr_fake_weight),
                               ("zcr_d", zcr, zcr_weight)):
        if term is not None:
            total = total + weight * term
            parts[name] = term
    return total, parts


def generator_objective(loss: Tensor, zcr: Optional[Tensor] = None,
                        zcr_weight: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """G's objective: its loss - zcr_weight * zCR(G), the diversity term mean (G(z) - G(z + eps))^2 (Zhao et al. 2020).

    Returns (total, parts) where parts holds `zcr_g`, the unweighted diversity term, when given.
    """
    if zcr is None:
        return loss, {}
    return loss - zcr_weight * zcr, {"zcr_g": zcr}


def class_loss(class_logits: Tensor, labels: Tensor) -> Tensor:
    """AC-GAN's auxiliary classifier loss: cross-entropy of class logits (B, K) against labels (B,)."""
    return F.cross_entropy(class_logits.float(), labels)
