"""The `small-data` preset is the winning arm of benchmarks/small_data.py, key for key."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ganstab.pipeline import load_config
from ganstab.presets import PRESETS

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "small_data.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("small_data_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_data_preset_is_the_benchmarks_dcgan_arm_without_augmentation(tmp_path: Path) -> None:
    bench = _benchmark()
    arm = load_config(overrides=[*bench.COMMON, *bench.NETWORKS["dcgan"], *bench.AUGMENT["none"], f"out={tmp_path}"])
    preset = load_config(preset="small-data", overrides=[f"out={tmp_path}"])
    assert preset.model == arm.model
    assert preset.loss == arm.loss and preset.penalty == arm.penalty and preset.optim == arm.optim
    assert preset.augment == arm.augment and preset.augment.policy == ""
    assert (preset.train.ema, preset.train.batch_size, preset.train.n_critic) == (10000.0, 64, 1)
    assert preset.data.name == "fashion-mnist" and preset.data.limit is None and arm.data.limit == 2000
    assert PRESETS["small-data"].description.startswith("Best of benchmarks/small_data.py")
