"""D overfitting (r_t = E[sign(D(real))]): logged by every run, judged by the doctor, shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganstab.diagnose import (
    DoctorConfig,
    advice_for,
    context_from_config,
    detect_d_overfitting,
    diagnose,
    verdict,
)
from ganstab.pipeline import make_trainer, load_config
from ganstab.report.html import run_report_html

NS = {"loss_kind": "nonsaturating"}
ADA = {"loss_kind": "hinge", "augment_policy": "color,translation,cutout", "ada_target": 0.6}
CFG = DoctorConfig()  # overfit_rt 0.9 over 2000 G steps, at least 3 records


def training(rt: list[float], every: int = 100, p: list[float] | None = None) -> list[dict]:
    """Training lines every `every` steps with d_real_sign = rt[i] (and augment_p = p[i] when given)."""
    lines = []
    for i, value in enumerate(rt):
        line = {"step": (i + 1) * every, "loss_d": 0.5, "loss_g": 2.0 + 0.01 * i, "d_acc": 0.8,
                "grad_norm_d": 1.0, "grad_norm_g": 1.0, "d_real_sign": value}
        if p is not None:
            line["augment_p"] = p[i]
        lines.append(line)
    return lines


def test_sustained_rt_near_one_is_a_warning_with_augmentation_advice() -> None:
    rt = [0.3] * 10 + [0.95] * 25 + [0.5] * 5  # steps 1100..3500 at 0.95: 25 records, a span of 2500 steps
    (finding,) = detect_d_overfitting(training(rt), CFG, NS)
    # r_t alone cannot tell memorising from a D that is ahead on a large data set: info, not a warning
    assert (finding.code, finding.severity, finding.start_step, finding.end_step) == ("d_overfitting", "info",
                                                                                       1100, 3500)
    assert finding.evidence == {"rt_mean": pytest.approx(0.95), "rt_min": pytest.approx(0.95), "records": 25}
    assert finding.message == ("D may be overfitting the training images: r_t = E[sign(D(real))] stayed at or above 0.9 "
                               "(mean 0.950) for 25 records over steps 1100-3500.")
    assert finding.advice.startswith("On a small data set, augment everything D sees: "
                                     "augment.policy=color,translation,cutout with augment.ada_target=0.6 (ADA")


def test_short_low_or_wasserstein_runs_give_nothing() -> None:
    assert detect_d_overfitting(training([0.3] * 10 + [0.95] * 19 + [0.5] * 5), CFG, NS) == []  # 1900 steps
    assert detect_d_overfitting(training([0.89] * 60), CFG, NS) == []
    assert detect_d_overfitting(training([1.0] * 60), CFG, {"loss_kind": "wasserstein"}) == []
    # relativistic losses score D(real) - D(fake) only: r_t near 1 is an offset, not memorising (a false alarm seen
    # on an r3gan ring8 run of benchmarks/modes2d.py)
    for kind in ("relativistic", "relativistic_average"):
        assert detect_d_overfitting(training([1.0] * 60), CFG, {"loss_kind": kind}) == []
    assert detect_d_overfitting([{"step": 100 * i, "loss_d": 1.0} for i in range(1, 60)], CFG, NS) == []


def test_ada_still_raising_p_is_not_a_finding_but_saturated_p_is() -> None:
    rt = [0.97] * 40
    assert detect_d_overfitting(training(rt, p=[min(1.0, 0.02 * i) for i in range(40)]), CFG, ADA) == []
    (finding,) = detect_d_overfitting(training(rt, p=[0.5] * 10 + [1.0] * 30), CFG, ADA)
    assert (finding.severity, finding.start_step, finding.end_step, finding.evidence["augment_p_min"]) == (
        "warning", 1100, 4000, 1.0)
    assert "with augment_p at 1 or more" in finding.message
    assert finding.advice == ("Augmentation is already at its strongest setting; add LeCam (penalty.lecam=0.3, Tseng "
                              "et al. 2021, made for limited data), add penalty.r1=10, or train on more images (the "
                              "samples will degrade from here).")
    partial = advice_for("d_overfitting", {"augment_policy": "translation", "r1": 10.0})
    assert partial == ("Augmentation is already at its strongest setting; extend augment.policy with color,cutout, add "
                       "LeCam (penalty.lecam=0.3, Tseng et al. 2021, made for limited data), raise penalty.r1, or "
                       "train on more images (the samples will degrade from here).")


@pytest.mark.parametrize("every", [10, 50, 100])
def test_the_window_is_in_steps_whatever_log_every(every: int) -> None:
    steps = 6000
    rt = [0.95 if 2000 < (i + 1) * every <= 4500 else 0.4 for i in range(steps // every)]
    (finding,) = detect_d_overfitting(training(rt, every=every), CFG, NS)
    assert (finding.start_step, finding.end_step) == (2000 + every, 4500)


def test_context_reads_the_augmentation_and_diagnose_runs_the_detector() -> None:
    context = context_from_config({"augment": {"policy": "color", "ada_target": 0.6}, "data": {"limit": 2000},
                                   "loss": {"kind": "hinge"}})
    assert context == {"loss_kind": "hinge", "augment_policy": "color"}
    findings = diagnose(training([0.99] * 40), CFG, NS)
    assert [(f.code, f.severity) for f in findings] == [("d_overfitting", "info")]
    assert verdict(findings) == "healthy"  # info is advice, not a judgement of the run


def test_every_run_logs_r_t_and_the_report_plots_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = load_config(overrides=[f"out={out}", "train.steps=20", "log.every=5", "log.progress=false",
                                 "eval.final=false", "eval.every=0", "train.batch_size=16", "model.hidden=[32,32]",
                                 "train.device=cpu", "log.sample_every=1000", "log.checkpoint_every=1000"])
    make_trainer(cfg, echo=lambda m: None).run()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    signs = [r["d_real_sign"] for r in lines if "loss_d" in r]
    assert len(signs) == 4 and all(-1.0 <= s <= 1.0 for s in signs)
    html = run_report_html(out)
    assert "Discriminator overfitting and augmentation" in html
    assert 'alt="r_t = E[sign(D(x))] / ADA probability"' in html
