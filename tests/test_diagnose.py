"""Tests for the stability doctor: every detector on synthetic bad and healthy series."""

from __future__ import annotations

import json
import math
import re
import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganstab.diagnose.detectors import sort_findings, stall_metric
from ganstab.diagnose import (
    CODES,
    DoctorConfig,
    Finding,
    Tracker,
    advice_for,
    context_from_config,
    detect_class_kl,
    detect_coverage_drop,
    detect_critic_drift,
    detect_d_overfitting,
    detect_d_overpowers,
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
    diagnose_run,
    format_report,
    is_divergence,
    read_findings,
    read_records,
    verdict,
    write_findings,
)

EVERY = 100  # log.every
EVAL_EVERY = 1000  # eval.every
NS = {"loss_kind": "nonsaturating", "n_critic": 1, "d_norm": "none"}
WGAN = {"loss_kind": "wasserstein", "n_critic": 5, "d_norm": "layer", "gp": 10.0}
HINGE = {"loss_kind": "hinge", "n_critic": 1, "d_norm": "spectral"}
CONTEXTS = [
    None, {}, NS, WGAN, HINGE,
    {"loss_kind": "minimax"}, {"loss_kind": "lsgan"}, {"loss_kind": "wgan-gp", "gp": 0},
    {"loss_kind": "wasserstein", "n_critic": 5, "d_norm": "batch", "gp": 10.0},
    {"loss_kind": "nonsaturating", "d_norm": "batch", "r1": 10.0, "real_label": 0.9},
    {"loss_kind": "hinge", "d_norm": "batch", "r1": 1.0, "drift": 0.001},
]


