"""The r3gan preset: RpGAN + R1 + R2 with R3GAN's decays and ramp, on normalisation-free DCGAN networks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ganstab.config import load_config as load_plain_config
from ganstab.pipeline import load_config
from ganstab.presets import R3GAN_SCHEDULE_IMAGES
from ganstab.train import train


def test_r3gan_preset_values() -> None:
    cfg = load_plain_config(preset="r3gan")
    assert (cfg.loss.kind, cfg.penalty.r1, cfg.penalty.r2) == ("relativistic", 0.05, 0.05)
    assert (cfg.model.arch, cfg.model.g_norm, cfg.model.d_norm) == ("dcgan", "none", "none")
    assert (cfg.optim.g_lr, cfg.optim.d_lr, cfg.optim.g_betas, cfg.optim.d_betas) == (2e-4, 2e-4, (0.0, 0.9), (0.0, 0.9))
    moves = {entry.key: (entry.end, entry.images, entry.kind) for entry in cfg.schedule.values()}
    assert moves == {"penalty.r1": (0.005, 500_000, "cosine"), "penalty.r2": (0.005, 500_000, "cosine"),
                     "optim.g_lr": (5e-5, 500_000, "cosine"), "optim.d_lr": (5e-5, 500_000, "cosine"),
                     "optim.g_beta2": (0.99, 500_000, "cosine"), "optim.d_beta2": (0.99, 500_000, "cosine")}
    assert R3GAN_SCHEDULE_IMAGES == 500_000


def _cosine(start: float, end: float, seen: int) -> float:
    return start + (end - start) * 0.5 * (1 - math.cos(math.pi * seen / 500_000))


def test_r3gan_trains_with_its_schedules(tmp_path: Path) -> None:
    """Each logged step uses the values at the images seen when it began (two real batches per step: D's and G's)."""
    out = tmp_path / "run"
    train(load_config(preset="r3gan", overrides=[
        f"out={out}", "data.name=digits", "train.steps=4", "train.batch_size=16", "log.every=2", "eval.final=false",
        "eval.every=0", "log.progress=false", "model.width=8"]), echo=lambda m: None)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    assert [line["images_seen"] for line in lines] == [64, 128]
    for line in lines:
        began = line["images_seen"] - 32  # the line's last step began 2 x 16 images earlier
        assert line["lr_g"] == pytest.approx(_cosine(2e-4, 5e-5, began), rel=1e-12)
        assert line["penalty_r2"] == pytest.approx(_cosine(0.05, 0.005, began), rel=1e-12)
        assert line["optim_d_beta2"] == pytest.approx(_cosine(0.9, 0.99, began), rel=1e-12)
        assert math.isfinite(line["loss_d"]) and math.isfinite(line["loss_g"]) and line["r1"] > 0 and line["r2"] > 0
