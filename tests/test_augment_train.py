"""Augmentation, ADA, lazy R1 and the ResNet architecture inside real (tiny) training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ganstab.penalties
import ganstab.training.inputs as loop
from ganstab import losses
from ganstab.errors import ConfigError
from ganstab.penalties import lazy_weight
from ganstab.pipeline import load_config, make_trainer, train

BASE = ["log.progress=false", "eval.final=false", "log.every=5", "log.sample_every=1000", "log.checkpoint_every=1000",
        "train.batch_size=16", "train.device=cpu", "model.hidden=[32,32]"]


def _cfg(out: Path, *extra: str):
    return load_config(overrides=[f"out={out}", *BASE, *extra])


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_lazy_weight_is_k_times_the_weight_every_kth_step() -> None:
    assert [lazy_weight(0.1, 4, d) for d in range(9)] == [0.4, 0.0, 0.0, 0.0, 0.4, 0.0, 0.0, 0.0, 0.4]
    assert [lazy_weight(0.1, 1, d) for d in range(3)] == [0.1, 0.1, 0.1]
    with pytest.raises(ValueError):
        lazy_weight(0.1, 0, 0)


def test_lazy_r1_runs_every_fourth_d_step_with_four_times_the_weight(tmp_path: Path, monkeypatch) -> None:
    gammas, r1_calls = [], []
    real_objective, real_r1 = losses.discriminator_objective, ganstab.penalties.r1_penalty

    def objective(*args, **kwargs):
        gammas.append(kwargs["r1_gamma"] if kwargs.get("r1") is not None else 0.0)
        return real_objective(*args, **kwargs)

    def r1(*args, **kwargs):
        r1_calls.append(1)
        return real_r1(*args, **kwargs)

    monkeypatch.setattr(losses, "discriminator_objective", objective)
    monkeypatch.setattr(ganstab.penalties, "r1_penalty", r1)
    trainer = make_trainer(_cfg(tmp_path / "r1", "train.steps=8", "penalty.r1=0.1", "penalty.r1_every=4",
                                "loss.kind=nonsaturating", "train.n_critic=1"), echo=lambda m: None)
    trainer.run()
    assert gammas == pytest.approx([0.4, 0, 0, 0, 0.4, 0, 0, 0])
    assert len(r1_calls) == 2


def test_every_image_d_sees_is_augmented(tmp_path: Path, monkeypatch) -> None:
    seen = []
    real_augment = loop.augment

    def spy(x, policy, generator, p=1.0):
        seen.append((tuple(x.shape), x.requires_grad, tuple(policy), p))
        return real_augment(x, policy, generator, p)

    monkeypatch.setattr(loop, "augment", spy)
    trainer = make_trainer(_cfg(tmp_path / "aug", "train.steps=2", "train.n_critic=2",
                                "augment.policy=translation,cutout", "augment.p=0.5"), echo=lambda m: None)
    trainer.run()
    # per step: (real, fake) for each of the 2 D steps, then G's fakes (which carry G's graph)
    assert len(seen) == 2 * (2 * 2 + 1)
    assert all(s[0] == (16, 1, 8, 8) and s[2] == ("translation", "cutout") and s[3] == 0.5 for s in seen)
    assert [s[1] for s in seen[:5]] == [False, False, False, False, True]


def test_ada_moves_p_logs_it_and_checkpoints_it(tmp_path: Path) -> None:
    out = tmp_path / "ada"
    trainer = make_trainer(_cfg(out, "train.steps=40", "augment.policy=color,translation", "augment.ada_target=0.6",
                                "augment.ada_interval=32", "augment.ada_speed_images=2000"), echo=lambda m: None)
    trainer.run()
    lines = [r for r in _lines(out) if "loss_d" in r]
    assert len(lines) == 8 and all("augment_p" in r and "ada_rt" in r for r in lines)
    assert all(0.0 <= r["augment_p"] <= 1.0 and -1.0 <= r["ada_rt"] <= 1.0 for r in lines)
    # 40 steps x 16 images = 20 updates of 32 images, each moving p by 32/2000
    steps_moved = round(trainer.ada.p / (32 / 2000))
    assert 0 < steps_moved <= 20
    assert trainer.ada.p == pytest.approx(steps_moved * 32 / 2000, abs=1e-9)
    assert trainer.state()["ada"]["p"] == trainer.ada.p


def test_ada_without_a_policy_and_r1_every_without_r1_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="augment.ada_target adapts the probability of augment.policy"):
        _cfg(tmp_path / "x", "augment.ada_target=0.6")
    with pytest.raises(ConfigError, match="penalty.r1_every sets how often R1 runs, but penalty.r1 is 0"):
        _cfg(tmp_path / "x", "penalty.r1_every=4")
    with pytest.raises(ConfigError) as err:
        _cfg(tmp_path / "x", "augment.policy=color,flip")
    assert str(err.value) == "unknown augmentation 'flip' in augment.policy; known: color, translation, cutout"
    with pytest.raises(ConfigError, match="augment.policy transforms images, but grid25 holds 2-D points"):
        _cfg(tmp_path / "x", "data.name=grid25", "model.arch=toy", "augment.policy=color")


def test_resnet_trains_on_padded_28_and_32_with_every_loss(tmp_path: Path) -> None:
    for side, loss in ((32, "hinge"), (28, "wasserstein")):
        extra = ["model.arch=resnet", f"data.image_size={side}", "model.width=8", f"loss.kind={loss}",
                 "train.steps=2", "model.d_norm=spectral" if loss == "hinge" else "model.d_norm=none"]
        if loss == "wasserstein":
            extra.append("penalty.gp=10")
        result = train(_cfg(tmp_path / f"r{side}", *extra), echo=lambda m: None)
        assert result.steps == 2
        weights = (tmp_path / f"r{side}" / "generator.safetensors")
        assert weights.is_file()
    with pytest.raises(ConfigError, match=r"model.arch=resnet needs image sides b\*2\^k with b in 3..8 and the same k"):
        _cfg(tmp_path / "x", "model.arch=resnet")
    assert torch.get_num_threads() >= 1
