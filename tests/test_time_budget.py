"""train.time_budget stops a run after a wall-clock budget with all the usual outputs."""

from __future__ import annotations

import json
from pathlib import Path

from ganstab.pipeline import load_config
from ganstab.train import train


def test_time_budget_stops_and_finishes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = load_config(preset="toy", overrides=[f"out={out}", "train.steps=1000000", "train.time_budget=1.5",
                                               "log.every=7", "log.progress=false", "model.width=16"])
    result = train(cfg, echo=lambda m: None)
    assert 0 < result.steps < 1000000
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    training = [r for r in lines if "loss_d" in r]
    assert training[-1]["step"] == result.steps  # an off-interval last line is written
    assert training[-1]["time"] >= 1.5
    assert any("eval_modes" in r for r in lines)
    assert (out / "generator.safetensors").is_file()
