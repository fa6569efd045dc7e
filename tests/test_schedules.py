"""`schedule.<name>`: a config key's value as a pure function of images seen, validated and applied by the loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import ganstab.training.loop as loop_module
from ganstab import losses
from ganstab.config import SCHEDULABLE, KEY_HELP, ConfigError, configured_value, load_config as load_bare
from ganstab.pipeline import load_config, make_trainer
from ganstab.training.schedule import schedule_value, scheduled_values


# R3GAN's CIFAR-10 gamma: 0.05 -> 0.005, here over 1000 images
@pytest.mark.parametrize("images_seen, linear, cosine", [
    (0, 0.05, 0.05),
    (250, 0.05 - 0.045 * 0.25, 0.05 - 0.045 * (1 - math.sqrt(0.5)) / 2),  # 0.03875, 0.0434099
    (500, 0.0275, 0.0275),
    (750, 0.05 - 0.045 * 0.75, 0.05 - 0.045 * (1 + math.sqrt(0.5)) / 2),  # 0.01625, 0.0115901
    (1000, 0.005, 0.005),
    (5000, 0.005, 0.005),
])
def test_decay_at_hand_computed_points(images_seen: int, linear: float, cosine: float) -> None:
    assert schedule_value(0.05, 0.005, 1000, images_seen, "linear") == pytest.approx(linear, rel=1e-12)
    assert schedule_value(0.05, 0.005, 1000, images_seen, "cosine") == pytest.approx(cosine, rel=1e-12)


def test_hand_computed_numbers() -> None:
    assert schedule_value(0.05, 0.005, 1000, 250, "cosine") == pytest.approx(0.0434099025766973, rel=1e-12)
    assert schedule_value(0.05, 0.005, 1000, 750, "cosine") == pytest.approx(0.0115900974233027, rel=1e-12)


@pytest.mark.parametrize("kind, quarter", [("linear", 0.9225), ("cosine", 0.9 + 0.09 * (1 - math.sqrt(0.5)) / 2)])
def test_ramp_up_like_adams_beta2(kind: str, quarter: float) -> None:
    values = [schedule_value(0.9, 0.99, 400, n, kind) for n in (0, 100, 200, 400, 401)]
    assert values == pytest.approx([0.9, quarter, 0.945, 0.99, 0.99], rel=1e-12)


def test_end_is_exact_from_the_last_image_on() -> None:
    assert schedule_value(2e-4, 5e-5, 7, 7, "cosine") == 5e-5
    assert schedule_value(2e-4, 5e-5, 7, 10 ** 9, "linear") == 5e-5


@pytest.mark.parametrize("args, message", [
    ((1.0, 0.0, 0, 5, "linear"), "a schedule needs images >= 1, got 0"),
    ((1.0, 0.0, 10, -1, "linear"), "images_seen must be >= 0, got -1"),
    ((1.0, 0.0, 10, 5, "step"), "unknown schedule kind 'step'; known kinds: linear, cosine"),
])
def test_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError) as err:
        schedule_value(*args)
    assert str(err.value) == message


SCHEDULES = ["penalty.r1=0.05", "schedule.gamma.key=penalty.r1", "schedule.gamma.end=0.005",
             "schedule.gamma.images=1000", "schedule.lr.key=optim.g_lr", "schedule.lr.end=5e-5",
             "schedule.lr.images=400", "schedule.lr.kind=linear", "optim.g_lr=2e-4",
             "schedule.beta2.key=optim.d_beta2", "schedule.beta2.end=0.99", "schedule.beta2.images=200",
             "optim.d_betas=[0.0,0.9]"]


def test_scheduled_values_start_from_the_configured_value() -> None:
    cfg = load_bare(overrides=SCHEDULES)
    assert scheduled_values(cfg, 0) == pytest.approx({"penalty.r1": 0.05, "optim.g_lr": 2e-4, "optim.d_beta2": 0.9})
    assert scheduled_values(cfg, 200) == pytest.approx({
        "penalty.r1": 0.05 - 0.045 * (1 - math.cos(math.pi * 0.2)) / 2, "optim.g_lr": 1.25e-4, "optim.d_beta2": 0.99})
    assert configured_value(cfg, "optim.d_beta2") == 0.9
    assert scheduled_values(load_bare(), 100) == {}


def test_schedulable_keys_are_config_keys_and_described() -> None:
    cfg = load_bare()
    for key in SCHEDULABLE:
        assert isinstance(configured_value(cfg, key), float)
    assert "schedule" in KEY_HELP


def _one(key: str, end: str, images: str = "100", name: str = "s") -> list[str]:
    return [f"schedule.{name}.key={key}", f"schedule.{name}.end={end}", f"schedule.{name}.images={images}"]


@pytest.mark.parametrize("overrides, message", [
    (_one("penalty.r3", "1"), "schedule.s.key: 'penalty.r3' cannot be scheduled; schedulable keys: optim.g_lr, "
                              "optim.d_lr, optim.g_beta2, optim.d_beta2, penalty.r1, penalty.gp, penalty.drift, "
                              "penalty.bcr_real, penalty.bcr_fake, penalty.zcr, penalty.zcr_gen, "
                              "penalty.r2, penalty.lecam"),
    (_one("optim.g_lr", "0"), "schedule.s.end=0 is outside the range of optim.g_lr, (0, 10]; choose an end value "
                              "inside it"),
    (_one("optim.d_beta2", "1"), "schedule.s.end=1 is outside the range of optim.d_beta2, [0, 1); choose an end "
                                 "value inside it"),
    (["penalty.gp=10", *_one("penalty.gp", "-1")], "schedule.s.end=-1 is outside the range of penalty.gp, [0, inf); "
                                                   "choose an end value inside it"),
    (_one("optim.g_lr", "1e-5", images="0"), "config key 'schedule.s.images': Input should be greater than 0, got 0"),
    ([*_one("optim.g_lr", "1e-5"), "schedule.s.kind=exp"],
     "config key 'schedule.s.kind': Input should be 'linear' or 'cosine', got 'exp'"),
    (_one("penalty.r1", "0.01"), "schedule.s moves penalty.r1, which is 0 (off); set penalty.r1 to the value the "
                                 "schedule starts from"),
    ([*_one("optim.g_lr", "1e-5"), *_one("optim.g_lr", "1e-6", name="t")],
     "schedule.s and schedule.t both move optim.g_lr; keep one"),
    (["optim.name=rmsprop", *_one("optim.g_beta2", "0.99")],
     "schedule.s moves optim.g_beta2, but optim.name=rmsprop has no betas; use optim.name=adam or remove the schedule"),
])
def test_bad_schedules_give_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_bare(overrides=overrides)
    assert str(err.value) == message


# ------------------------------------------------------------------------------------------- inside the loop
BASE = ["log.progress=false", "eval.final=false", "eval.every=0", "log.every=1", "log.sample_every=1000",
        "log.checkpoint_every=1000", "train.batch_size=16", "train.device=cpu", "model.hidden=[32,32]",
        "loss.kind=nonsaturating", "model.d_norm=none"]


def test_the_loop_applies_and_logs_the_values_of_each_step(tmp_path: Path, monkeypatch) -> None:
    gammas = []
    real_objective = losses.discriminator_objective

    def objective(*args, **kwargs):
        gammas.append(kwargs["r1_gamma"])
        return real_objective(*args, **kwargs)

    monkeypatch.setattr(loop_module.losses, "discriminator_objective", objective)
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *BASE, "train.steps=15", *SCHEDULES])
    trainer = make_trainer(cfg, echo=lambda m: None)
    trainer.run()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(1, 16))
    for line, gamma in zip(lines, gammas):
        start = line["images_seen"] - 16  # the values of a step come from the images seen when it began
        assert line["penalty_r1"] == pytest.approx(schedule_value(0.05, 0.005, 1000, start, "cosine"), rel=1e-12)
        assert gamma == pytest.approx(line["penalty_r1"], rel=1e-12)
        assert line["lr_g"] == pytest.approx(schedule_value(2e-4, 5e-5, 400, start, "linear"), rel=1e-12)
        assert line["optim_d_beta2"] == pytest.approx(schedule_value(0.9, 0.99, 200, start, "cosine"), rel=1e-12)
        assert line["lr_d"] == 4e-4 and "optim_g_lr" not in line  # unscheduled; lrs are logged as lr_g / lr_d
    assert lines[-1]["optim_d_beta2"] == 0.99  # the last step began at 224 images: beta2's 200 are over,
    assert lines[-1]["lr_g"] == pytest.approx(2e-4 - 1.5e-4 * 224 / 400, rel=1e-12)  # the lr's 400 are not
    assert trainer.opt_d.param_groups[0]["betas"] == (0.0, 0.99)
    assert trainer.opt_g.param_groups[0]["betas"] == (0.0, 0.9)


def test_recovery_scale_multiplies_the_scheduled_lr(tmp_path: Path) -> None:
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *BASE, "train.steps=1", *SCHEDULES])
    trainer = make_trainer(cfg, echo=lambda m: None)
    trainer.images_seen, trainer.lr_scale_g = 200, 0.5
    trainer.apply_schedules()
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(0.5 * 1.25e-4, rel=1e-12)
    assert trainer.opt_d.param_groups[0]["lr"] == 4e-4


def test_no_schedule_leaves_the_optimisers_alone(tmp_path: Path) -> None:
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *BASE, "train.steps=3"])
    trainer = make_trainer(cfg, echo=lambda m: None)
    trainer.run()
    assert trainer.scheduled == {}
    assert trainer.opt_g.param_groups[0]["lr"] == 1e-4
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert not [key for key in line if key.startswith(("penalty_", "optim_"))]
    assert all(math.isfinite(line[k]) for k in ("loss_d", "loss_g"))
