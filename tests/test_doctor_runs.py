"""The doctor on real runs: a broken config is diagnosed; a healthy run raises no error finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganstab.pipeline import load_config
from ganstab.train import train

pytestmark = pytest.mark.slow


def _findings(run: Path) -> list[dict]:
    path = run / "findings.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_learning_rate_half_is_diagnosed_and_recovered(tmp_path: Path) -> None:
    run = tmp_path / "lr05"
    cfg = load_config(overrides=[f"out={run}", "optim.g_lr=0.5", "optim.d_lr=0.5", "train.steps=600",
                                 "log.every=10", "log.progress=false", "train.threads=1", "eval.final=false"])
    messages: list[str] = []
    result = train(cfg, echo=messages.append)
    findings = _findings(run)
    codes = {f["code"] for f in findings}
    # lr 0.5 either blows up (divergence -> rollback with halved lrs), lets D win outright, or kills
    # D's gradient (exactly zero in most records: training.dead)
    assert codes & {"divergence.explosion", "divergence.nonfinite", "d_overpowers", "vanishing_g_grad",
                    "training.dead"}, codes
    for f in findings:
        assert "fake_label" not in f["advice"]
    if any(c.startswith("divergence") for c in codes):
        assert result.recoveries >= 1
        first = json.loads((run / "recoveries.jsonl").read_text().splitlines()[0])
        assert first["lr_scale"] == 0.5 and first["lr_d"] == 0.25
    assert any(m.startswith("doctor: ") for m in messages)


def test_healthy_default_run_has_no_error_findings(tmp_path: Path) -> None:
    run = tmp_path / "healthy"
    cfg = load_config(overrides=[f"out={run}", "train.steps=1500", "log.every=25", "eval.every=500",
                                 "log.progress=false", "train.threads=1"])
    result = train(cfg, echo=lambda m: None)
    assert result.recoveries == 0
    assert [f for f in _findings(run) if f["severity"] == "error"] == []