def healthy_training(n: int = 300, seed: int = 0) -> list[dict]:
    """Noisy but stable training lines: d_acc about 0.7, losses and grad norms around a level."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        records.append({
            "step": (i + 1) * EVERY,
            "d_steps": (i + 1) * EVERY,
            "loss_d": 1.2 + 0.1 * rng.gauss(0, 1),
            "loss_g": 1.0 + 0.2 * rng.gauss(0, 1),
            "d_real": 0.5 + 0.2 * rng.gauss(0, 1),
            "d_fake": -0.5 + 0.2 * rng.gauss(0, 1),
            "d_acc": min(1.0, max(0.0, 0.7 + 0.05 * rng.gauss(0, 1))),
            "grad_norm_d": 5.0 * math.exp(0.3 * rng.gauss(0, 1)),
            "grad_norm_g": 1.0 * math.exp(0.3 * rng.gauss(0, 1)),
            "lr_d": 2e-4,
            "lr_g": 2e-4,
        })
    return records


def healthy_evals(n: int = 30, seed: int = 0) -> list[dict]:
    """Improving evaluation lines (FD falling, coverage/recall rising, classes balanced)."""
    rng = random.Random(seed + 1000)
    records = []
    for i in range(n):
        step = (i + 1) * EVAL_EVERY
        records.append({
            "step": step,
            "eval_fd": 100.0 * math.exp(-step / 15000) + 5.0 + 0.3 * rng.gauss(0, 1),
            "eval_coverage": 0.9 - 0.5 * math.exp(-step / 8000) + 0.01 * rng.gauss(0, 1),
            "eval_recall": 0.8 - 0.5 * math.exp(-step / 8000) + 0.01 * rng.gauss(0, 1),
            "eval_class_kl": 0.02 + 0.005 * abs(rng.gauss(0, 1)),
            "eval_diversity": 0.95 + 0.02 * rng.gauss(0, 1),
        })
    return records


def merged(training: list[dict], evals: list[dict]) -> list[dict]:
    """Training and eval lines interleaved by step, training line first, as the loop writes them."""
    return sorted(training + evals, key=lambda r: (r["step"], any(k.startswith("eval_") for k in r)))


def evals_of(key: str, values: list[float], start: int = EVAL_EVERY) -> list[dict]:
    """Evaluation lines carrying one key, one per `EVAL_EVERY` steps from `start`."""
    return [{"step": start + i * EVAL_EVERY, key: v} for i, v in enumerate(values)]


def only(findings: list[Finding], code: str) -> Finding:
    """The single finding with `code` (fails otherwise)."""
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, [f.to_dict() for f in findings]
    return matching[0]


CFG = DoctorConfig()
# the same windows at this file's log interval of 100 steps: the former record counts x 100
# (the defaults are those counts x 50, the default log.every)
CFG100 = DoctorConfig(
    explosion_window_steps=5000, explosion_min_history_steps=1000, explosion_patience_steps=200,
    drift_window_steps=2000, d_acc_window_steps=2000, vanish_early_steps=2000, vanish_patience_steps=500,
    osc_window_steps=2000, osc_patience_steps=1000, rearm_steps=2000,
)


# ---------------------------------------------------------------------------------------------
# healthy runs stay silent
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("context", [NS, WGAN, HINGE, None])
def test_healthy_run_has_no_findings(seed: int, context: dict | None) -> None:
    records = merged(healthy_training(seed=seed), healthy_evals(seed=seed))
    assert diagnose(records, CFG, context) == []
    assert format_report([]) == "No problems found."


def test_healthy_modes_run_has_no_findings() -> None:
    cfg = DoctorConfig(expected_modes=25)
    modes = [10, 16, 20, 23, 24, 25, 25, 25, 25, 25, 25, 25, 25, 25]
    records = merged(healthy_training(n=140), evals_of("eval_modes", modes))
    assert diagnose(records, cfg, NS) == []


# ---------------------------------------------------------------------------------------------
# divergence
# ---------------------------------------------------------------------------------------------


def test_nonfinite_fires_on_nan_losses() -> None:
    records = healthy_training(n=80)
    for i in (50, 51, 52):
        records[i]["loss_d"] = None
        records[i]["grad_norm_d"] = None
        records[i]["nonfinite"] = ["loss_d", "grad_norm_d"]
    finding = only(detect_nonfinite(records, CFG, NS), "divergence.nonfinite")
    assert finding.severity == "error"
    assert (finding.start_step, finding.end_step) == (5100, 5300)
    assert finding.evidence["records"] == 3
    assert finding.evidence["keys"] == 2
    assert "loss_d" in finding.message and "grad_norm_d" in finding.message
    assert is_divergence(finding)


def test_nonfinite_fires_on_null_loss_without_list() -> None:
    records = healthy_training(n=20)
    records[7]["loss_g"] = None
    finding = only(detect_nonfinite(records, CFG), "divergence.nonfinite")
    assert (finding.start_step, finding.end_step) == (800, 800)


def test_nonfinite_ignores_eval_keys_and_missing_keys() -> None:
    records = healthy_training(n=20)
    for record in records:
        del record["grad_norm_g"]  # not logged at all is not a divergence
    records.append({"step": 2000, "eval_fd": None, "nonfinite": ["eval_fd"]})
    assert detect_nonfinite(records, CFG) == []


def test_explosion_fires_on_grad_norm_spike() -> None:
    records = healthy_training(n=150)
    for i in range(100, 105):
        records[i]["grad_norm_d"] *= 1000.0
    finding = only(detect_explosion(records, CFG100, NS), "divergence.explosion")
    assert finding.metric == "grad_norm_d"
    assert finding.severity == "error"
    assert (finding.start_step, finding.end_step) == (10100, 10500)
    assert finding.evidence["ratio"] > 100.0
    assert finding.evidence["median"] == pytest.approx(5.0, rel=0.3)
    assert is_divergence(finding)


def test_explosion_fires_on_negative_wasserstein_loss() -> None:
    records = healthy_training(n=120)
    for i, record in enumerate(records):
        record["loss_d"] = -2.0 + 0.3 * math.sin(i)
    for i in range(90, 95):
        records[i]["loss_d"] = -500.0
    finding = only(detect_explosion(records, CFG100, WGAN), "divergence.explosion")
    assert finding.metric == "loss_d"
    assert finding.evidence["value"] == -500.0
    assert (finding.start_step, finding.end_step) == (9100, 9500)


def test_explosion_ignores_single_spike() -> None:
    records = healthy_training(n=150)
    records[100]["grad_norm_d"] *= 1000.0  # one record: below explosion_patience=2
    assert detect_explosion(records, CFG100) == []


def wasserstein_drift(n: int = 120, start: int = 40) -> list[dict]:
    """Critic outputs that start growing steadily (in magnitude) at record `start`."""
    records = healthy_training(n=n)
    for i, record in enumerate(records):
        level = 10.0 if i < start else 10.0 * 1.05 ** (i - start)
        record["d_real"] = level + 0.1 * math.sin(i)
        record["d_fake"] = -level - 2.0 + 0.1 * math.cos(i)
        record["d_acc"] = 1.0
    return records


def test_critic_drift_fires_for_wasserstein() -> None:
    records = wasserstein_drift()
    finding = only(detect_critic_drift(records, CFG100, WGAN), "divergence.critic_drift")
    assert finding.severity == "warning"
    assert not is_divergence(finding)
    # |d| first exceeds 100 at record 88 (step 8900, 10*1.05**48); its 2000-step window covers steps 6901-8900
    assert finding.start_step == 8900 - 2000 + 1
    assert finding.end_step == 120 * EVERY
    assert finding.evidence["d_real"] > 100.0 and finding.evidence["d_fake"] < -100.0
    assert finding.evidence["increase_frac"] >= 0.8
    assert "penalty.drift=0.001" in finding.advice


def test_critic_drift_silent_for_bounded_outputs_and_other_losses() -> None:
    records = healthy_training(n=120)
    rng = random.Random(3)
    for record in records:  # large but stationary outputs
        record["d_real"] = 500.0 + rng.gauss(0, 5)
        record["d_fake"] = -500.0 + rng.gauss(0, 5)
    assert detect_critic_drift(records, CFG100, WGAN) == []
    assert detect_critic_drift(wasserstein_drift(), CFG100, NS) == []


# ---------------------------------------------------------------------------------------------
# discriminator overpowering
# ---------------------------------------------------------------------------------------------


def overpowered(n: int = 100, first: int = 19, last: int = 59) -> list[dict]:
    """D accuracy 0.995 over records first..last (steps (first+1)*100 .. (last+1)*100)."""
    records = healthy_training(n=n)
    for i in range(first, last + 1):
        records[i]["d_acc"] = 0.995 if i % 2 else 1.0
    return records


def test_d_overpowers_fires_with_step_range_and_advice() -> None:
    finding = only(detect_d_overpowers(overpowered(), CFG100, NS), "d_overpowers")
    assert finding.severity == "warning"
    assert (finding.start_step, finding.end_step) == (2000, 6000)
    assert finding.evidence["d_acc_mean"] == pytest.approx((21 * 0.995 + 20 * 1.0) / 41)
    assert finding.evidence["records"] == 41
    assert "loss.kind=hinge with model.d_norm=spectral" in finding.advice
    assert "loss.real_label=0.9" in finding.advice


def test_d_overpowers_advice_follows_context() -> None:
    hinge = only(detect_d_overpowers(overpowered(), CFG100, HINGE), "d_overpowers")
    assert "real_label" not in hinge.advice and "smooth" not in hinge.advice
    assert "model.d_norm=spectral" not in hinge.advice  # already spectral
    assert "train.n_critic=1" not in hinge.advice  # already 1
    smoothed = dict(NS, real_label=0.9, n_critic=5)
    advice = only(detect_d_overpowers(overpowered(), CFG100, smoothed), "d_overpowers").advice
    assert "real_label" not in advice and "train.n_critic=1" in advice


def test_d_overpowers_silent_when_short_or_wasserstein() -> None:
    assert detect_d_overpowers(overpowered(first=19, last=30), CFG100, NS) == []
    assert detect_d_overpowers(overpowered(), CFG100, WGAN) == []


def vanishing(n: int = 140, first: int = 100) -> list[dict]:
    """G gradient collapsing 1000x with D at 0.999 accuracy from record `first`."""
    records = healthy_training(n=n)
    for i in range(first, n):
        records[i]["grad_norm_g"] = 1e-3 * (1.0 + 0.1 * math.sin(i))
        records[i]["d_acc"] = 0.999
    return records


def test_vanishing_g_grad_fires() -> None:
    finding = only(detect_vanishing_g_grad(vanishing(), CFG100, {"loss_kind": "minimax"}), "vanishing_g_grad")
    assert finding.severity == "warning"
    assert (finding.start_step, finding.end_step) == (10100, 14000)
    assert finding.evidence["ratio"] > 500.0
    assert finding.evidence["d_acc_mean"] == pytest.approx(0.999)
    assert "loss.kind=nonsaturating" in finding.advice


def test_vanishing_g_grad_silent_when_d_does_not_win() -> None:
    records = vanishing()
    for record in records[100:]:
        record["d_acc"] = 0.7
    assert detect_vanishing_g_grad(records, CFG100, NS) == []
    assert detect_vanishing_g_grad(vanishing(), CFG100, WGAN) == []


# ---------------------------------------------------------------------------------------------
# mode collapse
# ---------------------------------------------------------------------------------------------


def test_coverage_drop_error_and_warning() -> None:
    coverage = [0.5, 0.7, 0.85, 0.9, 0.88, 0.6, 0.5, 0.55]
    recall = [0.5, 0.7, 0.8, 0.8, 0.78, 0.68, 0.66, 0.79]
    records = evals_of("eval_coverage", coverage) + evals_of("eval_recall", recall)
    findings = detect_coverage_drop(records, CFG, NS)
    cov = [f for f in findings if f.metric == "eval_coverage"]
    rec = [f for f in findings if f.metric == "eval_recall"]
    assert len(cov) == 1 and len(rec) == 1
    assert cov[0].code == "mode_collapse.coverage" and cov[0].severity == "error"
    assert (cov[0].start_step, cov[0].end_step) == (6000, 8000)
    assert cov[0].evidence["drop"] == pytest.approx(0.4)
    assert cov[0].evidence["best_step"] == 4000
    assert rec[0].severity == "warning"
    assert (rec[0].start_step, rec[0].end_step) == (6000, 7000)
    assert rec[0].evidence["value"] == pytest.approx(0.66)


def test_coverage_single_dip_is_silent() -> None:
    records = evals_of("eval_coverage", [0.5, 0.8, 0.9, 0.75, 0.9, 0.91])
    assert detect_coverage_drop(records, CFG) == []


def test_class_kl_warning_and_error_after_warmup() -> None:
    # 2.0 is in the warm-up; 1.5 alone is shorter than collapse_patience
    values = [2.0, 1.5, 0.05, 0.04, 0.3, 0.35, 0.03, 0.6, 0.9]
    findings = detect_class_kl(evals_of("eval_class_kl", values), CFG, NS)
    assert [(f.severity, f.start_step, f.end_step) for f in findings] == [
        ("warning", 5000, 6000), ("error", 8000, 9000)]
    assert findings[1].evidence["class_kl"] == pytest.approx(0.9)
    assert detect_class_kl(evals_of("eval_class_kl", [2.0, 1.5, 0.05, 0.04]), CFG) == []


def test_diversity_warning_and_error() -> None:
    values = [0.9, 0.95, 0.6, 0.62, 0.95, 0.3, 0.2]
    findings = detect_diversity(evals_of("eval_diversity", values), CFG, NS)
    assert [(f.code, f.severity, f.start_step, f.end_step) for f in findings] == [
        ("mode_collapse.diversity", "warning", 3000, 4000),
        ("mode_collapse.diversity", "error", 6000, 7000)]
    assert findings[1].evidence["diversity"] == pytest.approx(0.2)


def test_modes_below_expected() -> None:
    records = evals_of("eval_modes", [5, 20, 22, 22, 22, 25, 12, 11, 10])
    findings = detect_modes(records, DoctorConfig(expected_modes=25), NS)
    assert [(f.code, f.severity, f.start_step, f.end_step) for f in findings] == [
        ("mode_collapse.modes", "warning", 4000, 5000), ("mode_collapse.modes", "error", 7000, 9000)]
    assert findings[1].evidence["missing"] == 15
    # expected from the context when the config leaves it unset; skipped when neither has it
    assert len(detect_modes(records, CFG, {"expected_modes": 25})) == 2
    assert detect_modes(records, CFG, NS) == []


def test_modes_still_gaining_is_silent() -> None:
    records = evals_of("eval_modes", [3, 8, 12, 15, 17, 19, 21, 22, 24, 25])
    assert detect_modes(records, DoctorConfig(expected_modes=25)) == []


# ---------------------------------------------------------------------------------------------
# stall and oscillation
# ---------------------------------------------------------------------------------------------


def test_stall_info_then_warning() -> None:
    fd = [100, 60, 40, 30] + [30.5] * 6
    finding = only(detect_stall(evals_of("eval_fd", fd), CFG), "stall")
    assert finding.severity == "info" and finding.metric == "eval_fd"
    assert (finding.start_step, finding.end_step) == (4000, 10000)
    assert finding.evidence["evaluations_since_best"] == 6
    longer = only(detect_stall(evals_of("eval_fd", [100, 60, 40, 30] + [30.5] * 10), CFG), "stall")
    assert longer.severity == "warning"
    assert detect_stall(evals_of("eval_fd", [100, 80, 60, 50, 45, 40, 38, 36, 34, 32]), CFG) == []


def test_stall_uses_modes_higher_is_better_and_skips_converged() -> None:
    stuck = evals_of("eval_modes", [10, 15, 18] + [18] * 6)
    finding = only(detect_stall(stuck, CFG), "stall")
    assert finding.metric == "eval_modes" and finding.start_step == 3000
    converged = evals_of("eval_modes", [10, 20, 25] + [25] * 12)
    assert detect_stall(converged, DoctorConfig(expected_modes=25)) == []


def growing_oscillation(n: int = 200, start: int = 80) -> list[dict]:
    """loss_d oscillating with an amplitude that doubles every 20 records from record `start`."""
    records = healthy_training(n=n)
    rng = random.Random(7)
    for i, record in enumerate(records):
        amplitude = 0.02 * 2.0 ** (max(0, i - start) / 20.0)
        record["loss_d"] = 1.2 + amplitude * math.sin(2 * math.pi * i / 6) + 0.01 * rng.gauss(0, 1)
    return records


def test_oscillation_fires_on_growing_amplitude() -> None:
    finding = only(detect_oscillation(growing_oscillation(), CFG100, NS), "oscillation")
    assert finding.severity == "warning" and finding.metric == "loss_d"
    # first flagged at record 122 (patience 10 after the growth shows in all three windows);
    # the reported range starts with the first G step of its three 2000-step windows (12300 - 6000 + 1)
    assert (finding.start_step, finding.end_step) == (6301, 20000)
    assert finding.evidence["growth"] >= 1.5 ** 2
    assert "penalty.r1=10" in finding.advice


def test_oscillation_silent_on_constant_amplitude() -> None:
    records = healthy_training(n=200)
    for i, record in enumerate(records):
        record["loss_d"] = 1.2 + 0.5 * math.sin(2 * math.pi * i / 6)
    assert detect_oscillation(records, CFG100) == []


# ---------------------------------------------------------------------------------------------
# advice consistency with the guide
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("code", CODES)
def test_advice_never_smooths_fake_label_or_suggests_batch_norm(code: str, context: dict | None) -> None:
    advice = advice_for(code, context)
    assert advice and advice.endswith(".")
    assert "fake_label" not in advice
    assert "d_norm=batch" not in advice
    kind = (context or {}).get("loss_kind", "")
    if kind and any(name in kind for name in ("wasserstein", "wgan", "hinge", "lsgan")):
        assert "real_label" not in advice and "smooth" not in advice.lower()


def test_advice_calls_out_batch_norm_with_penalty() -> None:
    advice = advice_for("divergence.nonfinite", CONTEXTS[8])
    assert "model.d_norm=layer" in advice and "Batch norm" in advice


def test_advice_from_detectors_respects_context() -> None:
    records = merged(overpowered(), [])
    for context in CONTEXTS:
        for finding in diagnose(records, CFG, context):
            assert "fake_label" not in finding.advice
            if context and context.get("loss_kind") in ("wasserstein", "hinge"):
                assert "real_label" not in finding.advice


# ---------------------------------------------------------------------------------------------
# Tracker
# ---------------------------------------------------------------------------------------------


def feed(tracker: Tracker, records: list[dict]) -> list[tuple[int, Finding]]:
    """(step, finding) for every new finding the tracker reports."""
    reported = []
    for record in records:
        for finding in tracker.update(record):
            reported.append((record["step"], finding))
    return reported


def test_tracker_reports_once_per_episode() -> None:
    reported = feed(Tracker(CFG100, NS), overpowered(n=100))
    assert [(step, f.code) for step, f in reported] == [(3900, "d_overpowers")]
    assert reported[0][1].start_step == 2000


def test_tracker_rearms_only_after_clear_window() -> None:
    records = healthy_training(n=200)
    episodes = [(19, 59), (65, 90), (130, 170)]  # the second resumes within rearm_records=20
    for first, last in episodes:
        for i in range(first, last + 1):
            records[i]["d_acc"] = 1.0
    reported = feed(Tracker(CFG100, NS), records)
    assert [(step, f.code, f.start_step) for step, f in reported] == [
        (3900, "d_overpowers", 2000), (15000, "d_overpowers", 13100)]


def test_tracker_reports_severity_escalation() -> None:
    records = evals_of("eval_coverage", [0.5, 0.8, 0.9, 0.75, 0.74, 0.5, 0.5])
    reported = feed(Tracker(CFG100, NS), records)
    assert [(step, f.severity) for step, f in reported] == [(5000, "warning"), (6000, "error")]


def test_tracker_matches_diagnose_and_round_trips_state() -> None:
    training = healthy_training(n=300)
    for i in range(150, 200):
        training[i]["d_acc"] = 1.0
    for i in range(250, 253):
        training[i]["loss_d"] = None
        training[i]["nonfinite"] = ["loss_d"]
    evals = evals_of("eval_diversity", [0.9] * 5 + [0.3] * 5 + [0.9] * 20)
    records = merged(training, evals)

    uninterrupted = feed(Tracker(CFG100, NS), records)
    keys = {f.key for _, f in uninterrupted}
    assert keys == {f.key for f in diagnose(records, CFG100, NS)}
    assert len(uninterrupted) == len(keys)

    cut = len(records) // 2
    first = Tracker(CFG100, NS)
    before = feed(first, records[:cut])
    state = json.loads(json.dumps(first.state_dict()))  # plain JSON values only
    resumed = Tracker(CFG100, NS)
    resumed.load_state_dict(state)
    after = feed(resumed, records[cut:])
    as_dicts = lambda pairs: [(step, f.to_dict()) for step, f in pairs]  # noqa: E731
    assert as_dicts(before + after) == as_dicts(uninterrupted)
    assert resumed.state_dict() == json.loads(json.dumps(resumed.state_dict()))


def test_tracker_leaves_quick_lines_out_of_class_kl_like_diagnose() -> None:
    """Live = offline for quick lines: the tracker kept only step/final/eval_ keys, so the class-KL detector could
    not tell a quick line (250 samples, biased upwards) from a full one and warned live where `ganstab doctor`
    found nothing (default Fashion-MNIST runs of 10,000 steps, 2026-12-06)."""
    full = evals_of("eval_class_kl", [0.03] * 10)
    quick = [{"step": 3100 + 100 * i, "eval_class_kl": 0.2, "quick": True} for i in range(4)]  # after warm-up
    records = sorted(full + quick, key=lambda r: r["step"])
    assert diagnose(records, CFG, NS) == []
    assert feed(Tracker(CFG, NS), records) == []
    # the same values on full lines are a warning, live and offline alike
    loud = [{k: v for k, v in r.items() if k != "quick"} for r in records]
    assert [f.code for f in diagnose(loud, CFG, NS)] == ["mode_collapse.class_kl"]
    assert [f.code for _, f in feed(Tracker(CFG, NS), loud)] == ["mode_collapse.class_kl"]


def test_tracker_history_is_bounded_and_keeps_early_baseline() -> None:
    cfg = CFG100.model_copy(update={"tracker_history": 60})
    tracker = Tracker(cfg, {"loss_kind": "minimax"})
    reported = feed(tracker, vanishing(n=200, first=150))
    assert len(tracker.state_dict()["train"]) == 60
    assert [(step, f.code) for step, f in reported] == [
        (15500, "vanishing_g_grad"), (17000, "d_overpowers")]


def test_tracker_accepts_raw_nan_and_rollback() -> None:
    tracker = Tracker(CFG100, NS)
    feed(tracker, healthy_training(n=30))
    new = tracker.update({"step": 3100, "loss_d": float("nan"), "loss_g": 1.0, "d_acc": 0.7})
    assert [f.code for f in new] == ["divergence.nonfinite"] and is_divergence(new[0])
    # recovery rolls back to step 2000 and the records from there on replace the old ones
    feed(tracker, healthy_training(n=60)[19:])
    assert tracker.state_dict()["train"][-1]["step"] == 6000
    assert "divergence.nonfinite" not in tracker.active_keys()
    assert all(r.get("loss_d") is not None for r in tracker.state_dict()["train"])


# ---------------------------------------------------------------------------------------------
# Finding, config, run directory, report
# ---------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    code=st.sampled_from(CODES),
    severity=st.sampled_from(["info", "warning", "error"]),
    start=st.integers(0, 10**7),
    length=st.integers(0, 10**6),
    value=st.floats(allow_nan=False, allow_infinity=False, width=64),
    metric=st.one_of(st.none(), st.sampled_from(["loss_d", "eval_recall"])),
)
def test_finding_json_round_trip(code: str, severity: str, start: int, length: int, value: float,
                                 metric: str | None) -> None:
    finding = Finding(code, severity, start, start + length, {"value": value, "records": 3},
                      "A message.", "Some advice.", metric)
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding


def test_finding_rejects_bad_severity_and_nonfinite_evidence() -> None:
    with pytest.raises(ValueError):
        Finding("stall", "fatal", 0, 1)
    with pytest.raises(ValueError):
        Finding("stall", "info", 0, 1, {"best": float("nan")})


def test_doctor_config_round_trip_and_validation() -> None:
    cfg = DoctorConfig(expected_modes=8, d_acc_threshold=0.98)
    assert DoctorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="known"):
        DoctorConfig.from_dict({"no_such_key": 1})
    with pytest.raises(ValueError):
        DoctorConfig(d_acc_threshold=1.5)
    with pytest.raises(ValueError):
        DoctorConfig(explosion_factor=0.5)


def test_read_records_deduplicates_resume_and_ignores_torn_line(tmp_path) -> None:
    lines = [
        {"step": 100, "loss_d": 1.0}, {"step": 200, "loss_d": 1.1}, {"step": 200, "eval_fd": 50.0},
        {"step": 300, "loss_d": 9.0},  # lost by the crash, rewritten after resuming from step 200
        {"step": 300, "loss_d": 1.2}, {"step": 400, "loss_d": 1.3, "nonfinite": []},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + '\n{"step": 500, "loss'
    (tmp_path / "metrics.jsonl").write_text(text)
    records = read_records(tmp_path)
    assert [(r["step"], r.get("loss_d"), r.get("eval_fd")) for r in records] == [
        (100, 1.0, None), (200, 1.1, None), (200, None, 50.0), (300, 1.2, None), (400, 1.3, None)]
    assert read_records(tmp_path / "metrics.jsonl") == records


def test_diagnose_run_reads_context_from_config(tmp_path) -> None:
    records = overpowered()
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "config.yaml").write_text(
        "data:\n  name: digits\nloss:\n  kind: hinge\npenalty:\n  r1: 0.0\nmodel:\n  d_norm: none\n"
        "train:\n  n_critic: 2\n")
    assert context_from_config({"loss": {"kind": "hinge"}, "train.n_critic": 2}) == {
        "loss_kind": "hinge", "n_critic": 2}
    assert context_from_config({"data": {"name": "grid25"}, "penalty": {"gp": 10.0}}) == {
        "gp": 10.0, "expected_modes": 25}
    finding = only(diagnose_run(tmp_path), "d_overpowers")
    assert "real_label" not in finding.advice and "model.d_norm=spectral" in finding.advice
    write_findings(tmp_path / "findings.jsonl", [finding])
    assert read_findings(tmp_path / "findings.jsonl") == [finding]


def test_format_report_lists_each_finding() -> None:
    findings = diagnose(merged(overpowered(), evals_of("eval_diversity", [0.9, 0.9, 0.2, 0.2])), CFG100, NS)
    report = format_report(findings)
    assert report.startswith("2 findings (1 error, 1 warning)")
    assert "WARNING  d_overpowers  steps 2000-6000" in report
    assert "ERROR  mode_collapse.diversity  steps 3000-4000" in report
    assert "advice: Try loss.kind=hinge" in report
    assert "evidence: d_acc_mean=" in report


def test_mode_hopping_is_flagged_as_collapse():
    """Seed 0 of the plain GAN on grid25 in benchmarks/modes2d: modes hop 22, 16, 21, 17, 21, 13."""
    from ganstab.diagnose import DoctorConfig, detect_modes

    evals = [{"step": s, "images_seen": s * 256, "eval_modes": m, "eval_hq_fraction": 0.1}
             for s, m in ((500, 22), (1000, 16), (1500, 21), (2000, 17), (2500, 21), (3000, 13))]
    found = detect_modes(evals, DoctorConfig(), {"expected_modes": 25})
    assert [(f.code, f.severity, f.start_step, f.end_step) for f in found] == [
        ("mode_collapse.modes", "warning", 2000, 3000)]
    assert found[0].evidence["modes"] == 13 and found[0].evidence["missing"] == 12
    rising = [dict(e, eval_modes=m) for e, m in zip(evals, (10, 14, 18, 21, 23, 25))]
    assert detect_modes(rising, DoctorConfig(), {"expected_modes": 25}) == []


def test_small_dip_after_all_modes_is_not_collapse():
    """modes2d grid25 seed 1: all 25 modes, then 24 twice — within the 10 % tolerance, no finding."""
    from ganstab.diagnose import DoctorConfig, detect_modes

    evals = [{"step": s, "images_seen": s * 256, "eval_modes": m}
             for s, m in ((1000, 22), (2000, 25), (3000, 24), (4000, 24), (5000, 25))]
    assert detect_modes(evals, DoctorConfig(), {"expected_modes": 25}) == []
    ring = [dict(e, eval_modes=m) for e, m in zip(evals, (6, 8, 7, 7, 7))]  # 7 of 8 is outside 10 %
    found = detect_modes(ring, DoctorConfig(), {"expected_modes": 8})
    assert [(f.code, f.severity, f.start_step, f.end_step) for f in found] == [
        ("mode_collapse.modes", "warning", 3000, 5000)]


# ---------------------------------------------------------------------------------------------
# windows in G steps: the same run logged every 10, 50 and 100 steps is diagnosed alike
# ---------------------------------------------------------------------------------------------

RUN_STEPS = 10000


def _base(step: int) -> dict:
    """A healthy, deterministic training line at `step` (a smooth function of the step)."""
    return {
        "step": step, "d_steps": step,
        "loss_d": 1.2 + 0.1 * math.sin(step / 77), "loss_g": 1.0 + 0.2 * math.cos(step / 53),
        "d_real": 0.5 + 0.1 * math.sin(step / 31), "d_fake": -0.5 + 0.1 * math.cos(step / 29),
        "d_acc": 0.7 + 0.05 * math.sin(step / 91),
        "grad_norm_d": 5.0 * math.exp(0.3 * math.sin(step / 61)),
        "grad_norm_g": 1.0 * math.exp(0.3 * math.cos(step / 47)),
    }


def _nonfinite(r: dict) -> None:
    if 6020 <= r["step"] <= 6330:
        r["loss_d"] = None
        r["nonfinite"] = ["loss_d"]


def _explosion(r: dict) -> None:
    if 7020 <= r["step"] <= 7430:
        r["grad_norm_d"] *= 1000.0


def _drift(r: dict) -> None:
    level = 10.0 * math.exp(max(0, r["step"] - 4000) / 1000)
    r["d_real"], r["d_fake"] = level, -level - 2.0


def _dead(r: dict) -> None:
    if r["step"] >= 8020:
        r["grad_norm_g"] = 0.0


def _overpowered(r: dict) -> None:
    if 3020 <= r["step"] <= 5530:
        r["d_acc"] = 1.0


def _vanishing(r: dict) -> None:
    if r["step"] >= 7020:
        r["grad_norm_g"], r["d_acc"] = 1e-3, 0.999


def _oscillating(r: dict) -> None:
    amplitude = 0.02 * 2.0 ** (max(0, r["step"] - 4000) / 1000)
    r["loss_d"] = 1.2 + amplitude * math.sin(2 * math.pi * r["step"] / 250)


# family -> (how a line is changed, context, the findings (code, severity, start, end) logged every 10 steps)
FAMILIES = {
    "nonfinite": (_nonfinite, NS, [("divergence.nonfinite", "error", 6020, 6330)]),
    "explosion": (_explosion, NS, [("divergence.explosion", "error", 7020, 7430)]),
    # |d| crosses 100 at step 6302.6 (first line 6310); its 1000-step window starts at 5311
    "critic_drift": (_drift, WGAN, [("divergence.critic_drift", "warning", 5311, 10000)]),
    "dead": (_dead, NS, [("training.dead", "error", 8020, 10000)]),
    "d_overpowers": (_overpowered, NS, [("d_overpowers", "warning", 3020, 5530)]),
    "vanishing": (_vanishing, {"loss_kind": "minimax"}, [
        ("d_overpowers", "warning", 7020, 10000), ("vanishing_g_grad", "warning", 7020, 10000)]),
    # the first G step of the three 1000-step windows ending at the first flagged line
    "oscillation": (_oscillating, NS, [("oscillation", "warning", 3151, 10000)]),
}


def logged_run(change, every: int) -> list[dict]:
    """The synthetic run's training lines as written with log.every = `every`."""
    records = []
    for step in range(every, RUN_STEPS + 1, every):
        record = _base(step)
        change(record)
        records.append(record)
    return records


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_same_run_is_diagnosed_alike_at_any_log_interval(family: str) -> None:
    change, context, expected = FAMILIES[family]
    by_every = {every: diagnose(logged_run(change, every), CFG, context) for every in (10, 50, 100)}
    reference = by_every[10]
    assert [(f.code, f.severity, f.start_step, f.end_step) for f in reference] == expected
    for every, findings in by_every.items():
        assert [(f.code, f.severity, f.metric) for f in findings] == [
            (f.code, f.severity, f.metric) for f in reference], (every, [f.to_dict() for f in findings])
        for finding, expected in zip(findings, reference):
            assert abs(finding.start_step - expected.start_step) <= every, (every, finding.to_dict())
            assert abs(finding.end_step - expected.end_step) <= every, (every, finding.to_dict())


