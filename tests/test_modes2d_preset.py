"""The `modes2d` preset: loads for both 2-D datasets and a short run ends with PacGAN eval lines."""

from __future__ import annotations

import json

import pytest

from ganstab.pipeline import load_config
from ganstab.presets import PRESETS


def test_modes2d_is_listed_with_a_one_line_description() -> None:
    preset = PRESETS["modes2d"]
    assert preset.description and "\n" not in preset.description


@pytest.mark.parametrize("data", ["grid25", "ring8"])
def test_modes2d_loads_for_both_datasets(data: str) -> None:
    cfg = load_config(preset="modes2d", overrides=[f"data.name={data}"])
    assert cfg.data.name == data
    assert cfg.model.arch == "toy"
    assert cfg.train.ema > 0  # samples come from the EMA copy
    assert cfg.eval.final and cfg.eval.n == 2500
    assert cfg.train.batch_size % cfg.model.pack == 0


def test_modes2d_defaults_to_grid25() -> None:
    assert load_config(preset="modes2d").data.name == "grid25"


@pytest.mark.parametrize("data", ["grid25", "ring8"])
def test_modes2d_short_run_finishes_with_eval_lines(tmp_path, data: str) -> None:
    from ganstab.train import train

    cfg = load_config(preset="modes2d", overrides=[
        f"data.name={data}", "train.steps=200", "train.threads=1", "eval.every=100", "log.every=50",
        "log.sample_every=200", "log.checkpoint_every=200", f"out={tmp_path / data}"])
    result = train(cfg, echo=lambda message: None)
    assert result.steps == 200 and not result.interrupted
    lines = [json.loads(line) for line in (tmp_path / data / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if "eval_modes" in line]
    assert [(e["step"], e["eval_split"]) for e in evals] == [(100, "validation"), (200, "validation"), (200, "test")]
    for e in evals:
        assert 0 <= e["eval_modes"] <= (25 if data == "grid25" else 8)
        assert 0.0 <= e["eval_hq_fraction"] <= 1.0
        assert e["eval_reverse_kl"] >= 0.0
