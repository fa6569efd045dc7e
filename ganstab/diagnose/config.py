"""Thresholds and windows of the stability doctor (exposed as the `doctor.*` config keys).

Windows over training lines count training records (one per `log.every` G steps); windows
over evaluation lines count evaluations (one per `eval.every` steps).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping


@dataclass
class DoctorConfig:
    """Thresholds and windows for every detector; each default is a conservative starting point."""

    # --- divergence -----------------------------------------------------------------------
    # training keys whose NaN/Inf (listed in `nonfinite`, or logged as null) is a divergence
    nonfinite_keys: tuple[str, ...] = (
        "loss_d", "loss_g", "grad_norm_d", "grad_norm_g", "d_real", "d_fake", "gp", "r1", "drift",
    )
    # training keys watched for explosions relative to their running median
    explosion_keys: tuple[str, ...] = ("loss_d", "loss_g", "grad_norm_d", "grad_norm_g")
    # |value - running median| must exceed this many times the series' scale to count as exploding
    explosion_factor: float = 10.0
    # number of earlier non-exploding records in the running median
    explosion_window: int = 50
    # records of history needed before the explosion check starts
    explosion_min_history: int = 10
    # consecutive exploding records needed for a finding (1 = a single spike fires)
    explosion_patience: int = 2
    # |d_real| and |d_fake| must both exceed this for critic drift (Wasserstein-like losses)
    drift_threshold: float = 100.0
    # trailing records over which the growth of |d_real| and |d_fake| is judged
    drift_window: int = 20
    # fraction of record-to-record increases of |d_real| and |d_fake| that counts as monotone
    drift_monotone_frac: float = 0.8

    # --- discriminator overpowering ----------------------------------------------------------
    # D accuracy at or above this is "D wins"
    d_acc_threshold: float = 0.99
    # consecutive training records of D winning needed for a finding
    d_acc_window: int = 20
    # grad_norm_g below early median / this factor counts as vanishing
    vanish_factor: float = 10.0
    # first records with a finite grad_norm_g whose median is the reference
    vanish_early_records: int = 20
    # D accuracy at or above this is required alongside the collapsed G gradient
    vanish_d_acc: float = 0.95
    # consecutive records with a vanished G gradient needed for a finding
    vanish_patience: int = 5

    # --- mode collapse (evaluation lines) -------------------------------------------------------
    # recall-like metrics whose fall from their best signals lost modes
    coverage_keys: tuple[str, ...] = ("eval_coverage", "eval_recall")
    # absolute drop from the best value that is a warning
    coverage_margin: float = 0.1
    # absolute drop from the best value that is an error
    coverage_error_margin: float = 0.3
    # eval_class_kl (nats) above this is a warning
    class_kl_warn: float = 0.1
    # eval_class_kl (nats) above this is an error
    class_kl_error: float = 0.5
    # eval_diversity (1.0 = as diverse as real data) below this is a warning
    diversity_warn: float = 0.75
    # eval_diversity below this is an error
    diversity_error: float = 0.4
    # number of modes the data has (8 ring, 25 grid); None = skip, unless context gives it
    expected_modes: int | None = None
    # eval_modes at or below expected_modes * this is an error (fewer missing: a warning)
    modes_error_fraction: float = 0.5
    # modes within this fraction of the expected count are not a collapse (a dip from 25 to 24 is noise)
    modes_tolerance: float = 0.1
    # consecutive evaluations a mode-collapse condition must hold before it is reported
    collapse_patience: int = 2
    # absolute-threshold checks (class_kl, diversity, modes) ignore evaluations before this step
    eval_warmup_steps: int = 2000

    # --- progress ---------------------------------------------------------------------------
    # main metric for stall detection; None = eval_fd if logged, else eval_modes
    stall_metric: str | None = None
    # direction of the main metric; None = known from its name (eval_fd lower, eval_modes higher)
    stall_higher_is_better: bool | None = None
    # evaluations without improvement that make a stall (info); twice as many make a warning
    stall_window: int = 5
    # relative improvement over the best needed to count as progress
    stall_min_delta: float = 0.01
    # training key whose oscillation is watched
    osc_key: str = "loss_d"
    # records per window over which the (linearly detrended) std is computed
    osc_window: int = 20
    # consecutive windows whose std must each grow by osc_growth
    osc_blocks: int = 3
    # factor by which each window's std must exceed the previous one's
    osc_growth: float = 1.5
    # the last window's std must be at least this (ignores growth of negligible noise)
    osc_min_std: float = 0.05
    # consecutive records at which the growth must hold for a finding
    osc_patience: int = 10

    # --- incremental tracker ----------------------------------------------------------------
    # training records kept by the Tracker (bounded history; evaluations are all kept)
    tracker_history: int = 500
    # training records a training-line finding must stay clear before it can be reported again
    rearm_records: int = 20
    # evaluations an evaluation-line finding must stay clear before it can be reported again
    rearm_evals: int = 2

    def __post_init__(self) -> None:
        self.nonfinite_keys = tuple(self.nonfinite_keys)
        self.explosion_keys = tuple(self.explosion_keys)
        self.coverage_keys = tuple(self.coverage_keys)
        positive_ints = (
            "explosion_window", "explosion_min_history", "explosion_patience", "drift_window",
            "d_acc_window", "vanish_early_records", "vanish_patience", "collapse_patience",
            "stall_window", "osc_window", "osc_blocks", "osc_patience", "tracker_history", "rearm_records",
            "rearm_evals",
        )
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"doctor.{name} must be >= 1, got {getattr(self, name)}")
        if self.osc_window < 3:
            raise ValueError("doctor.osc_window must be >= 3 (a detrended std needs 3 points)")
        if self.osc_blocks < 2:
            raise ValueError("doctor.osc_blocks must be >= 2 (growth compares windows)")
        for name in ("explosion_factor", "vanish_factor", "osc_growth"):
            if getattr(self, name) <= 1.0:
                raise ValueError(f"doctor.{name} must be > 1, got {getattr(self, name)}")
        for name in ("d_acc_threshold", "vanish_d_acc", "drift_monotone_frac", "modes_error_fraction",
                     "modes_tolerance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"doctor.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.coverage_error_margin < self.coverage_margin:
            raise ValueError("doctor.coverage_error_margin must be >= doctor.coverage_margin")
        if self.class_kl_error < self.class_kl_warn:
            raise ValueError("doctor.class_kl_error must be >= doctor.class_kl_warn")
        if self.diversity_error > self.diversity_warn:
            raise ValueError("doctor.diversity_error must be <= doctor.diversity_warn")
        if self.expected_modes is not None and self.expected_modes < 1:
            raise ValueError("doctor.expected_modes must be None or >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        data = asdict(self)
        for name, value in data.items():
            if isinstance(value, tuple):
                data[name] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DoctorConfig":
        """Build from a (partial) dict; an unknown key is a ValueError that lists the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown doctor keys {unknown}; known: {sorted(known)}")
        return cls(**dict(data))
