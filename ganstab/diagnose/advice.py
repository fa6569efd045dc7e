"""Advice text for each finding code, tailored to the run's loss, normalisation and penalties.

Rules from docs GUIDE section 4 that the advice keeps:
- label smoothing is one-sided (real targets 0.9) and only for the minimax / non-saturating
  losses; it is never suggested for Wasserstein, hinge or least-squares losses, and the fake
  target is never smoothed;
- batch norm in D is never suggested; with a gradient penalty or R1 it is called out as a bug;
- learning-rate suggestions follow TTUR (D's rate the larger) or WGAN-GP (1e-4 for both).

The `context` mapping describes the run; every key is optional:
`loss_kind` (str), `n_critic` (int), `d_norm` (str), `gp` (float, penalty weight),
`r1` (float), `drift` (float), `real_label` (float).
"""

from __future__ import annotations

from typing import Any, Mapping

from ganstab.augment import POLICIES

# config keys the advice names (as in ganstab/config.py; one place to rename them)
KEY_LOSS = "loss.kind"
KEY_REAL_LABEL = "loss.real_label"
KEY_GP = "penalty.gp"
KEY_R1 = "penalty.r1"
KEY_R2 = "penalty.r2"
KEY_LECAM = "penalty.lecam"
KEY_DRIFT = "penalty.drift"
KEY_D_NORM = "model.d_norm"
KEY_N_CRITIC = "train.n_critic"
KEY_EMA = "train.ema"
KEY_LR_D = "optim.d_lr"
KEY_LR_G = "optim.g_lr"
KEY_POLICY = "augment.policy"
KEY_ADA = "augment.ada_target"
POLICY_ALL = ",".join(POLICIES)  # every transform ganstab has

# config values of loss.kind the advice names
LOSS_NON_SATURATING = "nonsaturating"
LOSS_HINGE = "hinge"
LOSS_WASSERSTEIN = "wasserstein"

_FAMILIES = {
    "wasserstein": "wasserstein", "wgan": "wasserstein", "wgan_gp": "wasserstein",
    "wgangp": "wasserstein", "w": "wasserstein",
    "hinge": "hinge",
    "minimax": "minimax", "saturating": "minimax", "mm": "minimax",
    "ns": "ns", "non_saturating": "ns", "nonsaturating": "ns", "bce": "ns", "vanilla": "ns",
    "standard": "ns", "gan": "ns",
    "lsgan": "lsgan", "least_squares": "lsgan", "ls": "lsgan", "lsq": "lsgan", "mse": "lsgan",
    "relativistic": "relativistic", "rpgan": "relativistic", "relativistic_average": "relativistic",
    "ragan": "relativistic",
}


def loss_family(context: Mapping[str, Any] | None) -> str | None:
    """Normalised loss family of the run: wasserstein, hinge, minimax, ns, lsgan, relativistic, or None if unknown."""
    if not context or context.get("loss_kind") is None:
        return None
    name = str(context["loss_kind"]).strip().lower().replace("-", "_").replace(" ", "_")
    return _FAMILIES.get(name)


def is_wasserstein_like(context: Mapping[str, Any] | None) -> bool:
    """True when the critic's outputs are unanchored (Wasserstein losses)."""
    return loss_family(context) == "wasserstein"


def _number(context: Mapping[str, Any], key: str) -> float | None:
    value = context.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _active(context: Mapping[str, Any], key: str) -> bool:
    value = _number(context, key)
    return value is not None and value > 0


def _d_norm(context: Mapping[str, Any]) -> str | None:
    value = context.get("d_norm")
    return None if value is None else str(value).lower()


def _choices(options: list[str]) -> str:
    if len(options) == 1:
        return options[0]
    return ", ".join(options[:-1]) + ", or " + options[-1]


def _penalised(context: Mapping[str, Any], suggestion: str) -> str:
    """A penalty suggestion, with the D normalisation it needs when D uses batch norm (the config refuses the pair)."""
    if _d_norm(context) == "batch":
        return f"{suggestion} with {KEY_D_NORM}=layer (batch norm in D rules penalties out)"
    return suggestion


def _can_offer_r1(context: Mapping[str, Any]) -> bool:
    """True when R1 may be added as it is: no penalty yet and no batch norm in D (the config refuses that pair)."""
    return not _active(context, "r1") and not _active(context, "gp") and _d_norm(context) != "batch"


def _bn_penalty_note(context: Mapping[str, Any]) -> str | None:
    if _d_norm(context) == "batch" and any(_active(context, key) for key in ("gp", "r1", "r2")):
        return (
            "Batch norm in D couples samples and breaks the per-sample gradient penalty; "
            f"set {KEY_D_NORM}=layer (or spectral)."
        )
    return None


