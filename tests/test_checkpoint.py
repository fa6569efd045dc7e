"""Checkpoint safety: checksums, fallback to the previous checkpoint, refusing pickled code, disk full."""

from __future__ import annotations

import errno
import io
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ganstab.cli import main
from ganstab.errors import CheckpointError
from ganstab.training import checkpoint as ckpt

FAST = ["eval.final=false", "model.arch=dcgan", "log.progress=false", "train.batch_size=8", "model.width=8", "log.every=2", "log.checkpoint_every=2",
        "log.sample_every=1000"]


class _Exploit:
    """Pickles into a call of os.system: loading it with plain pickle would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "ckpt_0000001.pt"
    torch.save({"format": ckpt.FORMAT, "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        ckpt.load_checkpoint(path)
    assert str(err.value) == (f"checkpoint {str(path)!r} needs to unpickle code, which ganstab refuses for safety; "
                              "only load checkpoints written by ganstab")
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError) as err:
        ckpt.load_checkpoint(path)
    assert str(err.value) == f"{str(path)!r} is not a ganstab checkpoint (no 'ganstab-checkpoint-1' marker)"


def test_checksum_and_fallback(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        ckpt.save_checkpoint(folder, step, {"step": step, "w": torch.full((3,), float(step))}, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(folder)] == ["ckpt_0000002.pt", "ckpt_0000003.pt"]
    newest = folder / "ckpt_0000003.pt"
    newest.write_bytes(newest.read_bytes()[:-10])  # truncated
    warnings: list[str] = []
    found = ckpt.newest_valid_checkpoint(folder, warn=warnings.append)
    assert found == folder / "ckpt_0000002.pt"
    assert warnings == ["skipping checkpoint ckpt_0000003.pt: its checksum does not match (truncated or corrupt); "
                        "using the previous one"]
    torch.testing.assert_close(ckpt.load_checkpoint(found)["w"], torch.full((3,), 2.0))
    (folder / "ckpt_0000002.pt.sha256").unlink()
    assert ckpt.newest_valid_checkpoint(folder, warn=warnings.append) is None
    assert warnings[-1] == ("skipping checkpoint ckpt_0000002.pt: its checksum file is missing (the write did not "
                            "finish); using the previous one")


def test_disk_full_keeps_previous_checkpoint(tmp_path: Path, monkeypatch, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", f"out={run}", "train.steps=4", *FAST]) == 0
    before = ckpt.newest_valid_checkpoint(run / "checkpoints")
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.os, "fsync", full)
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "train.steps=8", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [f"ganstab: error: disk full while writing '{run}/metrics.jsonl'; free space, then resume with "
                   f"--resume {run} (its last checkpoint, {before.name}, is intact)"]
    monkeypatch.setattr(ckpt.os, "fsync", real_fsync)
    assert ckpt.newest_valid_checkpoint(run / "checkpoints") == before
    assert not list((run / "checkpoints").glob(".*tmp*"))
    assert main(["train", "--resume", str(run), "train.steps=8", *FAST]) == 0


def test_checkpoint_from_another_architecture(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", f"out={run}", "train.steps=2", *FAST]) == 0
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--allow-config-change", *FAST, "model.width=16", "train.steps=4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith("ganstab: error: the checkpoint does not fit this model (")
    assert err[0].endswith("); it was written for another architecture or data shape")


def test_resume_with_changed_config_lists_the_diff(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", f"out={run}", "train.steps=2", *FAST]) == 0
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "optim.g_lr=0.001", "train.n_critic=2", *FAST])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "ganstab: error: the config differs from the checkpoint's (optim.g_lr: 0.0001 -> 0.001; "
        "train.n_critic: 1 -> 2); pass --allow-config-change to resume anyway")


def test_existing_run_is_not_touched_by_refused_overwrite(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", f"out={run}", "train.steps=2", *FAST]) == 0
    before = sorted(p.name for p in run.rglob("*"))
    assert main(["train", f"out={run}", "train.steps=2", *FAST]) == 2
    assert main(["train", f"out={run}", "--overwrite", "data.name=mnist", *FAST]) == 2  # bad data: nothing removed
    assert sorted(p.name for p in run.rglob("*")) == before


def _draws() -> tuple:
    """One draw from each global generator, including the cached second normal of numpy and of python."""
    return (torch.rand(3).tolist(), np.random.rand(2).tolist(), np.random.randn(), random.random(),
            random.gauss(0.0, 1.0))


def test_rng_state_round_trips_every_global_generator_through_a_weights_only_load() -> None:
    ckpt.seed_everything(11)
    np.random.randn()  # leaves a cached normal in numpy (has_gauss = 1)
    random.gauss(0.0, 1.0)  # and in python (gauss_next)
    buffer = io.BytesIO()
    torch.save(ckpt.rng_state(), buffer)
    expected = _draws()
    ckpt.seed_everything(99)
    _draws()
    buffer.seek(0)
    ckpt.set_rng_state(torch.load(buffer, weights_only=True))
    assert _draws() == expected


def test_seed_everything_seeds_torch_numpy_and_python() -> None:
    ckpt.seed_everything(5)
    assert torch.rand(2).tolist() == torch.rand(2, generator=torch.Generator().manual_seed(5)).tolist()
    assert np.random.rand(2).tolist() == np.random.RandomState(5).rand(2).tolist()
    assert random.random() == random.Random(5).random()


def test_save_checkpoint_makes_its_folder_clears_other_processes_temp_files_and_prunes_checksums(
        tmp_path: Path) -> None:
    folder = tmp_path / "run" / "checkpoints"
    ckpt.save_checkpoint(folder, 1, {"step": 1}, keep=1)
    others, own = folder / ".ckpt_0000002.pt.tmp-99999999", folder / f".ckpt_0000009.pt.tmp-{os.getpid()}"
    others.write_bytes(b"half"), own.write_bytes(b"mine")
    ckpt.save_checkpoint(folder, 2, {"step": 2}, keep=1)
    assert sorted(p.name for p in folder.iterdir()) == [own.name, "ckpt_0000002.pt", "ckpt_0000002.pt.sha256"]


def _tiny_trainer(out: Path, *extra: str):
    """A Trainer over the toy data with tiny networks, built without training."""
    from ganstab.pipeline import load_config, make_trainer

    cfg = load_config(None, ["model.width=8", "model.depth=2", "train.batch_size=8", "train.device=cpu",
                             "train.threads=1", "log.progress=false", "eval.final=false", f"out={out}", *extra], "toy")
    return make_trainer(cfg, echo=lambda _m: None)


def test_trainer_state_round_trip_restores_every_counter_scale_generator_and_weight(tmp_path: Path) -> None:
    first = _tiny_trainer(tmp_path / "a")
    values = {"step": 7, "d_steps": 9, "batch_index": 11, "images_seen": 96, "elapsed": 3.5, "recoveries": 2,
              "lr_scale_g": 0.5, "lr_scale_d": 0.25, "best_eval": {"step": 6, "fd": 1.25}, "eval_seconds": 1.5,
              "eval_cost": 0.75, "quick_seconds": 0.5, "quick_cost": 0.125}
    for name, value in values.items():
        setattr(first, name, value)
    first.apply_lr_scale()  # the optimisers' lrs, saved in their state, become the configured ones times the scales
    torch.rand(5, generator=first.gen), torch.rand(3, generator=first.aug_gen)
    with torch.no_grad():
        for param in list(first.G.parameters()) + list(first.D.parameters()):
            param.add_(0.5)
    state = first.state()
    assert {k: state[k] for k in values} == values
    second = _tiny_trainer(tmp_path / "b")
    second.load_state(state)
    assert {k: getattr(second, k) for k in values} == values
    assert torch.equal(second.gen.get_state(), first.gen.get_state())
    assert torch.equal(second.aug_gen.get_state(), first.aug_gen.get_state())
    for net in ("G", "D"):
        mine, theirs = getattr(second, net).state_dict(), getattr(first, net).state_dict()
        assert all(torch.equal(mine[key], theirs[key]) for key in theirs), net
    lr_g, lr_d = first.cfg.optim.g_lr, first.cfg.optim.d_lr
    assert second.opt_g.param_groups[0]["lr"] == pytest.approx(lr_g * 0.5, rel=1e-12)
    assert second.opt_d.param_groups[0]["lr"] == pytest.approx(lr_d * 0.25, rel=1e-12)


def test_trainer_state_carries_ema_lecam_recorder_and_legacy_defaults(tmp_path: Path) -> None:
    first = _tiny_trainer(tmp_path / "a", "penalty.lecam=0.1", "train.ema=1000")
    with torch.no_grad():
        for param in first.G_ema.parameters():
            param.add_(0.25)
    first.lecam.load_state_dict({"biased": torch.tensor([0.5, -0.25]), "count": 3})
    first.recorder.load_state_dict({"sums": {"loss_d": 1.5}, "counts": {"loss_d": 2}})
    state = first.state()
    assert sorted(state) == sorted([
        "step", "d_steps", "batch_index", "images_seen", "elapsed", "recoveries", "lr_scale_g", "lr_scale_d", "g",
        "d", "g_ema", "opt_g", "opt_d", "gen", "aug_gen", "rng", "ada", "lecam", "recorder", "doctor", "scaler_g",
        "scaler_d", "best_eval", "eval_seconds", "eval_cost", "quick_seconds", "quick_cost", "config"])
    assert state["ada"] is None and state["config"]["penalty"]["lecam"] == 0.1
    second = _tiny_trainer(tmp_path / "b", "penalty.lecam=0.1", "train.ema=1000")
    second.load_state(state)
    ema, theirs = second.G_ema.state_dict(), first.G_ema.state_dict()
    assert all(torch.equal(ema[key], theirs[key]) for key in theirs)
    assert second.lecam.state_dict()["count"] == 3
    assert torch.equal(second.lecam.state_dict()["biased"], torch.tensor([0.5, -0.25]))
    assert second.recorder.state_dict() == {"sums": {"loss_d": 1.5}, "counts": {"loss_d": 2}}
    # a checkpoint of the first round: one lr scale for both networks, no recoveries, timings or recorder sums
    legacy = {k: v for k, v in first.state().items() if k not in (
        "recoveries", "lr_scale_g", "lr_scale_d", "eval_seconds", "eval_cost", "quick_seconds", "quick_cost",
        "recorder")}
    legacy["lr_scale"] = 0.5
    third = _tiny_trainer(tmp_path / "c", "penalty.lecam=0.1", "train.ema=1000")
    third.recoveries, third.eval_seconds, third.quick_seconds = 4, 9.0, 9.0
    third.load_state(legacy)
    assert (third.recoveries, third.lr_scale_g, third.lr_scale_d) == (0, 0.5, 0.5)
    assert (third.eval_seconds, third.eval_cost, third.quick_seconds, third.quick_cost) == (0.0, None, 0.0, None)
    assert third.recorder.state_dict() == {"sums": {}, "counts": {}}
    del legacy["lr_scale"]
    third.load_state(legacy)
    assert (third.lr_scale_g, third.lr_scale_d) == (1.0, 1.0)


def test_trainer_checkpoint_resume_and_its_refusal_of_a_changed_config(tmp_path: Path) -> None:
    first = _tiny_trainer(tmp_path / "a")
    first.step, first.images_seen = 6, 48
    path = first.save_checkpoint()
    assert path == tmp_path / "a" / "checkpoints" / "ckpt_0000006.pt"
    assert first._last_checkpoint_step == 6
    second = _tiny_trainer(tmp_path / "a")
    second.resume_from(path)
    assert (second.step, second.images_seen) == (6, 48)
    changed = _tiny_trainer(tmp_path / "a", "optim.g_lr=0.003")
    with pytest.raises(CheckpointError) as error:
        changed.resume_from(path)
    assert str(error.value) == ("the config differs from the checkpoint's (optim.g_lr: 0.001 -> 0.003); "
                                "pass --allow-config-change to resume anyway")
    changed.resume_from(path, allow_config_change=True)
    assert changed.step == 6


def test_initialise_from_loads_what_the_source_holds_and_names_what_does_not_fit(tmp_path: Path) -> None:
    from ganstab.training.transfer import InitWeights

    source = _tiny_trainer(tmp_path / "src", "train.ema=1000")
    with torch.no_grad():
        for param in list(source.G.parameters()) + list(source.D.parameters()):
            param.add_(0.5)
    g, d = source.G.state_dict(), source.D.state_dict()
    target = _tiny_trainer(tmp_path / "dst", "train.ema=1000")
    assert target.initialise_from(InitWeights(tmp_path / "src", g, d, None)) == "G, D, G's EMA (a copy of G)"
    for net, theirs in ((target.G, g), (target.D, d), (target.G_ema, g)):
        mine = net.state_dict()
        assert all(torch.equal(mine[key], theirs[key]) for key in theirs)
    assert target.initialise_from(InitWeights(tmp_path / "src", g, None, g)) == "G, G's EMA"
    plain = _tiny_trainer(tmp_path / "plain", "train.ema=0")
    assert plain.initialise_from(InitWeights(tmp_path / "src", g)) == "G"
    wide = _tiny_trainer(tmp_path / "wide", "train.ema=0", "model.width=16")
    with pytest.raises(CheckpointError) as error:
        wide.initialise_from(InitWeights(tmp_path / "src", g))
    message = str(error.value)
    assert message.startswith(f"train.init_from: the generator in {str(tmp_path / 'src')!r} does not fit this model (")
    assert message.endswith("); use the model.* settings, data shape and classes of the run it comes from")