def test_run_with_fewer_lines_than_former_window_is_diagnosed() -> None:
    # logged every 500 steps: 3 lines of D winning cover 1500 G steps, past d_acc_window_steps=1000
    records = [dict(_base(step), d_acc=1.0 if 2000 <= step <= 3000 else 0.7) for step in range(500, 5001, 500)]
    finding = only(detect_d_overpowers(records, CFG, NS), "d_overpowers")
    assert (finding.start_step, finding.end_step) == (2000, 3000)
    assert finding.evidence["records"] == 3
    # two lines are below d_acc_min_records=3 whatever steps they span
    records[5]["d_acc"] = 0.7
    assert detect_d_overpowers(records, CFG, NS) == []


def test_legacy_record_count_keys_read_as_steps() -> None:
    cfg = DoctorConfig.from_dict({"d_acc_window": 20, "osc_window": 10, "rearm_records": 4})
    assert (cfg.d_acc_window_steps, cfg.osc_window_steps, cfg.rearm_steps) == (1000, 500, 200)


# ---------------------------------------------------------------------------------------------
# dead training
# ---------------------------------------------------------------------------------------------


def test_dead_training_on_zero_grad_norm() -> None:
    records = healthy_training(n=10)  # steps 100 .. 1000
    for record in records[4:]:
        record["grad_norm_d"] = 0.0
    finding = only(detect_dead(records, CFG, {"loss_kind": "minimax", "d_norm": "none"}), "training.dead")
    assert finding.severity == "error" and not is_divergence(finding)
    # the 500-step window (300, 700] is the first with half its 5 records dead; its first dead one is 500
    assert (finding.start_step, finding.end_step) == (500, 1000)
    assert finding.evidence == {"records": 6, "fraction": 0.75, "zero_grad_g": 0, "zero_grad_d": 1,
                                "constant_losses": 0}
    assert "6 of 8 records (75%) show grad_norm_d < 1e-08" in finding.message
    for switch in ("optim.g_lr", "optim.d_lr", "loss.kind=nonsaturating", "loss.kind=hinge", "model.d_norm=spectral"):
        assert switch in finding.advice


