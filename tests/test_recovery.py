"""Automatic recovery: an injected NaN rolls back to the last good checkpoint with halved lrs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganstab.pipeline import load_config
from ganstab.errors import TrainingDiverged
from ganstab.train import train

BASE = ["eval.final=false", "eval.every=0", "log.progress=false", "log.every=5", "log.checkpoint_every=10", "log.sample_every=1000",
        "train.batch_size=16", "model.width=8", "train.steps=40"]


def _poison_once(at_step: int):
    done = {"hit": False}

    def hook(trainer) -> None:
        if trainer.step == at_step and not done["hit"]:
            done["hit"] = True
            with torch.no_grad():
                next(trainer.D.parameters()).fill_(float("nan"))

    return hook


def test_injected_nan_recovers_and_finishes(tmp_path: Path) -> None:
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *BASE])
    messages: list[str] = []
    result = train(cfg, echo=messages.append, hooks={"after_step": _poison_once(23)})
    assert result.steps == 40
    assert result.recoveries == 1
    lines = [json.loads(x) for x in (tmp_path / "run" / "recoveries.jsonl").read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["step"] == 20 and lines[0]["lr_scale"] == 0.5
    assert lines[0]["lr_g"] == pytest.approx(0.5e-4) and lines[0]["lr_d"] == pytest.approx(2e-4)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert all("nonfinite" not in r for r in records)
    assert records[-1]["lr_g"] == pytest.approx(0.5e-4)
    assert records[3]["lr_g"] == pytest.approx(1e-4)
    assert any(m.startswith("recovery 1/3: d_fake, d_real, grad_norm_d, grad_norm_g, loss_d, loss_g were NaN/Inf")
               and "rolled back to step 20" in m for m in messages), messages
    findings = [json.loads(x) for x in (tmp_path / "run" / "findings.jsonl").read_text().splitlines()]
    assert [f["code"] for f in findings if f["code"].startswith("divergence")] == ["divergence.nonfinite"]


def test_gives_up_after_max_recoveries(tmp_path: Path) -> None:
    def always(trainer) -> None:
        if trainer.step >= 23:
            with torch.no_grad():
                next(trainer.D.parameters()).fill_(float("nan"))

    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *BASE, "train.max_recoveries=2"])
    with pytest.raises(TrainingDiverged) as err:
        train(cfg, echo=lambda m: None, hooks={"after_step": always})
    run = tmp_path / "run"
    assert str(err.value) == (
        "training diverged: d_fake, d_real, grad_norm_d, grad_norm_g, loss_d, loss_g were NaN/Inf in 1 training record "
        "over steps 25-25; stopped after 2 recoveries (train.max_recoveries=2). Try lower learning rates (optim.g_lr/optim.d_lr), loss.kind=hinge with "
        f"model.d_norm=spectral, or penalty.gp=10; see 'ganstab doctor {run}'")
    assert len((run / "recoveries.jsonl").read_text().splitlines()) == 2


def test_recovery_off(tmp_path: Path) -> None:
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *BASE, "train.recover=false"])
    with pytest.raises(TrainingDiverged, match=r"stopped automatic recovery is off \(train.recover=false\)"):
        train(cfg, echo=lambda m: None, hooks={"after_step": _poison_once(23)})


def test_diverged_state_is_never_checkpointed(tmp_path: Path) -> None:
    # NaN injected at step 10, a checkpoint step that is not a log step (log.every=3)
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *BASE, "log.every=3"])
    result = train(cfg, echo=lambda m: None, hooks={"after_step": _poison_once(10)})
    assert result.recoveries == 1
    line = json.loads((tmp_path / "run" / "recoveries.jsonl").read_text())
    assert line["step"] == 0
    assert line["reason"] == "non-finite weights in D at step 10"


def _trained(tmp_path: Path, *extra: str):
    from ganstab.pipeline import make_trainer

    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *BASE, "train.steps=20", "log.checkpoint_every=5",
                                 "log.keep_checkpoints=1", *extra])
    trainer = make_trainer(cfg, echo=lambda m: None)
    trainer.run()
    return trainer


def test_rollback_goes_before_the_episode_to_a_kept_good_checkpoint(tmp_path: Path) -> None:
    from ganstab.training.interfaces import Divergence

    trainer = _trained(tmp_path)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pt"))
    assert names == ["ckpt_0000020.pt", "good_0000010.pt", "good_0000015.pt", "good_0000020.pt"]
    trainer.recover_or_stop(Divergence("loss_d exploded", "divergence.explosion", start_step=12))
    assert trainer.step == 10  # the rotation kept only step 20; the episode began at 12
    assert (trainer.lr_scale_g, trainer.lr_scale_d) == (0.5, 0.5)
    line = json.loads((tmp_path / "run" / "recoveries.jsonl").read_text().splitlines()[-1])
    assert {k: line[k] for k in ("recovery", "step", "failed_at", "code", "remedy", "from_checkpoint")} == {
        "recovery": 1, "step": 10, "failed_at": 20, "code": "divergence.explosion",
        "remedy": "scaled both learning rates", "from_checkpoint": "good_0000010.pt"}
    assert line["lr_g"] == pytest.approx(0.5 * line["lr_g_before"]) and line["lr_d"] == pytest.approx(2e-4)


def test_dead_training_lowers_only_d_and_never_stops_the_run(tmp_path: Path) -> None:
    from ganstab.training.interfaces import Divergence

    trainer = _trained(tmp_path, "train.max_recoveries=1")
    dead = Divergence("grad_norm_d is 0", "training.dead", start_step=16, fatal=False)
    trainer.recover_or_stop(dead)
    assert trainer.step == 15
    assert (trainer.lr_scale_g, trainer.lr_scale_d) == (1.0, 0.5)
    assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(2e-4)
    trainer.recover_or_stop(dead)  # no recovery left: not fatal, so training simply goes on
    assert trainer.recoveries == 1 and trainer.step == 15
    with pytest.raises(TrainingDiverged):
        trainer.recover_or_stop(Divergence("NaN", "divergence.nonfinite", start_step=16))


def test_the_metric_after_a_recovery_is_recorded(tmp_path: Path) -> None:
    from ganstab.training.interfaces import Divergence

    trainer = _trained(tmp_path, "data.name=grid25", "model.arch=toy", "eval.n=200")
    trainer.recover_or_stop(Divergence("NaN", "divergence.nonfinite", start_step=20))
    trainer.evaluate()
    lines = [json.loads(x) for x in (tmp_path / "run" / "recoveries.jsonl").read_text().splitlines()]
    assert lines[-1]["recovery"] == 1 and lines[-1]["metric"] == "modes" and lines[-1]["after_step"] == 15
    assert 0 <= lines[-1]["value"] <= 25
