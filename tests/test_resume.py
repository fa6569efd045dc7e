"""Exact resume: 2N steps in one go equal N steps, stop, resume, N more (losses and weights bitwise)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganstab.pipeline import load_config
from ganstab.errors import CheckpointError
from ganstab.train import train

# a fixed eval.every: the default "auto" places evaluations by measured time, which a loaded machine changes
BASE = ["eval.final=false", "eval.every=12", "log.progress=false", "log.every=3", "log.checkpoint_every=10",
        "log.sample_every=1000", "train.batch_size=16", "model.width=8", "train.deterministic=true"]

VARIANTS = {
    "dcgan-bn-ema-ncritic": ["train.n_critic=2", "train.ema=500", "model.g_norm=batch", "model.d_norm=spectral"],
    "toy-gp": ["data.name=grid25", "model.arch=toy", "model.latent_dim=2", "loss.kind=wasserstein",
               "penalty.gp=10", "model.d_norm=layer", "train.n_critic=3", "train.ema=0"],
    "mlp-ada-lazy-r1": ["augment.policy=color,translation,cutout", "augment.ada_target=0.6", "augment.ada_interval=32",
                        "augment.ada_speed_images=2000", "penalty.r1=0.1", "penalty.r1_every=4",
                        "loss.kind=nonsaturating"],
    "dcgan-conditional-cbn-gp": ["model.arch=dcgan", "model.conditional=true", "model.d_norm=layer",
                                 "loss.kind=wasserstein", "penalty.gp=10", "train.n_critic=2", "train.ema=500"],
    # the G step scores a fresh real batch; LeCam's EMAs are training state: a resume that did not restore
    # them would restart the zero-debiased averages and change every later D step
    "mlp-relativistic-r2-lecam": ["loss.kind=relativistic", "penalty.r1=0.1", "penalty.r2=0.1", "penalty.r2_every=2",
                                  "penalty.lecam=0.3", "penalty.lecam_decay=0.9"],
    "mlp-conditional-acgan": ["model.conditional=true", "model.d_condition=acgan", "loss.kind=nonsaturating",
                              "model.label_sampling=balanced"],
    # ramps still moving when the run stops at step 20 (320 images) and ending at 480 or after 640 images
    "mlp-schedules-bcr-zcr": ["penalty.r1=0.1", "schedule.gamma.key=penalty.r1", "schedule.gamma.end=0.01",
                              "schedule.gamma.images=1000", "schedule.lr.key=optim.g_lr", "schedule.lr.end=1e-5",
                              "schedule.lr.images=480", "schedule.lr.kind=linear", "schedule.b2.key=optim.d_beta2",
                              "schedule.b2.end=0.99", "schedule.b2.images=1000", "schedule.cr.key=penalty.bcr_real",
                              "schedule.cr.end=1", "schedule.cr.images=1000", "penalty.bcr_real=10",
                              "penalty.bcr_fake=10", "penalty.zcr=5", "penalty.zcr_gen=0.5", "loss.kind=nonsaturating"],
    "dcgan-conditional-zcr-augment": ["model.arch=dcgan", "model.conditional=true", "augment.policy=translation",
                                      "penalty.zcr=5", "penalty.zcr_gen=0.5", "penalty.bcr_fake=10",
                                      "train.n_critic=2", "schedule.lr.key=optim.d_lr", "schedule.lr.end=1e-4",
                                      "schedule.lr.images=2000"],
    "progressive-mid-fade": ["model.arch=progressive", "progressive.stable_images=300", "progressive.fade_images=400",
                             "model.d_norm=none", "loss.kind=wasserstein", "penalty.gp=10", "penalty.drift=0.001",
                             "train.ema=500"],
}


def _run(out: Path, steps: int, extra: list[str], resume: bool = False):
    cfg = load_config(overrides=[f"out={out}", f"train.steps={steps}", *BASE, *extra])
    return train(cfg, overwrite=not resume, resume=resume, echo=lambda m: None)


def _records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("time", "eval_time")} for line in lines]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_resume_is_exact(tmp_path: Path, name: str) -> None:
    extra = VARIANTS[name]
    _run(tmp_path / "full", 40, extra)
    _run(tmp_path / "half", 20, extra)
    result = _run(tmp_path / "half", 40, extra, resume=True)
    assert result.steps == 40
    full, half = _records(tmp_path / "full"), _records(tmp_path / "half")
    assert [r["step"] for r in half] == [r["step"] for r in full]
    assert half == full
    g_full = load_file(str(tmp_path / "full" / "generator.safetensors"))
    g_half = load_file(str(tmp_path / "half" / "generator.safetensors"))
    assert g_full.keys() == g_half.keys()
    for key in g_full:
        assert torch.equal(g_full[key], g_half[key]), key


def test_progressive_resume_lands_mid_fade(tmp_path: Path) -> None:
    extra = VARIANTS["progressive-mid-fade"]
    _run(tmp_path / "run", 30, extra)
    from ganstab.training.checkpoint import load_checkpoint, newest_valid_checkpoint
    from ganstab.pipeline import make_trainer

    state = load_checkpoint(newest_valid_checkpoint(tmp_path / "run" / "checkpoints"))
    assert state["images_seen"] == 30 * 16
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", "train.steps=40", *BASE, *extra])
    trainer = make_trainer(cfg)
    trainer.load_state(state)
    # 480 images: 300 stable at 4x4, then fade to 8x8 over 400 images -> alpha (480-300)/400
    assert trainer.resolution == 8
    assert trainer.alpha == pytest.approx(180 / 400)


def test_resume_refuses_changed_config(tmp_path: Path) -> None:
    _run(tmp_path / "run", 10, [])
    with pytest.raises(CheckpointError) as err:
        _run(tmp_path / "run", 20, ["loss.kind=wasserstein"], resume=True)
    assert str(err.value) == ("the config differs from the checkpoint's (loss.kind: 'hinge' -> 'wasserstein'); "
                              "pass --allow-config-change to resume anyway")
    # safe keys (steps, log intervals) may change
    assert _run(tmp_path / "run", 20, ["log.every=5"], resume=True).steps == 20


def test_a_key_added_since_the_run_takes_its_default_without_counting_as_a_change() -> None:
    from ganstab.config import Config, keys_added_at_default, to_dict, unsafe_changes

    new = to_dict(Config())
    old = json.loads(json.dumps(new))
    del old["penalty"]["r2"], old["eval"]["val_n"], old["schedule"]
    assert keys_added_at_default(old, new) == ["eval.val_n", "penalty.r2", "schedule"]
    assert unsafe_changes(old, new) == []
    changed = json.loads(json.dumps(new))
    changed["penalty"]["r2"] = 0.5  # absent from the old run, but not at its default: a change
    assert keys_added_at_default(old, changed) == ["eval.val_n", "schedule"]
    assert unsafe_changes(old, changed) == ["penalty.r2: None -> 0.5"]
    del old["loss"]  # a whole section the old run lacks, at its defaults
    assert "loss.kind" in keys_added_at_default(old, new) and unsafe_changes(old, new) == []


def _as_older_version(run: Path, dropped: list[tuple[str, str]]) -> None:
    """Make a run look written by a ganstab without the `dropped` keys: gone from config.yaml and the checkpoints."""
    import yaml

    from ganstab.training.checkpoint import save_checkpoint

    config = yaml.safe_load((run / "config.yaml").read_text())
    for section, key in dropped:
        del config[section][key]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    for path in sorted((run / "checkpoints").glob("ckpt_*.pt")):
        state = torch.load(path, weights_only=True)
        for section, key in dropped:
            del state["config"][section][key]
        save_checkpoint(run / "checkpoints", state["step"], state, keep=10)


def test_resume_of_a_run_older_than_a_new_key(tmp_path: Path) -> None:
    _run(tmp_path / "run", 10, [])
    _as_older_version(tmp_path / "run", [("penalty", "r2"), ("eval", "val_n")])
    with pytest.raises(CheckpointError) as err:  # a real change is still refused, in one line
        _run(tmp_path / "run", 20, ["penalty.r2=0.1", "loss.kind=relativistic"], resume=True)
    assert str(err.value) == ("the config differs from the checkpoint's (loss.kind: 'hinge' -> 'relativistic'; "
                              "penalty.r2: None -> 0.1); pass --allow-config-change to resume anyway")
    trained, messages = _train_counting(tmp_path / "run", 20, [], resume=True)
    assert trained == list(range(11, 21))
    assert ("resuming from ckpt_0000010.pt (step 10); keys newer than the run, at their defaults: eval.val_n, "
            "penalty.r2") in messages


def _train_counting(out: Path, steps: int, extra: list[str], resume: bool = False) -> tuple[list[int], list[str]]:
    """Train (or resume) and return the step number after each step this process trained, and its messages."""
    trained: list[int] = []
    messages: list[str] = []
    cfg = load_config(overrides=[f"out={out}", f"train.steps={steps}", *BASE, *extra])
    train(cfg, overwrite=not resume, resume=resume, echo=messages.append,
          hooks={"after_step": lambda trainer: trained.append(trainer.step)})
    return trained, messages


def _assert_same_run(a: Path, b: Path) -> None:
    assert _records(a) == _records(b)
    g_a, g_b = load_file(str(a / "generator.safetensors")), load_file(str(b / "generator.safetensors"))
    assert g_a.keys() == g_b.keys()
    for key in g_a:
        assert torch.equal(g_a[key], g_b[key]), key


def test_resume_trains_only_the_steps_after_the_newest_checkpoint(tmp_path: Path) -> None:
    """A deterministic restart from an older checkpoint gives the same records: count the steps trained instead."""
    extra = VARIANTS["mlp-ada-lazy-r1"]
    _run(tmp_path / "full", 40, extra)
    _run(tmp_path / "half", 20, extra)
    names = sorted(p.name for p in (tmp_path / "half" / "checkpoints").glob("ckpt_*.pt"))
    assert names == ["ckpt_0000000.pt", "ckpt_0000010.pt", "ckpt_0000020.pt"]
    # the step-20 checkpoint holds the pending log sums of steps 19 and 20 (log.every=3): resume must keep them
    state = torch.load(tmp_path / "half" / "checkpoints" / "ckpt_0000020.pt", weights_only=True)
    assert state["recorder"]["counts"]["loss_d"] == 2
    assert state["batch_index"] == 20 and state["images_seen"] == 20 * 16
    trained, messages = _train_counting(tmp_path / "half", 40, extra, resume=True)
    assert trained == list(range(21, 41))
    assert "resuming from ckpt_0000020.pt (step 20)" in messages
    _assert_same_run(tmp_path / "full", tmp_path / "half")


def test_resume_skips_a_damaged_newest_checkpoint(tmp_path: Path) -> None:
    """A newest checkpoint whose checksum fails is skipped with a message; the previous valid one is used."""
    extra = VARIANTS["mlp-ada-lazy-r1"]
    _run(tmp_path / "full", 40, extra)
    _run(tmp_path / "half", 20, extra)
    newest = tmp_path / "half" / "checkpoints" / "ckpt_0000020.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    trained, messages = _train_counting(tmp_path / "half", 40, extra, resume=True)
    assert trained == list(range(11, 41))
    assert "resuming from ckpt_0000010.pt (step 10)" in messages
    assert any(m.startswith("skipping checkpoint ckpt_0000020.pt: ") for m in messages), messages
    _assert_same_run(tmp_path / "full", tmp_path / "half")


def test_resume_restores_the_global_rng_states(tmp_path: Path) -> None:
    """User code that draws from torch's, numpy's and python's global generators draws the same after a resume."""
    import random

    import numpy as np

    def draws(out: Path, steps: int, resume: bool) -> dict[int, tuple[float, float, float]]:
        seen: dict[int, tuple[float, float, float]] = {}

        def hook(trainer) -> None:
            seen[trainer.step] = (torch.rand(()).item(), float(np.random.rand()), random.random())

        cfg = load_config(overrides=[f"out={out}", f"train.steps={steps}", *BASE])
        train(cfg, overwrite=not resume, resume=resume, echo=lambda m: None, hooks={"after_step": hook})
        return seen

    full = draws(tmp_path / "full", 30, resume=False)
    draws(tmp_path / "half", 20, resume=False)
    torch.manual_seed(12345), np.random.seed(12345), random.seed(12345)  # a process in another state
    resumed = draws(tmp_path / "half", 30, resume=True)
    assert sorted(resumed) == list(range(21, 31))
    assert resumed == {step: full[step] for step in range(21, 31)}
