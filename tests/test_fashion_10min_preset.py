"""The `fashion-10min` preset is the winner of the Fashion-MNIST study (benchmarks/RESULTS.md), key for key."""

from __future__ import annotations

from pathlib import Path

from ganstab.config import read_yaml
from ganstab.pipeline import load_config
from ganstab.presets import PRESETS

BEST = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "tune-fashion-best.yaml"


def test_fashion_10min_is_the_studys_best_yaml_with_a_600_second_clock(tmp_path: Path) -> None:
    best = load_config(BEST, [f"out={tmp_path}"])
    preset = load_config(preset="fashion-10min", overrides=[f"out={tmp_path}"])
    assert preset.model == best.model and preset.loss == best.loss and preset.penalty == best.penalty
    assert preset.optim == best.optim and preset.augment == best.augment
    for key in ("batch_size", "n_critic", "ema"):
        assert getattr(preset.train, key) == getattr(best.train, key), key
    assert (preset.train.time_budget, best.train.time_budget) == (600.0, 60.0)  # the study's trials: 60 s
    assert preset.data.name == "fashion-mnist" and preset.data.limit is None
    assert read_yaml(BEST)["data"]["name"] == "fashion-mnist"
    assert PRESETS["fashion-10min"].description.startswith("Winner of the evaluator-v2 Fashion-MNIST study")