def test_dead_training_intermittent_revival_is_still_dead() -> None:
    records = healthy_training(n=10)
    for index in (1, 2, 4, 6, 8, 9):  # D's gradient zero in 6 of 10 records, briefly revived between
        records[index]["grad_norm_d"] = 0.0
    finding = only(detect_dead(records, CFG, NS), "training.dead")
    assert (finding.start_step, finding.end_step) == (200, 1000)
    assert finding.evidence["records"] == 6 and finding.evidence["fraction"] == pytest.approx(0.6)


def test_dead_training_on_constant_losses_and_silent_when_short() -> None:
    records = healthy_training(n=10)
    for record in records[6:]:
        record["loss_d"], record["loss_g"] = 0.6931471805599453, 0.6931471805599453
    # steps 800, 900, 1000 equal their predecessor (700 starts the constant value): 3 of the 5 in (500, 1000]
    finding = only(detect_dead(records, CFG, NS), "training.dead")
    assert (finding.start_step, finding.end_step) == (800, 1000)
    assert finding.evidence == {"records": 3, "fraction": 0.6, "zero_grad_g": 0, "zero_grad_d": 0,
                                "constant_losses": 1}
    records[8]["loss_g"] = 0.5  # now only step 800 repeats its predecessor
    assert detect_dead(records, CFG, NS) == []
    tiny = healthy_training(n=10)
    tiny[5]["grad_norm_g"] = 1e-7  # small but not numerically zero
    assert detect_dead(tiny, CFG, NS) == []


# ---------------------------------------------------------------------------------------------
# failed evaluation, decisive final evaluation
# ---------------------------------------------------------------------------------------------


def test_failed_evaluation_on_images() -> None:
    evals = [{"step": 1000, "eval_precision": 0.01, "eval_coverage": 0.0},  # early, not final: skipped
             {"step": 2000, "eval_precision": 0.6, "eval_coverage": 0.5},
             {"step": 3000, "eval_precision": 0.0344, "eval_coverage": 0.0139},
             {"step": 4000, "eval_precision": 0.04, "eval_coverage": 0.02}]
    finding = only(detect_failed_evaluation(evals, CFG, NS), "evaluation.failed")
    assert (finding.severity, finding.start_step, finding.end_step, finding.metric) == (
        "error", 3000, 4000, "eval_precision")
    assert finding.evidence == {"precision": 0.04, "coverage": 0.02, "threshold": 0.05}
    assert "eval_precision 0.04 and eval_coverage 0.02" in finding.message
    # precision alone low (sharp but narrow samples) is not a failed evaluation
    assert detect_failed_evaluation([dict(evals[3], eval_coverage=0.3)], CFG, NS) == []


def test_failed_evaluation_single_final_on_points() -> None:
    final = [{"step": 1000, "eval_modes": 0, "eval_hq_fraction": 0.0, "final": True}]
    finding = only(detect_failed_evaluation(final, CFG, {"expected_modes": 8}), "evaluation.failed")
    assert (finding.severity, finding.start_step, finding.end_step, finding.metric) == (
        "error", 1000, 1000, "eval_modes")
    assert finding.evidence == {"modes": 0.0, "expected": 8.0, "threshold": 4.0}
    # the mode detector agrees: 0 of 8 at the only (final) evaluation is a collapse, even in the warm-up
    modes = only(detect_modes(final, CFG, {"expected_modes": 8}), "mode_collapse.modes")
    assert (modes.severity, modes.start_step, modes.end_step) == ("error", 1000, 1000)
    # all modes but most samples off them: hq_fraction below 0.10
    off = [{"step": 3000, "eval_modes": 8, "eval_hq_fraction": 0.05}]
    finding = only(detect_failed_evaluation(off, CFG, {"expected_modes": 8}), "evaluation.failed")
    assert finding.metric == "eval_hq_fraction" and finding.evidence == {"hq_fraction": 0.05, "threshold": 0.1}
    assert detect_failed_evaluation([{"step": 3000, "eval_modes": 6, "eval_hq_fraction": 0.5}], CFG,
                                    {"expected_modes": 8}) == []


def finished(evals: list[dict]) -> list[dict]:
    """The lines with the last marked as the run's final evaluation."""
    return evals[:-1] + [dict(evals[-1], final=True)]


def test_decisive_final_evaluation_for_class_kl_and_diversity() -> None:
    # steps 500 and 1500, both inside the 2,000-step warm-up: only a final evaluation counts there
    diversity, class_kl = evals_of("eval_diversity", [0.9, 0.2], 500), evals_of("eval_class_kl", [0.05, 0.9], 500)
    assert [(f.severity, f.start_step) for f in detect_diversity(finished(diversity), CFG)] == [("error", 1500)]
    assert [(f.severity, f.start_step) for f in detect_class_kl(finished(class_kl), CFG)] == [("error", 1500)]
    # a final value at warning level alone is not decisive
    assert detect_diversity(finished(evals_of("eval_diversity", [0.9, 0.6], 500)), CFG) == []
    # the latest evaluation of a run still training is not its final one
    assert detect_diversity(diversity, CFG) == [] and detect_class_kl(class_kl, CFG) == []


def test_an_early_evaluation_during_training_is_not_decisive() -> None:
    """Regression: under eval.every=auto the first evaluation comes at step 50, far from the data in every
    healthy run; the Tracker saw it as the last (so "final") evaluation and raised three errors."""
    early = {"step": 50, "eval_precision": 0.0008, "eval_coverage": 0.0004, "eval_class_kl": 1.5,
             "eval_diversity": 0.29, "eval_modes": 0, "eval_hq_fraction": 0.0}
    context = {"expected_modes": 8}
    tracker = Tracker(CFG, context)
    assert tracker.update(early) == []
    assert diagnose([early], CFG, context) == []
    codes = sorted(f.code for f in diagnose([dict(early, final=True)], CFG, context))
    assert codes == ["evaluation.failed", "mode_collapse.class_kl", "mode_collapse.diversity", "mode_collapse.modes"]


# ---------------------------------------------------------------------------------------------
# explosion scale floor
# ---------------------------------------------------------------------------------------------


def test_loss_swing_near_zero_is_not_divergence_but_1e3_is() -> None:
    records = healthy_training(n=100)
    for i, record in enumerate(records):
        record["loss_d"] = 0.037 + 0.005 * math.sin(i)
    for i in range(60, 64):
        records[i]["loss_d"] = 1.93  # a 50x deviation against the median's own scale
    assert detect_explosion(records, CFG100, NS) == []
    for i in range(80, 83):
        records[i]["loss_d"] = 1e3
    finding = only(detect_explosion(records, CFG100, NS), "divergence.explosion")
    assert (finding.start_step, finding.end_step, finding.metric) == (8100, 8300, "loss_d")
    assert finding.evidence["ratio"] == pytest.approx((1e3 - finding.evidence["median"]) / 1.0)
    records[90]["loss_d"] = None
    records[90]["nonfinite"] = ["loss_d"]
    assert only(detect_nonfinite(records, CFG100, NS), "divergence.nonfinite").start_step == 9100


# ---------------------------------------------------------------------------------------------
# verdict
# ---------------------------------------------------------------------------------------------


def test_verdict() -> None:
    info = Finding("stall", "info", 0, 1)
    warning = Finding("d_overpowers", "warning", 0, 1)
    error = Finding("training.dead", "error", 0, 1)
    assert [verdict([]), verdict([info]), verdict([info, warning]), verdict([warning, error])] == [
        "healthy", "healthy", "warnings", "failed"]


BN_D_CONTEXTS = [{"loss_kind": kind, "d_norm": "batch", "n_critic": n_critic}
                 for kind in ("nonsaturating", "minimax", "hinge", "lsgan", "wasserstein") for n_critic in (1, 5)]


@pytest.mark.parametrize("context", BN_D_CONTEXTS)
@pytest.mark.parametrize("code", CODES)
def test_advice_for_a_batch_norm_d_never_proposes_a_penalty_the_config_refuses(code: str, context: dict) -> None:
    advice = advice_for(code, context)
    for sentence in re.split(r"\. (?=[A-Z])", advice):
        if "penalty.r1" in sentence or "penalty.gp" in sentence or "penalty.r2" in sentence:
            assert "model.d_norm=layer" in sentence or "model.d_norm=spectral" in sentence, (code, advice)


def test_collapse_advice_for_a_batch_norm_d_leads_with_hinge_and_spectral_norm() -> None:
    assert advice_for("mode_collapse.modes", {"loss_kind": "nonsaturating", "d_norm": "batch"}) == (
        "Batch norm in D couples the samples of a batch and rules out R1 and the gradient penalty: try "
        "loss.kind=hinge with model.d_norm=spectral and TTUR (optim.d_lr=4e-4, optim.g_lr=1e-4), or "
        "loss.kind=wasserstein with penalty.gp=10, train.n_critic=5 and model.d_norm=layer (WGAN-GP).")


def test_oscillation_advice_offers_the_relativistic_loss_with_r1_and_r2() -> None:
    assert advice_for("oscillation", {"loss_kind": "hinge", "d_norm": "spectral"}) == (
        "Add the R1 penalty penalty.r1=10 (Mescheder et al. 2018) and lower both learning rates (optim.d_lr, "
        "optim.g_lr); an EMA of G (train.ema > 0) steadies the samples. Or switch to the relativistic pairing loss "
        "with both penalties (loss.kind=relativistic, penalty.r1=0.05 and penalty.r2=0.05, or --preset r3gan): "
        "R3GAN (Huang et al. 2024) shows it converges locally where other losses can circle.")
    assert advice_for("oscillation", {"loss_kind": "relativistic", "r1": 0.05, "d_norm": "none"}) == (
        "Raise the R1 penalty penalty.r1 and lower both learning rates (optim.d_lr, optim.g_lr); an EMA of G "
        "(train.ema > 0) steadies the samples. The relativistic loss needs R2 beside R1 for its convergence "
        "result: set penalty.r2 to the value of penalty.r1.")
    assert "relativistic" not in advice_for("oscillation", {"loss_kind": "relativistic", "r1": 0.05, "r2": 0.05})


def test_d_overfitting_advice_offers_lecam_once() -> None:
    full = {"augment_policy": "color,translation,cutout", "r1": 1.0, "d_norm": "none"}
    assert advice_for("d_overfitting", full) == (
        "Augmentation is already at its strongest setting; add LeCam (penalty.lecam=0.3, Tseng et al. 2021, made "
        "for limited data), raise penalty.r1, or train on more images (the samples will degrade from here).")
    assert "LeCam" not in advice_for("d_overfitting", {**full, "lecam": 0.3})


def test_context_reads_r2_and_lecam_from_the_config() -> None:
    context = context_from_config({"loss": {"kind": "relativistic"}, "penalty": {"r1": 0.1, "r2": 0.2, "lecam": 0.3}})
    assert (context["loss_kind"], context["r1"], context["r2"], context["lecam"]) == ("relativistic", 0.1, 0.2, 0.3)


# ---------------------------------------------------------------------------------------------
# exact findings at each threshold (mutation testing, issue #28): every field of the finding,
# with a value just at the threshold (silent, or flagged for >=) and one just past it
# ---------------------------------------------------------------------------------------------


