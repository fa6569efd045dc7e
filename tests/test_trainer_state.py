"""The Trainer's checkpointed state (ganstab.training.state), value by value: the AMP scalers, ADA, the doctor's
tracker, restore's truncation of metrics and findings, resume's config check and fine-tuning's refusals.

Every test builds tiny CPU trainers without training (a fraction of a second each once the first has imported the
libraries): mutmut runs them once per mutant.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Callable, Optional

import pytest
import torch

from ganstab.errors import CheckpointError, ConfigError
from ganstab.rundir import list_good_checkpoints
from ganstab.training import checkpoint as ckpt
from ganstab.training.interfaces import Divergence
from ganstab.training.parallel import DistContext
from ganstab.training.transfer import InitWeights

DIGITS = ("data.name=digits", "model.arch=mlp")
ADA = (*DIGITS, "augment.policy=color", "augment.ada_target=0.6")
ADA_STATE = {"p": 0.25, "signal_sum": 3.0, "signal_count": 4, "images_since_update": 16, "last_signal": 0.5}


def _trainer(out: Path, *extra: str, echo: Optional[Callable[[str], None]] = None):
    """A Trainer over the toy data with tiny networks, built without training."""
    from ganstab.pipeline import load_config, make_trainer

    cfg = load_config(None, ["model.width=8", "model.depth=2", "train.batch_size=8", "train.device=cpu",
                             "train.threads=1", "log.progress=false", "eval.final=false", f"out={out}", *extra], "toy")
    return make_trainer(cfg, echo=echo or (lambda _m: None))


def _feed_doctor(trainer, steps: range) -> None:
    """Training lines for the doctor's tracker (plain finite numbers: no finding)."""
    for step in steps:
        trainer.tracker.update({"step": step, "loss_d": 1.0, "loss_g": 0.5, "grad_norm_g": 0.25})