def _divergence(context: Mapping[str, Any]) -> str:
    family = loss_family(context)
    note = _bn_penalty_note(context)
    if note:
        return f"{note} Lower both learning rates ({KEY_LR_D}, {KEY_LR_G}) before resuming."
    if family == "wasserstein":
        if not _active(context, "gp"):
            return (
                f"Use {_penalised(context, f'the gradient penalty {KEY_GP}=10 (WGAN-GP)')} and lower both "
                f"learning rates to 1e-4 ({KEY_LR_D}=1e-4, {KEY_LR_G}=1e-4)."
            )
        return (
            f"Lower both learning rates to 1e-4 ({KEY_LR_D}=1e-4, {KEY_LR_G}=1e-4) and add the "
            f"drift term {KEY_DRIFT}=0.001 to keep the critic's outputs bounded."
        )
    options = [f"lower both learning rates ({KEY_LR_D}, {KEY_LR_G})"]
    if _d_norm(context) != "spectral":
        options.append(f"{KEY_D_NORM}=spectral")
    if _can_offer_r1(context):
        options.append(f"the R1 penalty {KEY_R1}=10")
    return f"Resume from the last good checkpoint and {_choices(options)}."


def _critic_drift(context: Mapping[str, Any]) -> str:
    if _active(context, "drift"):
        first = f"Raise the drift penalty {KEY_DRIFT} (e.g. to 0.01) to anchor the critic's outputs near zero"
    else:
        first = (
            f"Add the drift penalty {KEY_DRIFT}=0.001 (Karras et al. 2018) to anchor the critic's "
            "outputs near zero"
        )
    if not _active(context, "gp"):
        return f"{first}, and use {_penalised(context, f'the gradient penalty {KEY_GP}=10')} rather than weight clipping alone."
    return f"{first}."


def _d_overpowers(context: Mapping[str, Any]) -> str:
    family = loss_family(context)
    spectral = _d_norm(context) == "spectral"
    n_critic = _number(context, "n_critic")
    options: list[str] = []
    if family in ("minimax", "ns", None):
        options.append(f"{KEY_LOSS}={LOSS_HINGE}" + ("" if spectral else f" with {KEY_D_NORM}=spectral"))
        real_label = _number(context, "real_label")
        if real_label is None or real_label >= 1.0:
            qualifier = "" if family is not None else " (minimax/non-saturating losses only)"
            options.append(f"one-sided smoothing {KEY_REAL_LABEL}=0.9{qualifier}")
    else:
        if not spectral:
            options.append(f"{KEY_D_NORM}=spectral")
        if _can_offer_r1(context):
            options.append(f"the R1 penalty {KEY_R1}=10")
    if n_critic is None or n_critic > 1:
        options.append(f"{KEY_N_CRITIC}=1")
    options.append(f"a smaller D learning rate {KEY_LR_D}")
    return f"Try {_choices(options)}."


def _d_overfitting(context: Mapping[str, Any]) -> str:
    policy = str(context.get("augment_policy") or "").strip()
    r1 = f"raise {KEY_R1}" if _active(context, "r1") else _penalised(context, f"add {KEY_R1}=10")
    if not policy:
        return (
            f"On a small data set, augment everything D sees: {KEY_POLICY}={POLICY_ALL} with {KEY_ADA}=0.6 "
            f"(ADA, Karras et al. 2020), or a fixed policy (DiffAugment, Zhao et al. 2020); more training "
            f"images also help. On a large one D is just ahead: see the D-overpowering advice."
        )
    missing = [name for name in POLICY_ALL.split(",") if name not in policy.replace(" ", "").split(",")]
    stronger = f"extend {KEY_POLICY} with {','.join(missing)}, " if missing else ""
    lecam = "" if _active(context, "lecam") else f"add LeCam ({KEY_LECAM}=0.3, Tseng et al. 2021, made for limited data), "
    return (
        f"Augmentation is already at its strongest setting; {stronger}{lecam}{r1}, or train on more images "
        f"(the samples will degrade from here)."
    )


def _vanishing(context: Mapping[str, Any]) -> str:
    family = loss_family(context)
    weaken = [] if _d_norm(context) == "spectral" else [f"{KEY_D_NORM}=spectral"]
    n_critic = _number(context, "n_critic")
    if n_critic is None or n_critic > 1:
        weaken.append(f"{KEY_N_CRITIC}=1")
    weaken.append(f"a smaller {KEY_LR_D}")
    if family == "minimax":
        return (
            "The saturating minimax G loss vanishes when D wins (Goodfellow et al. 2014); use "
            f"{KEY_LOSS}={LOSS_NON_SATURATING}, and weaken D with {_choices(weaken)}."
        )
    return (
        f"Weaken D with {_choices(weaken)}; {KEY_LOSS}={LOSS_WASSERSTEIN} with "
        f"{_penalised(context, f'{KEY_GP}=10')} keeps "
        "G's gradient informative when D separates the distributions."
    )