def as_dicts(findings: list[Finding]) -> list[dict]:
    """The findings as dicts without their advice (tested on its own), evidence compared two-sided."""
    out = []
    for finding in findings:
        d = finding.to_dict()
        d.pop("advice")
        d["evidence"] = {k: pytest.approx(v, rel=1e-12, abs=1e-12) for k, v in d["evidence"].items()}
        out.append(d)
    return out


def test_d_overfitting_exact_finding_at_its_threshold() -> None:
    cfg = DoctorConfig(overfit_window_steps=300, overfit_min_records=3)
    signs = [0.5, 0.9, 0.95, 1.0, 0.899, 0.92, 0.93, 0.2]  # 0.9 is the threshold and counts; 0.92-0.93 too short
    records = [{"step": 100 * i, "d_real_sign": s} for i, s in enumerate(signs)]
    records.insert(3, {"step": 250, "d_real_sign": None, "loss_d": 1.0})  # no r_t: skipped, not a break
    findings = detect_d_overfitting(records, cfg, NS)
    assert as_dicts(findings) == [{
        "code": "d_overfitting", "severity": "info", "start_step": 100, "end_step": 300, "metric": None,
        "evidence": {"rt_mean": (0.9 + 0.95 + 1.0) / 3, "rt_min": 0.9, "records": 3},
        "message": "D may be overfitting the training images: r_t = E[sign(D(real))] stayed at or above 0.9 "
                   "(mean 0.950) for 3 records over steps 100-300."}]
    assert findings[0].advice == advice_for("d_overfitting", NS)
    for context in (WGAN, {"loss_kind": "relativistic"}):
        assert detect_d_overfitting(records, cfg, context) == []


def test_d_overfitting_with_augmentation_at_p_max_is_a_warning() -> None:
    cfg = DoctorConfig(overfit_window_steps=300, overfit_min_records=3)
    probs = [1.0, 0.99, 1.0, 0.98, 1.0, 1.0]  # p = 0.99 is overfit_p_max and counts; 0.98 can still rise
    records = [{"step": 100 * i, "d_real_sign": 0.95, "augment_p": p} for i, p in enumerate(probs)]
    assert as_dicts(detect_d_overfitting(records, cfg, NS)) == [{
        "code": "d_overfitting", "severity": "warning", "start_step": 0, "end_step": 200, "metric": None,
        "evidence": {"rt_mean": 0.95, "rt_min": 0.95, "records": 3, "augment_p_min": 0.99},
        "message": "D may be overfitting the training images: r_t = E[sign(D(real))] stayed at or above 0.9 "
                   "(mean 0.950) with augment_p at 0.99 or more for 3 records over steps 0-200."}]


def test_nonfinite_exact_messages_singular_and_plural() -> None:
    records = [
        {"step": 100, "loss_d": 1.0, "loss_g": 1.0}, {"step": 200, "loss_d": None, "loss_g": 1.0},
        {"step": 300, "loss_d": 1.0, "loss_g": 1.0},
        {"step": 400, "grad_norm_d": float("nan"), "loss_g": 1.0, "loss_d": 1.0},  # a raw NaN, not listed
        {"step": 500, "loss_g": None, "loss_d": 1.0, "nonfinite": ["loss_g", "eval_fd"]},  # eval_fd not watched
        {"step": 600, "loss_d": 1.0, "loss_g": 1.0},
    ]
    assert as_dicts(detect_nonfinite(records, CFG, NS)) == [
        {"code": "divergence.nonfinite", "severity": "error", "start_step": 200, "end_step": 200, "metric": None,
         "evidence": {"records": 1, "keys": 1, "first_step": 200},
         "message": "loss_d was NaN/Inf in 1 training record over steps 200-200."},
        {"code": "divergence.nonfinite", "severity": "error", "start_step": 400, "end_step": 500, "metric": None,
         "evidence": {"records": 2, "keys": 2, "first_step": 400},
         "message": "grad_norm_d, loss_g were NaN/Inf in 2 training records over steps 400-500."},
    ]


def test_critic_drift_exact_finding_at_its_thresholds() -> None:
    cfg = DoctorConfig(drift_window_steps=500, drift_monotone_frac=0.75)
    # |d_real| 100 at step 500 is the threshold (not above it); the last window rises in 3 of 4 steps (0.75)
    real = [96, 97, 98, 99, 100, 101, 102, 102]
    records = [{"step": 100 * (i + 1), "d_real": r, "d_fake": -(r + 10)} for i, r in enumerate(real)]
    records.insert(6, {"step": 650, "d_real": 500.0})  # no d_fake: skipped
    assert as_dicts(detect_critic_drift(records, cfg)) == [{
        "code": "divergence.critic_drift", "severity": "warning", "start_step": 101, "end_step": 800,
        "metric": None, "evidence": {"d_real": 102.0, "d_fake": -112.0, "increase_frac": 0.75, "threshold": 100.0},
        "message": "Critic outputs drifted to d_real 102 and d_fake -112 (threshold 100), both magnitudes rising "
                   "in 75% of records over steps 101-800."}]
    # exactly drift_min_records (5) records are enough
    five = [{"step": 100 * (i + 1), "d_real": 101.0 + i, "d_fake": -101.0 - i} for i in range(5)]
    assert [(f.start_step, f.end_step) for f in detect_critic_drift(five, cfg)] == [(1, 500)]


def test_d_overpowers_exact_finding_at_its_threshold() -> None:
    acc = [0.5, 0.99, 0.995, 1.0, 0.9899, 0.99, 0.99]  # 0.99 counts, 0.9899 breaks, the last two are too few
    records = [{"step": 100 * i, "d_acc": a} for i, a in enumerate(acc)]
    assert as_dicts(detect_d_overpowers(records, DoctorConfig(d_acc_window_steps=300), NS)) == [{
        "code": "d_overpowers", "severity": "warning", "start_step": 100, "end_step": 300, "metric": None,
        "evidence": {"d_acc_mean": 0.995, "d_acc_min": 0.99, "records": 3},
        "message": "D accuracy stayed at or above 0.99 (mean 0.995) for 3 records over steps 100-300."}]


def test_failed_evaluation_each_metric_at_and_past_its_threshold() -> None:
    cfg = DoctorConfig(eval_warmup_steps=0)
    at = [{"step": 1000, "eval_precision": 0.05, "eval_coverage": 0.051},  # coverage just above 0.05
          {"step": 2000, "eval_fd": 1000.0, "eval_fd_real": 1.0},  # exactly 1000 x: not above
          {"step": 3000, "eval_fd": 10.0, "eval_fd_real": 0.0},  # no real-vs-real FD to compare with
          {"step": 4000, "eval_fd_real": 1.0, "eval_hq_fraction": 0.5},
          {"step": 5000, "eval_modes": 4.0},  # half of 8 expected: not below
          {"step": 6000, "eval_hq_fraction": 0.1}]
    for record in at:
        assert detect_failed_evaluation([record], cfg, {"expected_modes": 8}) == [], record
    past = [{"step": 1000, "eval_precision": 0.05, "eval_coverage": 0.05},
            {"step": 3000, "eval_fd": 600.0, "eval_fd_real": 0.5},
            {"step": 5000, "eval_modes": 3.9}, {"step": 7000, "eval_hq_fraction": 0.09}]
    found = [as_dicts(detect_failed_evaluation([record], DoctorConfig(eval_warmup_steps=0, expected_modes=8)))
             for record in past]
    tail = "(1 failing evaluation over steps {0}-{0})."
    assert found == [
        [{"code": "evaluation.failed", "severity": "error", "start_step": 1000, "end_step": 1000,
          "metric": "eval_precision", "evidence": {"precision": 0.05, "coverage": 0.05, "threshold": 0.05},
          "message": "The evaluation at step 1000 is far from the data: eval_precision 0.05 and eval_coverage 0.05 "
                     "are both at or below 0.05 " + tail.format(1000)}],
        [{"code": "evaluation.failed", "severity": "error", "start_step": 3000, "end_step": 3000,
          "metric": "eval_fd", "evidence": {"fd": 600.0, "fd_real": 0.5, "multiple": 1000.0, "threshold": 500.0},
          "message": "The evaluation at step 3000 is far from the data: eval_fd 600 is above 1000 x the evaluator's "
                     "real-vs-real FD 0.5 (500) " + tail.format(3000)}],
        [{"code": "evaluation.failed", "severity": "error", "start_step": 5000, "end_step": 5000,
          "metric": "eval_modes", "evidence": {"modes": 3.9, "expected": 8.0, "threshold": 4.0},
          "message": "The evaluation at step 5000 is far from the data: eval_modes 3.9 of 8 is below 4 "
                     + tail.format(5000)}],
        [{"code": "evaluation.failed", "severity": "error", "start_step": 7000, "end_step": 7000,
          "metric": "eval_hq_fraction", "evidence": {"hq_fraction": 0.09, "threshold": 0.1},
          "message": "The evaluation at step 7000 is far from the data: eval_hq_fraction 0.09 is below 0.1 "
                     + tail.format(7000)}],
    ]


def test_failed_evaluation_run_of_two_and_the_warmup_boundary() -> None:
    records = [{"step": 1000, "eval_fd": 3000.0, "eval_fd_real": 2.0},
               {"step": 2000, "eval_fd": 2500.0, "eval_fd_real": 2.0}]
    assert as_dicts(detect_failed_evaluation(records, DoctorConfig(eval_warmup_steps=0))) == [{
        "code": "evaluation.failed", "severity": "error", "start_step": 1000, "end_step": 2000, "metric": "eval_fd",
        "evidence": {"fd": 2500.0, "fd_real": 2.0, "multiple": 1000.0, "threshold": 2000.0},
        "message": "The evaluation at step 2000 is far from the data: eval_fd 2500 is above 1000 x the evaluator's "
                   "real-vs-real FD 2 (2000) (2 failing evaluations over steps 1000-2000)."}]
    # default warm-up 2000: the evaluation at step 2000 counts, earlier ones only when final
    bad = [{"step": 500, "eval_hq_fraction": 0.01}, {"step": 1000, "eval_hq_fraction": 0.01}]
    assert detect_failed_evaluation(bad, CFG) == []
    assert [(f.start_step, f.end_step) for f in detect_failed_evaluation(
        bad + [{"step": 2000, "eval_hq_fraction": 0.01}], CFG)] == [(2000, 2000)]


@pytest.mark.parametrize("key, values, best_step, best, latest", [
    ("eval_fd", [10.0, 9.9, 9.9, 9.9], 1000, "10", "9.9"),  # 9.9 = 10 - 1 %: not an improvement
    ("eval_fd", [0.5, 0.494, 0.494, 0.494, 0.494], 2000, "0.494", "0.494"),  # below 1: the margin is 1 % of 0.5
    ("eval_modes", [4.0, 4.04, 4.04, 4.04], 1000, "4", "4.04"),  # higher is better: 4.04 = 4 + 1 %
])
def test_stall_exact_finding_at_the_margin_and_window(key: str, values: list[float], best_step: int, best: str,
                                                     latest: str) -> None:
    records = [{"step": 1000 * (i + 1), key: v} for i, v in enumerate(values)]
    end = 1000 * len(values)
    assert as_dicts(detect_stall(records, DoctorConfig(stall_window=3))) == [{
        "code": "stall", "severity": "info", "start_step": best_step, "end_step": end, "metric": key,
        "evidence": {"best": float(best), "best_step": best_step, "evaluations_since_best": 3,
                     "latest": values[-1]},
        "message": f"{key} has not improved on its best {best} (step {best_step}) for 3 evaluations, up to step "
                   f"{end} (latest {latest})."}]


def test_stall_all_expected_modes_from_the_context_is_convergence() -> None:
    records = [{"step": 1000 * (i + 1), "eval_modes": 8.0} for i in range(4)]
    assert detect_stall(records, DoctorConfig(stall_window=3), {"expected_modes": 8}) == []
    assert [f.code for f in detect_stall(records, DoctorConfig(stall_window=3))] == ["stall"]