def _write_lines(path: Path, records: list[dict]) -> list[str]:
    """Write JSON lines; returns them as written."""
    lines = [json.dumps(r) for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return lines


def _squeezed(exc: BaseException, limit: int) -> str:
    """An exception's text on one line, cut at `limit` characters with '...' (computed here, not by one_line)."""
    text = " ".join(str(exc).split())
    assert len(text) > limit + 1  # long enough that the cut shows
    return text[:limit - 3] + "..."


def test_state_round_trips_ada_the_doctor_and_enabled_scalers(tmp_path: Path) -> None:
    first = _trainer(tmp_path / "a", *ADA)
    first.ada.load_state_dict(ADA_STATE)
    _feed_doctor(first, range(1, 4))
    first.scaler_g = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    first.scaler_d = torch.amp.GradScaler("cpu", init_scale=512.0, growth_factor=4.0)
    state = first.state()
    assert state["ada"] == ADA_STATE
    assert (state["doctor"]["n_train"], len(state["doctor"]["train"])) == (3, 3)
    second = _trainer(tmp_path / "b", *ADA)
    second.scaler_g, second.scaler_d = torch.amp.GradScaler("cpu"), torch.amp.GradScaler("cpu")
    assert second.tracker.state_dict()["n_train"] == 0
    second.load_state(state)
    assert second.ada.state_dict() == ADA_STATE
    assert second.tracker.state_dict() == first.tracker.state_dict()
    assert second.scaler_g.state_dict() == {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                            "growth_interval": 7, "_growth_tracker": 0}
    assert second.scaler_d.state_dict() == {"scale": 512.0, "growth_factor": 4.0, "backoff_factor": 0.5,
                                            "growth_interval": 2000, "_growth_tracker": 0}


def test_load_state_keeps_what_the_state_does_not_hold(tmp_path: Path) -> None:
    """A state from a run without ADA, LeCam or loss scaling (resumed with them switched on) leaves them fresh;
    a state with ADA loaded by a run without it is ignored."""
    plain = _trainer(tmp_path / "a", *DIGITS)
    state = plain.state()
    assert (state["ada"], state["lecam"], state["scaler_g"], state["scaler_d"]) == (None, None, {}, {})
    richer = _trainer(tmp_path / "b", *ADA, "penalty.lecam=0.1")
    richer.ada.load_state_dict(ADA_STATE)
    richer.scaler_g = torch.amp.GradScaler("cpu", init_scale=256.0)
    richer.scaler_d = torch.amp.GradScaler("cpu", init_scale=128.0)
    richer.load_state(state)
    assert richer.ada.state_dict() == ADA_STATE
    assert richer.lecam.state_dict()["count"] == 0
    assert (richer.scaler_g.get_scale(), richer.scaler_d.get_scale()) == (256.0, 128.0)
    with_ada = richer.state()
    plain.load_state(with_ada)
    assert plain.ada is None


def test_load_state_refuses_a_state_without_ema_or_of_another_shape_in_one_message(tmp_path: Path) -> None:
    plain = _trainer(tmp_path / "a")
    with_ema = _trainer(tmp_path / "b", "train.ema=1000")
    with pytest.raises(CheckpointError) as error:
        with_ema.load_state(plain.state())
    assert str(error.value) == "the checkpoint has no EMA generator but train.ema is set"
    wide = _trainer(tmp_path / "c", "model.width=16")
    with pytest.raises(RuntimeError) as torch_error:
        plain.G.load_state_dict(wide.G.state_dict())
    with pytest.raises(CheckpointError) as error:
        plain.load_state(wide.state())
    assert str(error.value) == (f"the checkpoint does not fit this model ({_squeezed(torch_error.value, 200)}); "
                                "it was written for another architecture or data shape")


def _run_files(run: Path) -> tuple[list[str], list[str]]:
    """metrics.jsonl (log.every=2) and findings.jsonl of a run whose checkpoint is at step 5: the lines kept."""
    metrics = _write_lines(run / "metrics.jsonl", [
        {"step": 2, "loss_d": 1.0}, {"step": 4, "loss_d": 0.5}, {"step": -1, "loss_d": 0.5},
        {"step": 5, "loss_d": 0.25}, {"step": 6, "loss_d": 0.125}])
    findings = _write_lines(run / "findings.jsonl", [
        {"code": "a", "start_step": 3}, {"code": "b", "start_step": 5}, {"code": "c", "start_step": 6}])
    return metrics[:3], findings


def test_restore_truncates_metrics_and_findings_to_the_state_and_notes_damaged_lines(tmp_path: Path) -> None:
    source = _trainer(tmp_path / "a", "log.every=2")
    source.step = 5
    state = source.state()
    run = tmp_path / "b"
    notes: list[str] = []
    target = _trainer(run, "log.every=2", echo=notes.append)
    metrics, findings = _run_files(run)
    target.restore(state, drop_findings=False)
    assert (run / "metrics.jsonl").read_text().splitlines() == metrics  # step 5 (off log.every) and 6 dropped
    assert (run / "findings.jsonl").read_text().splitlines() == findings
    assert notes == [f"skipped 1 damaged line of {run / 'metrics.jsonl'} (line 3: 'step' must be a non-negative "
                     "integer, got -1); kept as they are"]
    target.restore(state, drop_findings=True)
    assert (run / "findings.jsonl").read_text().splitlines() == findings[:2]
    assert len(notes) == 2 and notes[1] == notes[0]


def test_resume_from_drops_later_findings_and_names_keys_added_since(tmp_path: Path) -> None:
    run = tmp_path / "a"
    first = _trainer(run, "log.every=2")
    first.step = 5
    path = first.save_checkpoint()
    metrics, findings = _run_files(run)
    second = _trainer(run, "log.every=2")
    assert second.resume_from(path) == []
    assert second.step == 5
    assert (run / "metrics.jsonl").read_text().splitlines() == metrics
    assert (run / "findings.jsonl").read_text().splitlines() == findings[:2]
    older = ckpt.load_checkpoint(path)  # as written by a version without penalty.zcr and model.width
    del older["config"]["penalty"]["zcr"], older["config"]["model"]["width"], older["format"]
    older_path = ckpt.save_checkpoint(run / "checkpoints", 6, older, keep=5)
    # penalty.zcr is at its default (no change); model.width=8 is not (the default is 64), a change from nothing
    with pytest.raises(CheckpointError) as error:
        second.resume_from(older_path)
    assert str(error.value) == ("the config differs from the checkpoint's (model.width: None -> 8); "
                                "pass --allow-config-change to resume anyway")
    assert second.resume_from(older_path, allow_config_change=True) == ["penalty.zcr"]
    del older["config"]
    bare_path = ckpt.save_checkpoint(run / "checkpoints", 7, older, keep=5)
    added = second.resume_from(bare_path, allow_config_change=True)  # a checkpoint without any config
    assert "penalty.zcr" in added and "model.width" not in added and second.step == 5


def _as_if_written_on_a_gpu(path: Path) -> None:
    """Rewrite a CPU checkpoint's archive so that its tensors name the storage location 'cuda:0' (what a
    checkpoint written on a GPU holds): the first pickled 'cpu', the storages' location (pickled once, then
    referenced), is replaced; the second is train.device in the config, near the end."""
    with zipfile.ZipFile(path) as source:
        entries = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"  # BINUNICODE, 4-byte length
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for name, data in entries:
            if name.endswith("/data.pkl"):
                assert data.count(cpu) == 2
                data = data.replace(cpu, cuda, 1)
            target.writestr(name, data)
    path.write_bytes(out.getvalue())


def test_resume_from_maps_a_checkpoint_written_on_a_gpu_to_the_trainer_s_device(tmp_path: Path) -> None:
    run = tmp_path / "a"
    first = _trainer(run)
    first.step = 4
    path = first.save_checkpoint()
    _as_if_written_on_a_gpu(path)
    if not torch.cuda.is_available():  # the rewritten file does name CUDA storages
        with pytest.raises(RuntimeError, match="^Attempting to deserialize object on a CUDA device"):
            torch.load(path, weights_only=True)
    assert torch.load(path, map_location="cpu", weights_only=True)["config"]["train"]["device"] == "cpu"
    second = _trainer(run)
    assert second.resume_from(path) == []
    assert second.step == 4
    assert all(t.device.type == "cpu" for t in second.G.state_dict().values())


def test_resume_and_rollback_load_the_checkpoint_on_the_cpu_whatever_the_trainer_s_device(tmp_path: Path) -> None:
    """torch refuses RNG states that are not CPU tensors, so a checkpoint is loaded on the CPU and each part moves
    its own state to its device; mapped to the trainer's device, resume and rollback failed on a GPU. meta, the one
    other device of a CPU-only machine, stands in for it (the gpu test below does it on CUDA)."""
    run = tmp_path / "a"
    first = _trainer(run)
    first.step = 2
    path = first.save_checkpoint()
    expected = torch.rand(3).tolist()  # the global generator's draws right after the checkpoint
    second = _trainer(run)  # seeds the global generators anew
    second.device = torch.device("meta")
    assert second.resume_from(path) == []
    assert (second.step, torch.rand(3).tolist()) == (2, expected)
    second.step = 6
    second.recover_or_stop(Divergence("loss_d is not finite", start_step=5))
    assert (second.step, second.recoveries, torch.rand(3).tolist()) == (2, 1, expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_trainer_resumes_and_rolls_back_to_its_own_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "a"
    first = _trainer(run, "train.device=cuda")
    torch.rand(2, generator=first.gen, device="cuda")
    first.step = 2
    path = first.save_checkpoint()
    expected = (torch.rand(3).tolist(), torch.rand(3, device="cuda").tolist())
    second = _trainer(run, "train.device=cuda")
    assert second.resume_from(path) == []
    assert torch.equal(second.gen.get_state(), first.gen.get_state())
    assert (torch.rand(3).tolist(), torch.rand(3, device="cuda").tolist()) == expected
    assert {t.device.type for t in second.G.state_dict().values()} == {"cuda"}
    second.step = 6
    second.recover_or_stop(Divergence("loss_d is not finite", start_step=5))
    assert (second.step, torch.rand(3).tolist(), torch.rand(3, device="cuda").tolist()) == (2, *expected)


@pytest.mark.parametrize("changes, listed", [
    (5, "optim.d_lr: 0.001 -> 0.002; optim.g_lr: 0.001 -> 0.002; seed: 0 -> 1; train.ema: 0.0 -> 10.0; "
        "train.n_critic: 1 -> 2"),
    (6, "model.latent_dim: 2 -> 17; optim.d_lr: 0.001 -> 0.002; optim.g_lr: 0.001 -> 0.002; seed: 0 -> 1; "
        "train.ema: 0.0 -> 10.0; +1 more"),
    (7, "model.latent_dim: 2 -> 17; optim.d_lr: 0.001 -> 0.002; optim.g_lr: 0.001 -> 0.002; "
        "penalty.r1: 0.0 -> 0.5; seed: 0 -> 1; +2 more"),
])
def test_resume_lists_five_unsafe_changes_and_counts_the_rest(tmp_path: Path, changes: int, listed: str) -> None:
    run = tmp_path / "a"
    path = _trainer(run).save_checkpoint()
    overrides = ["optim.g_lr=0.002", "optim.d_lr=0.002", "train.n_critic=2", "seed=1", "train.ema=10",
                 "model.latent_dim=17", "penalty.r1=0.5"]
    changed = _trainer(run, *overrides[:changes])
    with pytest.raises(CheckpointError) as error:
        changed.resume_from(path)
    assert str(error.value) == (f"the config differs from the checkpoint's ({listed}); "
                                "pass --allow-config-change to resume anyway")


def test_save_checkpoint_keeps_a_good_copy_only_without_an_episode_and_names_the_file_on_other_ranks(
        tmp_path: Path) -> None:
    run = tmp_path / "a"
    trainer = _trainer(run)
    trainer.step = 3
    assert trainer.save_checkpoint() == run / "checkpoints" / "ckpt_0000003.pt"
    assert list_good_checkpoints(run / "checkpoints") == [run / "checkpoints" / "good_0000003.pt"]
    trainer.tracker.update({"step": 4, "loss_d": float("nan"), "loss_g": 0.5})
    assert trainer.tracker.active_keys() != []
    trainer.step = 4
    assert trainer.save_checkpoint() == run / "checkpoints" / "ckpt_0000004.pt"
    assert list_good_checkpoints(run / "checkpoints") == [run / "checkpoints" / "good_0000003.pt"]
    trainer.dist = DistContext(rank=1, world=1)  # a rank that writes nothing but knows where rank 0 wrote
    trainer.step = 5
    assert trainer.save_checkpoint() == run / "checkpoints" / "ckpt_0000005.pt"
    assert not (run / "checkpoints" / "ckpt_0000005.pt").exists() and trainer._last_checkpoint_step == 5


def test_initialise_from_refuses_freeze_d_without_d_and_names_the_network_that_does_not_fit(
        tmp_path: Path) -> None:
    source = _trainer(tmp_path / "src", "train.ema=1000")
    with torch.no_grad():
        for param in list(source.G.parameters()) + list(source.D.parameters()):
            param.add_(0.5)
        for param in source.G_ema.parameters():
            param.add_(0.25)
    g, d, g_ema = source.G.state_dict(), source.D.state_dict(), source.G_ema.state_dict()
    frozen = _trainer(tmp_path / "dst", "train.ema=1000", "model.freeze_d=1", f"train.init_from={tmp_path / 'src'}")
    export = tmp_path / "g.safetensors"
    with pytest.raises(ConfigError) as error:
        frozen.initialise_from(InitWeights(export, g))
    assert str(error.value) == (f"model.freeze_d freezes blocks of a trained D, but {str(export)!r} holds a generator "
                                "only; give train.init_from a run folder with a checkpoint or remove model.freeze_d")
    assert frozen.initialise_from(InitWeights(tmp_path / "src", g, d, g_ema)) == "G, D, G's EMA"
    for net, theirs in ((frozen.G, g), (frozen.D, d), (frozen.G_ema, g_ema)):
        mine = net.state_dict()
        assert all(torch.equal(mine[key], theirs[key]) for key in theirs)
    wide = _trainer(tmp_path / "wide", "model.width=16", "train.ema=1000")
    wide_g, wide_d = wide.G.state_dict(), wide.D.state_dict()
    for name, weights, net, bad in (("discriminator", InitWeights(tmp_path / "src", g, wide_d), frozen.D, wide_d),
                                    ("EMA generator", InitWeights(tmp_path / "src", g, d, wide_g), frozen.G_ema,
                                     wide_g)):
        with pytest.raises(RuntimeError) as torch_error:
            net.load_state_dict(bad)
        with pytest.raises(CheckpointError) as error:
            frozen.initialise_from(weights)
        assert str(error.value) == (f"train.init_from: the {name} in {str(tmp_path / 'src')!r} does not fit this "
                                    f"model ({_squeezed(torch_error.value, 160)}); use the model.* settings, data "
                                    "shape and classes of the run it comes from")