def _mode_collapse(context: Mapping[str, Any]) -> str:
    family = loss_family(context)
    if _d_norm(context) == "batch":  # measured: hinge + spectral norm rescued the collapsing BN-D recipes
        return (
            f"Batch norm in D couples the samples of a batch and rules out R1 and the gradient penalty: try "
            f"{KEY_LOSS}={LOSS_HINGE} with {KEY_D_NORM}=spectral and TTUR ({KEY_LR_D}=4e-4, {KEY_LR_G}=1e-4), or "
            f"{KEY_LOSS}={LOSS_WASSERSTEIN} with {KEY_GP}=10, {KEY_N_CRITIC}=5 and {KEY_D_NORM}=layer (WGAN-GP)."
        )
    if family == "wasserstein":
        steps = []
        n_critic = _number(context, "n_critic")
        if n_critic is None or n_critic < 5:
            steps.append(f"{KEY_N_CRITIC}=5")
        if not _active(context, "gp"):
            steps.append(f"{KEY_GP}=10")
        steps.append(f"both learning rates at 1e-4 ({KEY_LR_D}, {KEY_LR_G})")
        return f"Try {_choices(steps)} (WGAN-GP), and compare the EMA generator ({KEY_EMA} > 0)."
    r1 = f"raise {KEY_R1}" if _active(context, "r1") else f"add {KEY_R1}=10"
    return (
        f"Try {KEY_LOSS}={LOSS_WASSERSTEIN} with {KEY_GP}=10 and {KEY_N_CRITIC}=5, or keep the loss, "
        f"{r1} and use TTUR ({KEY_LR_D}=4e-4, {KEY_LR_G}=1e-4)."
    )


def _dead(context: Mapping[str, Any]) -> str:
    options = [f"lower both learning rates ({KEY_LR_G}, {KEY_LR_D}; e.g. 2e-4)"]
    if loss_family(context) not in ("ns", "hinge"):
        options.append(f"{KEY_LOSS}={LOSS_NON_SATURATING} or {KEY_LOSS}={LOSS_HINGE}")
    if _d_norm(context) != "spectral":
        options.append(f"{KEY_D_NORM}=spectral")
    return f"The networks stopped learning; restart (a dead network does not recover) and {_choices(options)}."


def _failed_evaluation(context: Mapping[str, Any]) -> str:
    return (
        "The generator's samples are far from the data; check the samples, then "
        f"{_mode_collapse(context)[0].lower()}{_mode_collapse(context)[1:]}"
    )


def _stall(context: Mapping[str, Any]) -> str:
    if loss_family(context) == "wasserstein":
        rates = f"both learning rates at 1e-4 ({KEY_LR_D}, {KEY_LR_G}) with {KEY_N_CRITIC}=5"
    else:
        rates = f"TTUR with the larger rate on D ({KEY_LR_D}=4e-4, {KEY_LR_G}=1e-4)"
    return (
        "If the samples look converged this is a plateau; otherwise try "
        f"{rates}, and evaluate the EMA generator ({KEY_EMA} > 0)."
    )


def _oscillation(context: Mapping[str, Any]) -> str:
    if loss_family(context) == "wasserstein" and not _active(context, "gp"):
        first = _penalised(context, f"Add the gradient penalty {KEY_GP}=10")
    elif _active(context, "r1"):
        first = f"Raise the R1 penalty {KEY_R1}"
    elif _active(context, "gp"):
        first = f"Raise the gradient penalty {KEY_GP}"
    else:
        first = _penalised(context, f"Add the R1 penalty {KEY_R1}=10 (Mescheder et al. 2018)")
    relativistic = ""
    if loss_family(context) != "relativistic" and _d_norm(context) != "batch":
        relativistic = (f" Or switch to the relativistic pairing loss with both penalties ({KEY_LOSS}=relativistic, "
                        f"{KEY_R1}=0.05 and {KEY_R2}=0.05, or --preset r3gan): R3GAN (Huang et al. 2024) shows it "
                        "converges locally where other losses can circle.")
    elif loss_family(context) == "relativistic" and _active(context, "r1") and not _active(context, "r2"):
        relativistic = (f" The relativistic loss needs R2 beside R1 for its convergence result: set {KEY_R2} to "
                        f"the value of {KEY_R1}.")
    return (
        f"{first} and lower both learning rates ({KEY_LR_D}, {KEY_LR_G}); "
        f"an EMA of G ({KEY_EMA} > 0) steadies the samples.{relativistic}"
    )


_BY_CODE = {
    "divergence.nonfinite": _divergence,
    "divergence.explosion": _divergence,
    "divergence.critic_drift": _critic_drift,
    "d_overpowers": _d_overpowers,
    "d_overfitting": _d_overfitting,
    "vanishing_g_grad": _vanishing,
    "mode_collapse.coverage": _mode_collapse,
    "mode_collapse.class_kl": _mode_collapse,
    "mode_collapse.diversity": _mode_collapse,
    "mode_collapse.modes": _mode_collapse,
    "training.dead": _dead,
    "evaluation.failed": _failed_evaluation,
    "stall": _stall,
    "oscillation": _oscillation,
}

CODES: tuple[str, ...] = tuple(_BY_CODE)


def advice_for(code: str, context: Mapping[str, Any] | None = None) -> str:
    """One or two sentences of advice for a finding code, tailored to the run's context."""
    if code not in _BY_CODE:
        raise KeyError(f"unknown finding code {code!r}; known: {list(_BY_CODE)}")
    return _BY_CODE[code](context or {})