def test_class_kl_exact_findings_at_warn_and_error_bounds() -> None:
    values = [0.05, 0.1, 0.11, 0.5, 0.12, 0.05, 0.51, 0.3, 0.05]  # 0.1 and 0.5 are the bounds, not above them
    records = [{"step": 1000 * (i + 1), "eval_class_kl": v} for i, v in enumerate(values)]
    records.append({"step": 9500, "eval_class_kl": 0.9, "quick": True})  # a quick line is left out
    text = "eval_class_kl reached {} nats (warning above 0.1, error above 0.5) over {} evaluations, steps {}-{}."
    assert as_dicts(detect_class_kl(records, DoctorConfig(eval_warmup_steps=0))) == [
        {"code": "mode_collapse.class_kl", "severity": "warning", "start_step": 3000, "end_step": 5000,
         "metric": None, "evidence": {"class_kl": 0.5, "threshold": 0.1, "evaluations": 3},
         "message": text.format("0.5", 3, 3000, 5000)},
        {"code": "mode_collapse.class_kl", "severity": "error", "start_step": 7000, "end_step": 8000,
         "metric": None, "evidence": {"class_kl": 0.51, "threshold": 0.1, "evaluations": 2},
         "message": text.format("0.51", 2, 7000, 8000)},
    ]


def test_diversity_exact_findings_at_warn_and_error_bounds() -> None:
    values = [0.9, 0.65, 0.64, 0.4, 0.6, 0.9, 0.39, 0.5, 0.9]  # 0.65 and 0.4 are the bounds, not below them
    records = [{"step": 1000 * (i + 1), "eval_diversity": v} for i, v in enumerate(values)]
    text = ("eval_diversity fell to {} of the real data's (warning below 0.65, error below 0.4) over {} "
            "evaluations, steps {}-{}.")
    assert as_dicts(detect_diversity(records, DoctorConfig(eval_warmup_steps=0))) == [
        {"code": "mode_collapse.diversity", "severity": "warning", "start_step": 3000, "end_step": 5000,
         "metric": None, "evidence": {"diversity": 0.4, "threshold": 0.65, "evaluations": 3},
         "message": text.format("0.4", 3, 3000, 5000)},
        {"code": "mode_collapse.diversity", "severity": "error", "start_step": 7000, "end_step": 8000,
         "metric": None, "evidence": {"diversity": 0.39, "threshold": 0.65, "evaluations": 2},
         "message": text.format("0.39", 2, 7000, 8000)},
    ]


def test_modes_exact_findings_at_the_tolerance_and_error_fraction() -> None:
    values = [10, 9, 8.9, 5, 8, 10, 5.1, 5.1, 10]  # expected 10: 9 is within tolerance, 5 is the error bound
    records = [{"step": 1000 * (i + 1), "eval_modes": v} for i, v in enumerate(values)]
    text = "eval_modes was as low as {} of the 10 expected modes ({} missing) without gaining over steps {}-{}."
    assert as_dicts(detect_modes(records, DoctorConfig(eval_warmup_steps=0), {"expected_modes": 10})) == [
        {"code": "mode_collapse.modes", "severity": "error", "start_step": 3000, "end_step": 5000, "metric": None,
         "evidence": {"modes": 5.0, "expected": 10.0, "missing": 5.0}, "message": text.format("5", "5", 3000, 5000)},
        {"code": "mode_collapse.modes", "severity": "warning", "start_step": 7000, "end_step": 8000,
         "metric": None, "evidence": {"modes": 5.1, "expected": 10.0, "missing": 4.9},
         "message": text.format("5.1", "4.9", 7000, 8000)},
    ]


def test_modes_single_and_early_evaluations() -> None:
    ten = {"expected_modes": 10}
    one_low = [{"step": 1000 * (i + 1), "eval_modes": v} for i, v in enumerate([10, 8, 10, 10])]
    assert detect_modes(one_low, DoctorConfig(eval_warmup_steps=0), ten) == []  # one evaluation is no run
    early = [{"step": 500, "eval_modes": 5}, {"step": 1000, "eval_modes": 5}]  # before the 2000-step warm-up
    assert detect_modes(early, CFG, ten) == []
    # a final evaluation at the error bound is decisive alone, even before the warm-up; one above it is not
    assert [(f.severity, f.start_step) for f in detect_modes(
        [{"step": 1000, "eval_modes": 5, "final": True}], CFG, ten)] == [("error", 1000)]
    assert detect_modes([{"step": 1000, "eval_modes": 6, "final": True}], CFG, ten) == []


def test_coverage_drop_exact_findings_at_the_margins() -> None:
    cfg = DoctorConfig(eval_warmup_steps=0, coverage_margin=0.25, coverage_error_margin=0.5)
    values = [0.5, 1.0, 1.0, 0.75, 0.625, 0.875, 0.5, 0.5, 1.0]  # a drop of exactly 0.25 / 0.5 meets the margin
    records = [{"step": 1000 * (i + 1), "eval_coverage": v} for i, v in enumerate(values)]
    findings = detect_coverage_drop(records, cfg)
    text = "eval_coverage fell to {} from its best 1 at step 2000 (drop {}, margin 0.25) over steps {}-{}."
    assert as_dicts(findings) == [
        {"code": "mode_collapse.coverage", "severity": "warning", "start_step": 4000, "end_step": 5000,
         "metric": "eval_coverage", "evidence": {"value": 0.625, "best": 1.0, "best_step": 2000, "drop": 0.375},
         "message": text.format("0.625", "0.375", 4000, 5000)},
        {"code": "mode_collapse.coverage", "severity": "error", "start_step": 7000, "end_step": 8000,
         "metric": "eval_coverage", "evidence": {"value": 0.5, "best": 1.0, "best_step": 2000, "drop": 0.5},
         "message": text.format("0.5", "0.5", 7000, 8000)},
    ]
    assert findings[0].advice == (advice_for("mode_collapse.coverage", None)
                                  + " The checkpoint nearest step 2000 had the best eval_coverage.")


def test_vanishing_g_grad_exact_findings_at_its_thresholds() -> None:
    cfg = DoctorConfig(vanish_early_steps=300, vanish_patience_steps=200)
    grads = [1.0, 2.0, 3.0, 0.2, 0.1, 0.1, 0.05, 0.0, 0.0]  # early median 2: the limit 0.2 is not below it
    accs = [0.5, 0.5, 0.5, 0.99, 0.95, 0.96, 0.94, 0.99, 0.99]  # 0.95 counts, 0.94 does not
    records = [{"step": 100 * i, "grad_norm_g": g, "d_acc": a} for i, (g, a) in enumerate(zip(grads, accs))]
    text = "grad_norm_g fell to {}, {} times below its early median 2, while D accuracy averaged {} over steps {}-{}."
    assert as_dicts(detect_vanishing_g_grad(records, cfg, None)) == [
        {"code": "vanishing_g_grad", "severity": "warning", "start_step": 400, "end_step": 500, "metric": None,
         "evidence": {"grad_norm_g": 0.1, "early_median": 2.0, "ratio": 20.0, "d_acc_mean": 0.955},
         "message": text.format("0.1", "20", "0.955", 400, 500)},
        {"code": "vanishing_g_grad", "severity": "warning", "start_step": 700, "end_step": 800, "metric": None,
         "evidence": {"grad_norm_g": 0.0, "early_median": 2.0, "ratio": 1.7976931348623157e308,
                      "d_acc_mean": 0.99},
         "message": text.format("0", "1.8e+308", "0.990", 700, 800)},
    ]
    assert detect_vanishing_g_grad(records[:2] + records[3:], cfg, None) == []  # two early records are too few


def test_dead_exact_finding_at_the_grad_norm_bound() -> None:
    grads = [1.0, 1e-8, 1e-9, 1.0, 1e-9, 1.0, 1.0, 1.0, 1.0, 1.0]  # 1e-8 is the bound, not below it
    records = [{"step": 100 * (i + 1), "grad_norm_g": g, "grad_norm_d": 1.0, "loss_d": float(i), "loss_g": 1.0}
               for i, g in enumerate(grads)]
    assert as_dicts(detect_dead(records, DoctorConfig(dead_window_steps=300))) == [{
        "code": "training.dead", "severity": "error", "start_step": 300, "end_step": 500, "metric": None,
        "evidence": {"records": 2, "fraction": 2 / 3, "zero_grad_g": 1, "zero_grad_d": 0, "constant_losses": 0},
        "message": "Training is dead over steps 300-500: 2 of 3 records (67%) show grad_norm_g < 1e-08."}]


def test_sort_findings_by_step_then_severity_then_code_then_metric() -> None:
    findings = [Finding("b", "info", 5, 6), Finding("b", "error", 5, 6), Finding("a", "warning", 5, 6, metric="y"),
                Finding("a", "warning", 5, 6), Finding("a", "warning", 1, 6)]
    assert [(f.code, f.severity, f.start_step, f.metric) for f in sort_findings(findings)] == [
        ("a", "warning", 1, None), ("b", "error", 5, None), ("a", "warning", 5, None), ("a", "warning", 5, "y"),
        ("b", "info", 5, None)]


def test_critic_drift_counts_only_strict_increases_on_each_side() -> None:
    cfg = DoctorConfig(drift_window_steps=500, drift_monotone_frac=0.75)
    # the last window (steps 300-700) starts two records in; its last step is no increase: 3 of 4
    flat_end = [97, 98, 99, 100, 101, 102, 102]
    rising = [109, 110, 111, 112, 113, 114, 115]
    for real, fake in ((flat_end, rising), (rising, flat_end)):  # the smaller fraction of the two sides counts
        records = [{"step": 100 * (i + 1), "d_real": r, "d_fake": -f} for i, (r, f) in enumerate(zip(real, fake))]
        assert [f.evidence["increase_frac"] for f in detect_critic_drift(records, cfg)] == [0.75]


def test_detectors_pass_the_context_to_the_advice() -> None:
    bn = {"loss_kind": "nonsaturating", "d_norm": "batch"}
    strongest = {"augment_policy": "color,translation,cutout", "r1": 1.0, "d_norm": "none"}
    warm0 = DoctorConfig(eval_warmup_steps=0, stall_window=3)
    cases = [
        (detect_dead, [{"step": 100 * (i + 1), "grad_norm_g": 0.0, "loss_d": float(i)} for i in range(5)], CFG, bn),
        (detect_d_overfitting, [{"step": 100 * i, "d_real_sign": 1.0} for i in range(40)], CFG, strongest),
        (detect_coverage_drop, evals_of("eval_coverage", [0.9, 0.5, 0.5]), warm0, bn),
        (detect_class_kl, evals_of("eval_class_kl", [0.9, 0.9]), warm0, bn),
        (detect_diversity, evals_of("eval_diversity", [0.9, 0.1, 0.1]), warm0, bn),
        (detect_modes, evals_of("eval_modes", [10, 2, 2]), DoctorConfig(eval_warmup_steps=0, expected_modes=10), bn),
        (detect_failed_evaluation, evals_of("eval_hq_fraction", [0.0]), warm0, bn),
        (detect_stall, evals_of("eval_fd", [1.0, 2.0, 2.0, 2.0]), warm0, WGAN),
    ]
    for detector, records, cfg, context in cases:
        (finding,) = detector(records, cfg, context)
        assert finding.advice.startswith(advice_for(finding.code, context)), detector.__name__
        assert not finding.advice.startswith(advice_for(finding.code, None)), detector.__name__


def test_dead_at_half_the_window_with_both_reasons_in_the_message() -> None:
    # windows of 400 steps: 2 dead of the first 3 records, then exactly dead_fraction 0.5 (2 of 4) twice; the
    # episode covers the 5 records from its first window's start
    records = [{"step": 100, "loss_d": 1.0, "loss_g": 1.0, "grad_norm_d": 1.0},
               {"step": 200, "loss_d": 2.0, "loss_g": 1.0, "grad_norm_d": 0.0},
               {"step": 300, "loss_d": 2.0, "loss_g": 1.0, "grad_norm_d": 1.0},  # losses equal the previous ones
               {"step": 400, "loss_d": 3.0, "loss_g": 1.0, "grad_norm_d": 1.0},
               {"step": 500, "loss_d": 4.0, "loss_g": 1.0, "grad_norm_d": 1.0}]
    assert as_dicts(detect_dead(records, DoctorConfig(dead_window_steps=400))) == [{
        "code": "training.dead", "severity": "error", "start_step": 200, "end_step": 300, "metric": None,
        "evidence": {"records": 2, "fraction": 0.4, "zero_grad_g": 0, "zero_grad_d": 1, "constant_losses": 1},
        "message": "Training is dead over steps 200-300: 2 of 5 records (40%) show constant losses, "
                   "grad_norm_d < 1e-08."}]


