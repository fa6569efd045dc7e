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
- relativistic (RpGAN; Jolicoeur-Martineau 2018, Huang et al. 2024 R3GAN): real logit i is paired with fake
  logit i; D: mean_i softplus(fake_i - real_i); G, the mirror: mean_i softplus(real_i - fake_i)
- relativistic_average (RaGAN, Jolicoeur-Martineau 2018): each sample against the mean logit of the other side;
  D: mean softplus(mean(fake) - real) + mean softplus(fake - mean(real));
  G, the mirror: mean softplus(mean(real) - fake) + mean softplus(real - mean(fake))
The relativistic kinds need D's logits on reals in G's loss too (`generator_loss(kind, fake, real)`), and
both refuse real and fake logits of different shapes.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSS_KINDS", "TARGETED_KINDS", "RELATIVISTIC_KINDS", "discriminator_loss", "generator_loss",
           "drift_penalty", "lecam_penalty", "discriminator_objective", "generator_objective", "class_loss"]

LOSS_KINDS: tuple[str, ...] = ("minimax", "nonsaturating", "wasserstein", "lsgan", "hinge", "relativistic",
                               "relativistic_average")
# Losses whose D targets are probabilities, so that label smoothing means something.
TARGETED_KINDS: frozenset[str] = frozenset({"minimax", "nonsaturating", "lsgan"})
# Losses that compare fakes with reals, so that G's loss needs D's logits on a real batch as well.
RELATIVISTIC_KINDS: frozenset[str] = frozenset({"relativistic", "relativistic_average"})


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


def _paired(kind: str, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Real and fake logits of one shape as float32 (pair i of the real batch with sample i of the fake batch)."""
    if real.shape != fake.shape:
        raise ValueError(f"the {kind} loss pairs real logit i with fake logit i, so both need one shape; got real "
                         f"{tuple(real.shape)} and fake {tuple(fake.shape)}")
    return real.float(), fake.float()


def _d_relativistic(real: Tensor, fake: Tensor, real_target: float, fake_target: float) -> Tensor:
    return F.softplus(fake - real).mean()


def _d_relativistic_average(real: Tensor, fake: Tensor, real_target: float, fake_target: float) -> Tensor:
    return F.softplus(fake.mean() - real).mean() + F.softplus(fake - real.mean()).mean()


_D_LOSSES: dict[str, Callable[[Tensor, Tensor, float, float], Tensor]] = {
    "minimax": _d_bce,
    "nonsaturating": _d_bce,
    "wasserstein": _d_wasserstein,
    "lsgan": _d_lsgan,
    "hinge": _d_hinge,
    "relativistic": _d_relativistic,
    "relativistic_average": _d_relativistic_average,
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
    if kind in RELATIVISTIC_KINDS:
        real_logits, fake_logits = _paired(kind, real_logits, fake_logits)
    return _D_LOSSES[kind](real_logits.float(), fake_logits.float(), real_target, fake_target)


def generator_loss(kind: str, fake_logits: Tensor, real_logits: Optional[Tensor] = None) -> Tensor:
    """G's loss of the given kind from D's logits on fakes (and on reals: relativistic kinds only; never smoothed)."""
    _check_kind(kind)
    if kind not in RELATIVISTIC_KINDS:
        return _G_LOSSES[kind](fake_logits.float())
    if real_logits is None:
        raise ValueError(f"the {kind} loss compares fakes with reals; pass real_logits (D's logits on a real batch)")
    real, fake = _paired(kind, real_logits, fake_logits)
    return _D_LOSSES[kind](fake, real, 1.0, 0.0)  # the mirror: D's loss with the reals and fakes swapped


def drift_penalty(real_logits: Tensor) -> Tensor:
    """ProGAN's drift term mean(D(real)^2), which keeps a Wasserstein critic's output near zero."""
    return real_logits.float().pow(2).mean()


def lecam_penalty(real_logits: Tensor, fake_logits: Tensor, anchor_real: Tensor, anchor_fake: Tensor) -> Tensor:
    """LeCam (Tseng et al. 2021): mean(relu(D(x) - a_F)^2) + mean(relu(a_R - D(G(z)))^2), a_R/a_F EMAs of D's means.

    The paper's Eq. 3 writes the squared distances without the relu; both official implementations
    (google/lecam-gan: `lecam_reg` in biggan_cifar/losses.py, `lecamreg` in stylegan2/lecam_loss.py)
    clip them, so only real logits above the fakes' anchor and fake logits below the reals' anchor
    are pulled back; this follows the code. The anchors are constants here (no gradient); the
    training loop keeps them (`ganstab.training.lecam`), updated with the current batch before use.
    """
    real, fake = real_logits.float(), fake_logits.float()
    anchor_real, anchor_fake = anchor_real.detach().float(), anchor_fake.detach().float()
    return F.relu(real - anchor_fake).pow(2).mean() + F.relu(anchor_real - fake).pow(2).mean()


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
    r2: Optional[Tensor] = None,
    r2_gamma: float = 0.0,
    lecam_anchors: Optional[tuple[Tensor, Tensor]] = None,
    lecam_weight: float = 0.0,
    bcr_real: Optional[Tensor] = None,
    bcr_real_weight: float = 0.0,
    bcr_fake: Optional[Tensor] = None,
    bcr_fake_weight: float = 0.0,
    zcr: Optional[Tensor] = None,
    zcr_weight: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """D's objective: the loss plus each active weighted regulariser (GP, R1, drift, AC-GAN CE, R2, LeCam, bCR, zCR).

    total = loss + gp_weight * GP + r1_gamma / 2 * R1 + drift_weight * mean(D(real)^2) + aux_weight * CE
    + r2_gamma / 2 * R2 + lecam_weight * LeCam + bcr_real_weight * bCR(real) + bcr_fake_weight * bCR(fake)
    + zcr_weight * zCR(D). Returns (total, parts) where parts holds `loss_d` and each active term's
    unweighted value (`gp`, `r1`, `drift`, `class_d`: AC-GAN's class cross-entropy, `r2`, `lecam`,
    `bcr_real`, `bcr_fake`, `zcr_d`), for logging. GP, R1, R2 and the consistency terms are computed by
    `ganstab.penalties`; LeCam here from the logits and the anchors (alpha_R, alpha_F) the loop keeps.
    """
    loss = discriminator_loss(kind, real_logits, fake_logits, real_target, fake_target)
    drift = drift_penalty(real_logits) if drift_weight > 0 else None
    lecam = None if lecam_anchors is None else lecam_penalty(real_logits, fake_logits, *lecam_anchors)
    parts: dict[str, Tensor] = {"loss_d": loss}
    total = loss
    for name, term, weight in (("gp", gp, gp_weight), ("r1", r1, 0.5 * r1_gamma), ("drift", drift, drift_weight),
                               ("class_d", aux_class, aux_weight), ("r2", r2, 0.5 * r2_gamma),
                               ("lecam", lecam, lecam_weight), ("bcr_real", bcr_real, bcr_real_weight),
                               ("bcr_fake", bcr_fake, bcr_fake_weight), ("zcr_d", zcr, zcr_weight)):
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
