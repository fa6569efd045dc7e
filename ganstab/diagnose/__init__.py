"""Stability doctor: rules over the logged metrics series that return findings with advice."""

from .advice import CODES, advice_for, loss_family
from ganstab.config import DoctorConfig
from .detectors import (
    DETECTORS,
    EVAL_DETECTORS,
    TRAINING_DETECTORS,
    detect_class_kl,
    detect_coverage_drop,
    detect_critic_drift,
    detect_d_overpowers,
    detect_d_overfitting,
    detect_dead,
    detect_diversity,
    detect_explosion,
    detect_failed_evaluation,
    detect_modes,
    detect_nonfinite,
    detect_oscillation,
    detect_stall,
    detect_vanishing_g_grad,
    diagnose,
    verdict,
)
from .doctor import (
    context_from_config,
    diagnose_run,
    format_report,
    is_divergence,
    read_context,
    read_finding_lines,
    read_findings,
    read_records,
    unread_reason,
    write_findings,
)
from .findings import SEVERITIES, Finding, finding_problem
from .tracker import Tracker, normalize_record

__all__ = [
    "CODES", "DETECTORS", "EVAL_DETECTORS", "SEVERITIES", "TRAINING_DETECTORS", "DoctorConfig",
    "Finding", "Tracker", "advice_for", "context_from_config", "detect_class_kl",
    "detect_coverage_drop", "detect_critic_drift", "detect_d_overfitting", "detect_d_overpowers", "detect_dead", "detect_diversity",
    "detect_explosion", "detect_failed_evaluation", "detect_modes", "detect_nonfinite", "detect_oscillation", "detect_stall",
    "detect_vanishing_g_grad", "diagnose", "diagnose_run", "format_report", "is_divergence",
    "loss_family", "normalize_record", "read_context", "read_finding_lines", "read_findings", "read_records", "unread_reason", "finding_problem",
    "verdict", "write_findings",
]