def test_evaluation_warmup_boundaries() -> None:
    # an evaluation at exactly the warm-up step counts; a final one there is not counted twice
    records = [{"step": 1000, "eval_class_kl": 0.05}, {"step": 2000, "eval_class_kl": 0.9, "final": True}]
    assert [(f.severity, f.start_step, f.evidence["evaluations"]) for f in detect_class_kl(records, CFG)] == [
        ("error", 2000, 1)]
    # the stall detector judges evaluations from step 0 on
    at_zero = [{"step": 1000 * i, "eval_fd": v} for i, v in enumerate([1.0, 2.0, 2.0, 2.0])]
    assert [(f.start_step, f.evidence["evaluations_since_best"]) for f in detect_stall(
        at_zero, DoctorConfig(stall_window=3))] == [(0, 3)]


def test_single_flagged_evaluations_and_short_runs_before_long_ones() -> None:
    warm0 = DoctorConfig(eval_warmup_steps=0)
    assert detect_class_kl(evals_of("eval_class_kl", [0.05, 0.2, 0.05]), warm0) == []  # one evaluation: no run
    # one evaluation at the error bound that is not the final one is no run either; a short run before a long one
    assert detect_modes(evals_of("eval_modes", [10, 5, 10, 10]), warm0, {"expected_modes": 10}) == []
    modes = detect_modes(evals_of("eval_modes", [10, 8, 10, 8, 8, 10]), warm0, {"expected_modes": 10})
    assert [(f.start_step, f.end_step) for f in modes] == [(4000, 5000)]
    cfg = DoctorConfig(eval_warmup_steps=0, coverage_margin=0.25)
    coverage = detect_coverage_drop(evals_of("eval_recall", [1.0, 0.5, 1.0, 0.5, 0.5, 1.0]), cfg)
    assert [(f.start_step, f.end_step) for f in coverage] == [(4000, 5000)]
    failed = detect_failed_evaluation(evals_of("eval_hq_fraction", [0.5, 0.0, 0.0]), warm0)
    assert [(f.start_step, f.end_step) for f in failed] == [(2000, 3000)]
    assert failed[0].message.endswith("(2 failing evaluations over steps 2000-3000).")


def test_diversity_still_rising_is_not_a_collapse() -> None:
    warm0 = DoctorConfig(eval_warmup_steps=0)
    assert detect_diversity(evals_of("eval_diversity", [0.5, 0.55, 0.6]), warm0) == []  # each a new best
    assert detect_diversity(evals_of("eval_diversity", [0.5, 0.5, 0.5]), warm0) == []  # equal to the best
    assert [f.severity for f in detect_diversity(evals_of("eval_diversity", [0.5, 0.45, 0.45]), warm0)] == [
        "warning"]


def test_stall_metric_and_direction_from_the_config() -> None:
    records = evals_of("eval_recall", [0.5, 0.4, 0.4, 0.4])
    assert stall_metric(records, DoctorConfig()) is None  # neither eval_fd nor eval_modes logged
    assert stall_metric(records, DoctorConfig(stall_metric="eval_recall", stall_higher_is_better=True)) == (
        "eval_recall", True)
    assert stall_metric(evals_of("eval_fd", [1.0]), DoctorConfig(stall_higher_is_better=True)) == ("eval_fd", True)


def test_sort_findings_puts_no_metric_before_any_metric() -> None:
    findings = [Finding("a", "warning", 5, 6, metric="A"), Finding("a", "warning", 5, 6)]
    assert [f.metric for f in sort_findings(findings)] == [None, "A"]


def test_explosion_exact_findings_scale_peak_and_threshold() -> None:
    cfg = DoctorConfig(explosion_keys=("loss_d", "grad_norm_d"))
    # grad_norm_d: median 4 sets the scale; 44 is exactly 10 scales away (not past the factor); two episodes, the
    # first peaking in its middle
    grad = [4.0] * 8 + [48.0, 80.0, 60.0] + [4.0] * 3 + [44.0, 44.0] + [4.0] * 3 + [60.0, 50.0] + [4.0] * 2
    # loss_d: +-4 around a median of 0, so the scale is half the interquartile range, 4; a single spike (60) is
    # too short
    loss = [(-4.0, 4.0)[i % 2] for i in range(8)] + [60.0, 0.0, 44.0, 45.0, 0.0, 4.0]
    records = [{"step": 100 * (i + 1), "grad_norm_d": g} for i, g in enumerate(grad)]
    for record, value in zip(records, loss):
        record["loss_d"] = value
    text = ("{} reached {} at step {} against a running median of {}, a deviation of {} times its scale (threshold "
            "10), over steps {}-{}.")
    findings = detect_explosion(records, cfg, WGAN)
    assert as_dicts(findings) == [
        {"code": "divergence.explosion", "severity": "error", "start_step": 1100, "end_step": 1200,
         "metric": "loss_d", "evidence": {"value": 45.0, "median": 0.0, "ratio": 45 / 4, "factor": 10.0},
         "message": text.format("loss_d", "45", 1200, "0", "11.2", 1100, 1200)},
        {"code": "divergence.explosion", "severity": "error", "start_step": 900, "end_step": 1100,
         "metric": "grad_norm_d", "evidence": {"value": 80.0, "median": 4.0, "ratio": 19.0, "factor": 10.0},
         "message": text.format("grad_norm_d", "80", 1000, "4", "19", 900, 1100)},
        {"code": "divergence.explosion", "severity": "error", "start_step": 2000, "end_step": 2100,
         "metric": "grad_norm_d", "evidence": {"value": 60.0, "median": 4.0, "ratio": 14.0, "factor": 10.0},
         "message": text.format("grad_norm_d", "60", 2000, "4", "14", 2000, 2100)},
    ]
    assert all(f.advice == advice_for("divergence.explosion", WGAN) for f in findings)


def test_explosion_check_starts_at_exactly_the_minimum_history() -> None:
    # 5 records (explosion_min_records) spanning 500 steps (explosion_min_history_steps) are enough
    values = [1.0] * 5 + [20.0, 20.0, 1.0]
    records = [{"step": 100 * (i + 1), "grad_norm_g": v} for i, v in enumerate(values)]
    assert as_dicts(detect_explosion(records, CFG)) == [{
        "code": "divergence.explosion", "severity": "error", "start_step": 600, "end_step": 700,
        "metric": "grad_norm_g", "evidence": {"value": 20.0, "median": 1.0, "ratio": 19.0, "factor": 10.0},
        "message": "grad_norm_g reached 20 at step 600 against a running median of 1, a deviation of 19 times its "
                   "scale (threshold 10), over steps 600-700."}]


def test_critic_drift_needs_both_sides_past_the_threshold_and_full_windows() -> None:
    cfg = DoctorConfig(drift_window_steps=500)
    # |d_fake| reaches exactly the threshold 100 at the last record: not above it
    at = [{"step": 100 * (i + 1), "d_real": 101.0 + i, "d_fake": -96.0 - i} for i in range(5)]
    assert detect_critic_drift(at, cfg) == []
    # windows of 400 steps hold 4 records, fewer than drift_min_records (5): never judged
    rising = [{"step": 100 * (i + 1), "d_real": 101.0 + i, "d_fake": -101.0 - i} for i in range(8)]
    assert detect_critic_drift(rising, DoctorConfig(drift_window_steps=400)) == []
    assert [f.advice for f in detect_critic_drift(rising, cfg, WGAN)] == [advice_for("divergence.critic_drift", WGAN)]


def test_nonfinite_advice_follows_the_context() -> None:
    records = [{"step": 100, "loss_d": None}]
    assert [f.advice for f in detect_nonfinite(records, CFG, WGAN)] == [advice_for("divergence.nonfinite", WGAN)]


def test_dead_episode_starts_in_its_own_window() -> None:
    # an isolated zero gradient at step 100 is not part of the episode at steps 1000-1100
    grads = [0.0] + [1.0] * 8 + [0.0, 0.0]
    records = [{"step": 100 * (i + 1), "grad_norm_g": g, "loss_d": float(i)} for i, g in enumerate(grads)]
    assert [(f.start_step, f.end_step, f.evidence["records"]) for f in detect_dead(
        records, DoctorConfig(dead_window_steps=300))] == [(1000, 1100, 2)]


def test_explosion_run_at_the_end_of_the_series() -> None:
    records = [{"step": 100 * (i + 1), "grad_norm_g": v} for i, v in enumerate([1.0] * 5 + [20.0, 30.0])]
    assert [(f.start_step, f.end_step, f.evidence["value"]) for f in detect_explosion(records, CFG)] == [
        (600, 700, 30.0)]


# ---------------------------------------------------------------------------------------------
# window, span and growth edges (mutation testing, issue #28, session 10): one record on each side
# of every edge, findings computed by hand
# ---------------------------------------------------------------------------------------------

SQRT_HALF_PI = math.sqrt(math.pi / 2)  # the detrended std of [a, -a, -a, a] is a * sqrt(pi / 2): mean |residual| a
# loss_d in three 400-step windows of 4 records (steps 100-400, 500-800, 900-1200), amplitude doubling each window;
# each window's least-squares line is flat (slope 0, mean 0), so its detrended std is amplitude * sqrt(pi / 2)
DOUBLING = [0.5, -0.5, -0.5, 0.5, 1.0, -1.0, -1.0, 1.0, 2.0, -2.0, -2.0, 2.0]


def loss_d_records(values: list[float], first_step: int = 100) -> list[dict]:
    """Training lines carrying only loss_d, one per 100 steps from `first_step`."""
    return [{"step": first_step + 100 * i, "loss_d": v} for i, v in enumerate(values)]


def osc_cfg(**changes) -> DoctorConfig:
    """Oscillation over 3 windows of 400 steps (4 records each), a single record enough for a finding."""
    return DoctorConfig(**{"osc_window_steps": 400, "osc_min_records": 4, "osc_patience_steps": 100, **changes})


def oscillation_dict(std_first: float, std_last: float, growth: float, start: int, end: int, shown: str) -> dict:
    """The oscillation finding (as `as_dicts` gives it) with the message's three figures in `shown`."""
    first, last, times = shown.split()
    return {"code": "oscillation", "severity": "warning", "start_step": start, "end_step": end, "metric": "loss_d",
            "evidence": {"std_first": std_first, "std_last": std_last, "growth": growth},
            "message": f"The detrended std of loss_d grew from {first} to {last} ({times}x) across 3 consecutive "
                       f"windows of 400 steps over steps {start}-{end}."}


def test_oscillation_at_exactly_the_growth_min_std_and_min_records() -> None:
    # the only chain ends at the last record; its oldest window (steps 100-400) is the first one not cut by the
    # start of the run, and each window holds exactly osc_min_records records; the stds are 0.5, 1 and 2 times
    # sqrt(pi/2): growth exactly 2 (osc_growth) twice, the last exactly osc_min_std
    cfg = osc_cfg(osc_growth=2.0, osc_min_std=2 * SQRT_HALF_PI)
    findings = detect_oscillation(loss_d_records(DOUBLING), cfg, WGAN)
    assert as_dicts(findings) == [
        oscillation_dict(0.5 * SQRT_HALF_PI, 2 * SQRT_HALF_PI, 4.0, 1, 1200, "0.627 2.51 4")]
    assert findings[0].advice == advice_for("oscillation", WGAN) != advice_for("oscillation", None)
    # just past each threshold: silent
    assert detect_oscillation(loss_d_records(DOUBLING), osc_cfg(osc_growth=2.0 + 1e-9,
                                                               osc_min_std=2 * SQRT_HALF_PI), WGAN) == []
    assert detect_oscillation(loss_d_records(DOUBLING), osc_cfg(osc_growth=2.0,
                                                               osc_min_std=2 * SQRT_HALF_PI + 1e-9), WGAN) == []
    # windows one record short of osc_min_records (5) are never judged, wherever they lie in the run: after 4
    # flat records, windows of 4 find two episodes (the chain ending at step 1300 grows only 1.4x), of 5 none
    padded = loss_d_records([0.0] * 4 + DOUBLING)
    assert [(f.start_step, f.end_step) for f in detect_oscillation(padded, osc_cfg())] == [(1, 1200), (201, 1600)]
    assert detect_oscillation(padded, osc_cfg(osc_min_records=5)) == []
    # a finding needs osc_patience_steps: one record covers 100 steps, not 200
    assert detect_oscillation(loss_d_records(DOUBLING), osc_cfg(osc_patience_steps=200)) == []


def test_oscillation_oldest_window_cut_by_the_start_of_the_run_is_not_judged() -> None:
    # with osc_min_records 3, the window of steps 100-300 holds enough records but is cut by the start of the run
    # (its first step would be 0): the chain ending at step 1100 (windows 100-300, 400-700, 800-1100, stds 0.279,
    # 0.564, 1.13: growing) is not judged, so 11 records give nothing and the 12th is flagged alone
    cfg = osc_cfg(osc_min_records=3)
    assert detect_oscillation(loss_d_records(DOUBLING[:11]), cfg) == []
    assert as_dicts(detect_oscillation(loss_d_records(DOUBLING), cfg)) == [
        oscillation_dict(0.5 * SQRT_HALF_PI, 2 * SQRT_HALF_PI, 4.0, 1, 1200, "0.627 2.51 4")]
    # the same series one interval later in the run: still one full chain, ending at its last record
    assert [(f.start_step, f.end_step) for f in detect_oscillation(loss_d_records(DOUBLING, 200), cfg)] == [
        (101, 1300)]


def test_oscillation_from_a_flat_first_window_and_its_peak_inside_the_run() -> None:
    # a first window with no residual at all: std 0, growth reported as the largest float
    # (float64's largest value, taken without a deprecated call: any warning fails the test)
    flat_first = [0.0] * 4 + DOUBLING[4:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = detect_oscillation(loss_d_records(flat_first), osc_cfg())
    assert as_dicts(found) == [
        oscillation_dict(0.0, 2 * SQRT_HALF_PI, 1.7976931348623157e308, 1, 1200, "0 2.51 1.8e+308")]
    # a 13th record, still flagged, with a smaller std than the 12th: its windows [-0.5, -0.5, 0.5, 1],
    # [-1, -1, 1, 2] (mean 0.25, slope 1.1, residuals 0.4, -0.7, 0.2, 0.1) and [-2, -2, 2, 0] (mean -0.5, slope 1,
    # residuals 0, -1, 2, -1) have mean |residual| 0.175, 0.35 and 1 (growth 2 and 2.9); the evidence is the
    # peak's (the 12th record's) chain, the range runs to the 13th
    findings = detect_oscillation(loss_d_records(DOUBLING + [0.0]), osc_cfg(), WGAN)
    assert as_dicts(findings) == [
        oscillation_dict(0.5 * SQRT_HALF_PI, 2 * SQRT_HALF_PI, 4.0, 1, 1300, "0.627 2.51 4")]


def test_oscillation_std_removes_each_window_own_line() -> None:
    # DOUBLING on a slope of 0.25 per record: each window's least-squares line takes the trend (and its own
    # level) away, so the stds and the finding are those of DOUBLING alone
    trend = [v + 0.25 * i for i, v in enumerate(DOUBLING)]
    findings = detect_oscillation(loss_d_records(trend), osc_cfg())
    assert as_dicts(findings) == [
        oscillation_dict(0.5 * SQRT_HALF_PI, 2 * SQRT_HALF_PI, 4.0, 1, 1200, "0.627 2.51 4")]


def explosion_dict(value: float, step: int, median: float, ratio: float, start: int, end: int, shown: str) -> dict:
    """The loss_d explosion finding (as `as_dicts` gives it); `shown` holds the message's value, median and ratio."""
    value_text, median_text, ratio_text = shown.split()
    return {"code": "divergence.explosion", "severity": "error", "start_step": start, "end_step": end,
            "metric": "loss_d", "evidence": {"value": value, "median": median, "ratio": ratio, "factor": 10.0},
            "message": f"loss_d reached {value_text} at step {step} against a running median of {median_text}, a "
                       f"deviation of {ratio_text} times its scale (threshold 10), over steps {start}-{end}."}


def explosion_cfg(**changes) -> DoctorConfig:
    """Explosions of loss_d only."""
    return DoctorConfig(explosion_keys=("loss_d",), **changes)


def test_explosion_scale_from_the_quartiles_of_an_even_history() -> None:
    # 4 kept values -30, -10, 10, 30: median 0 (halfway between -10 and 10), quartiles -15 and 15 (three quarters
    # of the way from -30 to -10, a quarter from 10 to 30), so the scale is half the IQR, 15: 160 is 10.7 scales
    cfg = explosion_cfg(explosion_min_records=4, explosion_min_history_steps=400)
    records = loss_d_records([-30.0, -10.0, 10.0, 30.0, 160.0, 160.0, 0.0])
    assert as_dicts(detect_explosion(records, cfg)) == [
        explosion_dict(160.0, 500, 0.0, 160 / 15, 500, 600, "160 0 10.7")]
    # a single kept value is its own median and quartiles: the scale is max(|2|, 0, floor 1) = 2
    cfg = explosion_cfg(explosion_min_records=1, explosion_min_history_steps=100)
    assert as_dicts(detect_explosion(loss_d_records([2.0, 50.0, 50.0]), cfg)) == [
        explosion_dict(50.0, 200, 2.0, 24.0, 200, 300, "50 2 24")]


def test_explosion_history_span_counts_from_the_oldest_kept_step() -> None:
    # a run starting at step 1000: the history 1000-1300 spans 400 steps, one record short of 500, so the first
    # 20 is not judged and joins the baseline; from step 1500 the history (1, 1, 1, 1, 20) spans 500 steps
    cfg = explosion_cfg(explosion_min_records=4, explosion_min_history_steps=500)
    records = loss_d_records([1.0, 1.0, 1.0, 1.0, 20.0, 20.0, 20.0, 1.0], first_step=1000)
    assert as_dicts(detect_explosion(records, cfg)) == [
        explosion_dict(20.0, 1500, 1.0, 19.0, 1500, 1600, "20 1 19")]


def test_explosion_baseline_drops_the_value_exactly_a_window_old() -> None:
    # window 500 steps: after step 600 the value of step 100 leaves, 200-600 stay (5, 5, 1, 1, 1): median 1,
    # quartiles 1 and 5, scale max(1, 2, 1) = 2, so 30 is 14.5 scales away (with step 100 kept it would be
    # (30 - 3) / 3 = 9 scales, not an explosion)
    cfg = explosion_cfg(explosion_window_steps=500, explosion_min_history_steps=500)
    records = loss_d_records([5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 30.0, 30.0, 1.0])
    assert as_dicts(detect_explosion(records, cfg)) == [
        explosion_dict(30.0, 700, 1.0, 14.5, 700, 800, "30 1 14.5")]


def test_explosion_scale_without_a_floor_is_at_least_1e_12() -> None:
    # explosion_scale_floor 0 and a history of zeros: the scale is 1e-12, so 5e-11 is 50 scales away
    cfg = explosion_cfg(explosion_scale_floor=0.0)
    records = loss_d_records([0.0] * 5 + [5e-11, 5e-11, 0.0])
    assert as_dicts(detect_explosion(records, cfg)) == [
        explosion_dict(5e-11, 600, 0.0, 50.0, 600, 700, "5e-11 0 50")]
    assert detect_explosion(loss_d_records([0.0] * 5 + [1e-11, 1e-11]), cfg) == []  # exactly 10 scales: not past


def dead_dict(start: int, end: int, dead: int, covered: int, percent: str) -> dict:
    """A zero-grad_norm_g dead finding (as `as_dicts` gives it)."""
    return {"code": "training.dead", "severity": "error", "start_step": start, "end_step": end, "metric": None,
            "evidence": {"records": dead, "fraction": dead / covered, "zero_grad_g": 1, "zero_grad_d": 0,
                         "constant_losses": 0},
            "message": f"Training is dead over steps {start}-{end}: {dead} of {covered} records ({percent}) show "
                       "grad_norm_g < 1e-08."}


def grad_records(grads: list[float]) -> list[dict]:
    """Training lines with grad_norm_g and losses that differ from record to record."""
    return [{"step": 100 * (i + 1), "grad_norm_g": g, "loss_d": float(i), "loss_g": 1.0} for i, g in enumerate(grads)]


def test_dead_windows_exactly_a_window_apart_are_one_episode() -> None:
    cfg = DoctorConfig(dead_window_steps=300)
    # dead windows end at steps 300 (records 100-300) and 600 (400-600), 300 steps apart: one episode over the
    # records 100-600, 4 of 6 dead
    assert as_dicts(detect_dead(grad_records([0.0, 0.0, 1.0, 1.0, 0.0, 0.0]), cfg)) == [
        dead_dict(100, 600, 4, 6, "67%")]
    # one record more between them (dead windows at steps 300 and 700, 400 apart): two episodes
    assert as_dicts(detect_dead(grad_records([0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]), cfg)) == [
        dead_dict(100, 200, 2, 3, "67%"), dead_dict(600, 700, 2, 3, "67%")]


def test_dead_first_record_has_no_previous_losses() -> None:
    # the first and last records log the same losses: the first is not "constant" (nothing precedes it), so the
    # window of steps 100-300 has 1 dead record of 3 and only the window ending at step 700 is dead
    grads = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    records = [{"step": 100 * (i + 1), "grad_norm_g": g, "loss_d": float(i % 6), "loss_g": 1.0}
               for i, g in enumerate(grads)]
    assert records[0]["loss_d"] == records[-1]["loss_d"] == 0.0
    assert as_dicts(detect_dead(records, DoctorConfig(dead_window_steps=300))) == [dead_dict(600, 700, 2, 3, "67%")]


def test_vanishing_g_grad_single_record_covering_the_patience() -> None:
    # early median 2 (steps 0-200), limit 0.2: one vanishing record covers 100 steps, exactly vanish_patience_steps
    records = [{"step": 100 * i, "grad_norm_g": g, "d_acc": 0.99} for i, g in enumerate([1.0, 2.0, 3.0, 0.1, 1.0])]
    cfg = DoctorConfig(vanish_early_steps=300, vanish_patience_steps=100)
    assert as_dicts(detect_vanishing_g_grad(records, cfg, None)) == [{
        "code": "vanishing_g_grad", "severity": "warning", "start_step": 300, "end_step": 300, "metric": None,
        "evidence": {"grad_norm_g": 0.1, "early_median": 2.0, "ratio": 20.0, "d_acc_mean": 0.99},
        "message": "grad_norm_g fell to 0.1, 20 times below its early median 2, while D accuracy averaged 0.990 "
                   "over steps 300-300."}]
    assert detect_vanishing_g_grad(records, DoctorConfig(vanish_early_steps=300, vanish_patience_steps=101),
                                   None) == []


def test_stall_after_a_converged_episode_is_still_reported() -> None:
    # eval_modes judged lower-is-better (the config allows it): the all-modes plateau 8, 8, 8 is convergence and
    # skipped; after the drop to 3 a second plateau is a stall
    cfg = DoctorConfig(stall_metric="eval_modes", stall_higher_is_better=False, stall_window=2, expected_modes=8)
    records = evals_of("eval_modes", [8.0, 8.0, 8.0, 3.0, 3.0, 3.0])
    assert as_dicts(detect_stall(records, cfg)) == [{
        "code": "stall", "severity": "info", "start_step": 4000, "end_step": 6000, "metric": "eval_modes",
        "evidence": {"best": 3.0, "best_step": 4000, "evaluations_since_best": 2, "latest": 3.0},
        "message": "eval_modes has not improved on its best 3 (step 4000) for 2 evaluations, up to step 6000 "
                   "(latest 3)."}]
