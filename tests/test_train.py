"""The training loop end to end on tiny runs: outputs, metrics, n_critic, TTUR, clipping, frozen D, EMA, CLI."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch.testing import assert_close

import ganstab.training.outputs as loop
from ganstab.cli import main
from ganstab.config import read_yaml, to_dict
from ganstab.pipeline import load_config
from ganstab.errors import CheckpointError
from ganstab.pipeline import make_trainer, train
from ganstab.training.ema import ema_beta

REQUIRED_KEYS = {"step", "d_steps", "images_seen", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d",
                 "grad_norm_g", "lr_g", "lr_d", "time"}
QUIET = dict(echo=lambda message: None)


def toy_cfg(out: Path, *overrides: str):
    """The toy preset on grid25, shrunk: 30 steps of batch 64, a log line every 5 steps."""
    base = ["train.steps=30", "train.batch_size=64", "log.every=5", "log.progress=false", "model.width=32",
            f"out={out}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_config(None, base + list(overrides), preset="toy")


def all_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines() if line.strip()]


def metrics(out: Path) -> list[dict]:
    """Training lines only (evaluation lines carry eval_* keys)."""
    return [rec for rec in all_lines(out) if not any(k.startswith("eval_") for k in rec)]


def test_final_evaluation_line_for_grid25(tmp_path):
    out = tmp_path / "run"
    train(toy_cfg(out), **QUIET)
    evals = [rec for rec in all_lines(out) if "eval_modes" in rec]
    assert [(r["step"], r["eval_split"], r["final"]) for r in evals] == [(30, "validation", True), (30, "test", True)]
    assert evals[0]["step"] == 30 and evals[0]["images_seen"] == 30 * 64
    assert set(evals[0]) >= {"eval_modes", "eval_hq_fraction", "eval_reverse_kl", "eval_diversity"}
    assert 0 <= evals[0]["eval_modes"] <= 25 and 0.0 <= evals[0]["eval_hq_fraction"] <= 1.0
    best = json.loads((out / "best" / "eval.json").read_text())
    assert best["step"] == 30 and best["modes"] == evals[0]["eval_modes"]
    assert (out / "best" / "generator.safetensors").is_file()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """One short toy run shared by the output checks and the sample command."""
    out = tmp_path_factory.mktemp("toy") / "run"
    cfg = toy_cfg(out)
    result = train(cfg, **QUIET)
    return cfg, result, out


# ---------------------------------------------------------------- outputs

def test_short_run_result(toy_run):
    cfg, result, out = toy_run
    assert (result.steps, result.d_steps, result.images_seen) == (30, 30, 30 * 64)
    assert result.interrupted is False and result.recoveries == 0
    assert Path(result.out) == out
    assert result.last_record["step"] == 30


def test_short_run_writes_config(toy_run):
    cfg, _, out = toy_run
    assert read_yaml(out / "config.yaml") == to_dict(cfg)
    assert read_yaml(out / "config.yaml")["model"]["arch"] == "toy"


def test_short_run_metrics_lines(toy_run):
    _, _, out = toy_run
    lines = metrics(out)
    assert [line["step"] for line in lines] == [5, 10, 15, 20, 25, 30]
    for line in lines:
        missing = REQUIRED_KEYS - set(line)
        assert not missing, f"step {line['step']} lacks {sorted(missing)}"
        assert "gp" not in line and "r1" not in line and "drift" not in line
        assert line["d_steps"] == line["step"]
        assert line["images_seen"] == line["d_steps"] * 64
        assert (line["lr_g"], line["lr_d"]) == (1e-3, 1e-3)
        for key in REQUIRED_KEYS:
            assert isinstance(line[key], (int, float)) and math.isfinite(line[key]), key
        assert 0.0 <= line["d_acc"] <= 1.0
    times = [line["time"] for line in lines]
    assert times == sorted(times)


def test_short_run_samples_checkpoint_and_export(toy_run):
    _, _, out = toy_run
    samples = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert samples[-1] == "step_0000030.png"
    with Image.open(out / "samples" / "step_0000030.png") as img:
        assert img.size[0] > 0
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("ckpt_*.pt"))
    assert ckpts == ["ckpt_0000000.pt", "ckpt_0000030.pt"]
    assert (out / "checkpoints" / "ckpt_0000030.pt.sha256").is_file()
    meta = json.loads((out / "generator.json").read_text())
    assert meta["format"] == "ganstab-generator-1"
    assert meta["data"] == {"name": "grid25", "shape": [2], "kind": "points"}
    assert meta["model"]["arch"] == "toy" and meta["model"]["width"] == 32
    assert (meta["ema"], meta["step"], meta["images_seen"]) == (False, 30, 1920)
    weights = load_file(str(out / "generator.safetensors"))
    assert weights["net.0.weight"].shape == (32, 2)
    assert weights["net.6.weight"].shape == (2, 32)


def test_penalty_values_are_logged_when_active(tmp_path):
    out = tmp_path / "gp"
    train(toy_cfg(out, "loss.kind=wasserstein", "penalty.gp=10", "penalty.r1=1", "penalty.drift=0.001",
                  "train.steps=10"), **QUIET)
    lines = metrics(out)
    assert [line["step"] for line in lines] == [5, 10]
    for line in lines:
        assert REQUIRED_KEYS | {"gp", "r1", "drift"} <= set(line)
        assert line["gp"] >= 0 and line["r1"] >= 0 and line["drift"] >= 0


# ---------------------------------------------------------------- n_critic

def test_n_critic_five(tmp_path):
    out = tmp_path / "critic"
    cfg = toy_cfg(out, "train.n_critic=5")
    trainer = make_trainer(cfg, **QUIET)
    result = trainer.run()
    assert (result.steps, result.d_steps, result.images_seen) == (30, 150, 150 * 64)
    assert trainer.batch_index == 150  # a fresh real batch for every D step
    lines = metrics(out)
    assert len(lines) == 6
    for line in lines:
        assert line["d_steps"] == 5 * line["step"]
        assert line["images_seen"] == line["d_steps"] * 64


# ---------------------------------------------------------------- optimisers

def test_separate_learning_rates_and_betas(tmp_path):
    cfg = toy_cfg(tmp_path / "ttur", "optim.g_lr=1e-4", "optim.d_lr=4e-4", "optim.g_betas=[0.5, 0.999]",
                  "optim.d_betas=[0.0, 0.9]")
    trainer = make_trainer(cfg, **QUIET)
    assert isinstance(trainer.opt_g, torch.optim.Adam) and isinstance(trainer.opt_d, torch.optim.Adam)
    assert trainer.opt_g.param_groups[0]["lr"] == 1e-4
    assert trainer.opt_d.param_groups[0]["lr"] == 4e-4
    assert trainer.opt_g.param_groups[0]["betas"] == (0.5, 0.999)
    assert trainer.opt_d.param_groups[0]["betas"] == (0.0, 0.9)
    g_params = {id(p) for group in trainer.opt_g.param_groups for p in group["params"]}
    d_params = {id(p) for group in trainer.opt_d.param_groups for p in group["params"]}
    assert g_params == {id(p) for p in trainer.G.parameters()}
    assert d_params == {id(p) for p in trainer.D.parameters()}
    trainer.cfg.train.steps = 5
    trainer.run()
    line = metrics(tmp_path / "ttur")[-1]
    assert (line["lr_g"], line["lr_d"]) == (1e-4, 4e-4)


def test_rmsprop_optimiser(tmp_path):
    cfg = toy_cfg(tmp_path / "rms", "optim.name=rmsprop", "optim.g_lr=5e-5", "optim.d_lr=6e-5")
    trainer = make_trainer(cfg, **QUIET)
    assert isinstance(trainer.opt_g, torch.optim.RMSprop) and isinstance(trainer.opt_d, torch.optim.RMSprop)
    assert (trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]) == (5e-5, 6e-5)


# ---------------------------------------------------------------- weight clipping

def test_weight_clipping_bounds_d_after_training(tmp_path):
    cfg = toy_cfg(tmp_path / "clip", "loss.kind=wasserstein", "penalty.clip=0.01", "train.n_critic=5",
                  "train.steps=10")
    trainer = make_trainer(cfg, **QUIET)
    trainer.run()
    params = torch.cat([p.detach().flatten() for p in trainer.D.parameters()])
    assert params.abs().max().item() == pytest.approx(0.01)
    assert params.abs().max() <= 0.01
    # the bound is active: many weights sit on it
    assert (params.abs() == torch.tensor(0.01)).sum() > 10


def test_weight_clipping_right_after_each_d_step(tmp_path):
    cfg = toy_cfg(tmp_path / "clip1", "loss.kind=wasserstein", "penalty.clip=0.01")
    trainer = make_trainer(cfg, **QUIET)
    for _ in range(3):
        trainer.d_step()
        assert max(p.detach().abs().max().item() for p in trainer.D.parameters()) <= 0.01


# ---------------------------------------------------------------- frozen D in the G step

def test_g_step_leaves_d_untouched(tmp_path):
    trainer = make_trainer(toy_cfg(tmp_path / "frozen"), **QUIET)
    trainer.d_step()
    d_weights = {n: p.detach().clone() for n, p in trainer.D.named_parameters()}
    d_grads = {n: p.grad.clone() for n, p in trainer.D.named_parameters()}
    g_weights = {n: p.detach().clone() for n, p in trainer.G.named_parameters()}
    seen_requires_grad = []
    handle = trainer.D.register_forward_pre_hook(
        lambda module, args: seen_requires_grad.append([p.requires_grad for p in module.parameters()])
    )
    try:
        trainer.g_step()
    finally:
        handle.remove()
    # during the G step D's parameters were frozen ...
    assert len(seen_requires_grad) == 1 and not any(seen_requires_grad[0])
    # ... and afterwards they are trainable again, with weights and gradients unchanged
    for name, param in trainer.D.named_parameters():
        assert param.requires_grad, name
        assert torch.equal(param.detach(), d_weights[name]), name
        assert torch.equal(param.grad, d_grads[name]), f"G step changed D's gradient of {name}"
    # while G did move
    assert any(not torch.equal(p.detach(), g_weights[n]) for n, p in trainer.G.named_parameters())


def test_d_step_gives_g_no_gradient(tmp_path):
    trainer = make_trainer(toy_cfg(tmp_path / "nograd"), **QUIET)
    g_weights = {n: p.detach().clone() for n, p in trainer.G.named_parameters()}
    trainer.d_step()
    for name, param in trainer.G.named_parameters():
        assert param.grad is None, name
        assert torch.equal(param.detach(), g_weights[name])


# ---------------------------------------------------------------- EMA

def test_ema_update_by_hand(tmp_path):
    cfg = toy_cfg(tmp_path / "ema1", "train.ema=1000")
    trainer = make_trainer(cfg, **QUIET)
    assert trainer.G_ema is not None and trainer.sampler_net() is trainer.G_ema
    assert not trainer.G_ema.training
    assert not any(p.requires_grad for p in trainer.G_ema.parameters())
    before = [p.detach().clone() for p in trainer.G.parameters()]
    for p, q in zip(trainer.G_ema.parameters(), before):
        assert torch.equal(p, q)
    trainer.train_step()
    beta = ema_beta(64, 1000.0)
    assert beta == pytest.approx(0.5 ** (64 / 1000))
    for ema_p, old, new in zip(trainer.G_ema.parameters(), before, trainer.G.parameters()):
        assert_close(ema_p, beta * old + (1 - beta) * new.detach())


def test_ema_copy_differs_and_is_used_for_samples_and_export(tmp_path, monkeypatch):
    used = []
    real_generate = loop.generate

    def spy(net, z, **kwargs):
        used.append(net)
        return real_generate(net, z, **kwargs)

    monkeypatch.setattr(loop, "generate", spy)
    out = tmp_path / "ema"
    cfg = toy_cfg(out, "train.ema=1000", "log.sample_every=10")
    trainer = make_trainer(cfg, **QUIET)
    trainer.run()
    assert len(used) >= 3  # steps 10, 20, 30 (and the final samples)
    assert all(net is trainer.G_ema for net in used)
    diffs = [not torch.equal(a, b) for a, b in zip(trainer.G_ema.parameters(), trainer.G.parameters())]
    assert all(diffs)
    exported = load_file(str(out / "generator.safetensors"))
    for name, value in trainer.G_ema.state_dict().items():
        assert torch.equal(exported[name], value), name
    assert not torch.equal(exported["net.0.weight"], trainer.G.state_dict()["net.0.weight"])
    assert json.loads((out / "generator.json").read_text())["ema"] is True
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [
        "step_0000010.png", "step_0000020.png", "step_0000030.png"]


def test_no_ema_samples_from_g(tmp_path):
    trainer = make_trainer(toy_cfg(tmp_path / "noema"), **QUIET)
    assert trainer.G_ema is None and trainer.sampler_net() is trainer.G


# ---------------------------------------------------------------- output folder

def test_output_folder_holding_a_run_is_refused(tmp_path):
    out = tmp_path / "taken"
    train(toy_cfg(out, "train.steps=5"), **QUIET)
    with pytest.raises(CheckpointError) as info:
        train(toy_cfg(out, "train.steps=5"), **QUIET)
    assert str(info.value) == (
        f"output directory {str(out)!r} already holds a run; pass --overwrite to replace it, "
        f"--resume {out} to continue it, or choose another out=DIR"
    )
    result = train(toy_cfg(out, "train.steps=10"), overwrite=True, **QUIET)
    assert result.steps == 10
    assert [line["step"] for line in metrics(out)] == [5, 10]  # the old run's lines are gone
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == [
        "ckpt_0000000.pt", "ckpt_0000010.pt", "good_0000000.pt", "good_0000010.pt"]  # known good, kept apart


def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(CheckpointError) as info:
        train(toy_cfg(target), **QUIET)
    assert str(info.value) == f"output path {str(target)!r} is a file; choose another out=DIR"


def test_cli_refuses_taken_folder(toy_run, capsys):
    _, _, out = toy_run
    assert main(["train", "--preset", "toy", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert err == (f"ganstab: error: output directory {str(out)!r} already holds a run; pass --overwrite to "
                   f"replace it, --resume {out} to continue it, or choose another out=DIR\n")


# ---------------------------------------------------------------- ganstab sample

def test_sample_npy_points(toy_run, tmp_path, capsys):
    _, _, out = toy_run
    target = tmp_path / "s.npy"
    assert main(["sample", "--run", str(out), "--n", "37", "--out", str(target), "--format", "npy"]) == 0
    assert capsys.readouterr().out == f"wrote 37 samples to {target}\n"
    arr = np.load(target)
    assert arr.shape == (37, 2) and arr.dtype == np.float32
    assert np.isfinite(arr).all()
    # the same seed gives the same samples, another seed others
    again = tmp_path / "again.npy"
    main(["sample", "--run", str(out), "--n", "37", "--out", str(again), "--format", "npy"])
    np.testing.assert_array_equal(np.load(again), arr)
    other = tmp_path / "other.npy"
    main(["sample", "--run", str(out), "--n", "37", "--out", str(other), "--format", "npy", "--seed", "1"])
    assert not np.array_equal(np.load(other), arr)


def test_sample_grid_points(toy_run, tmp_path, capsys):
    _, _, out = toy_run
    target = tmp_path / "scatter.png"
    assert main(["sample", "--run", str(out), "--n", "50", "--out", str(target)]) == 0
    assert capsys.readouterr().out == f"wrote 50 samples to {target}\n"
    with Image.open(target) as img:
        assert img.format == "PNG"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A two-step DCGAN run on digits, for the image sample formats."""
    out = tmp_path_factory.mktemp("img") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_config(None, ["train.steps=2", "model.width=8", "model.latent_dim=8", "train.batch_size=16",
                                 "log.progress=false", "log.n_samples=4", f"out={out}"])
    train(cfg, **QUIET)
    return out


def test_sample_grid_and_folder_images(image_run, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    assert main(["sample", "--run", str(image_run), "--n", "9", "--out", str(grid), "--format", "grid"]) == 0
    with Image.open(grid) as img:
        assert img.mode == "L" and img.size[0] == img.size[1]
    folder = tmp_path / "folder"
    assert main(["sample", "--run", str(image_run), "--n", "5", "--out", str(folder), "--format", "folder"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 5 samples to {folder}"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:06d}.png" for i in range(5)]
    with Image.open(folder / "000000.png") as img:
        assert img.size == (8, 8) and img.mode == "L"
    npy = tmp_path / "img.npy"
    assert main(["sample", "--run", str(image_run), "--n", "3", "--out", str(npy), "--format", "npy"]) == 0
    arr = np.load(npy)
    assert arr.shape == (3, 1, 8, 8) and arr.min() >= -1 and arr.max() <= 1


def test_sample_folder_of_points_is_a_one_line_error(toy_run, tmp_path, capsys):
    _, _, out = toy_run
    code = main(["sample", "--run", str(out), "--n", "4", "--out", str(tmp_path / "f"), "--format", "folder"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("ganstab: error: ") and err.count("\n") == 1


# ---------------------------------------------------------------- CLI errors

def one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    assert captured.out == ""
    return captured.err


def test_cli_unknown_key(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert one_line_error(capsys, ["train", "loss.kidn=hinge"]) == (
        "ganstab: error: unknown config key 'loss.kidn' (did you mean 'loss.kind'?); "
        "run 'ganstab keys' to list the keys\n"
    )
    assert not (tmp_path / "runs").exists()


def test_cli_bad_flag(capsys):
    assert one_line_error(capsys, ["train", "--bogus"]) == (
        "ganstab: error: unrecognized arguments: --bogus; see 'ganstab --help'\n"
    )
    err = one_line_error(capsys, ["sample", "--run", "x", "--out", "y", "--format", "tiff"])
    assert err == "ganstab: error: --format must be grid, folder or npy, got 'tiff'\n"
    assert one_line_error(capsys, ["sample", "--out", "y"]) == (
        "ganstab: error: the following arguments are required: --run; see 'ganstab sample --help'\n"
    )


def test_cli_missing_resume_dir(capsys, tmp_path):
    missing = tmp_path / "nope"
    assert one_line_error(capsys, ["train", "--resume", str(missing)]) == (
        f"ganstab: error: --resume {missing}: not a ganstab run directory (no config.yaml)\n"
    )


def test_cli_sample_without_export(capsys, tmp_path):
    assert one_line_error(capsys, ["sample", "--run", str(tmp_path), "--out", str(tmp_path / "x.png")]) == (
        f"ganstab: error: {str(tmp_path)!r} has no exported generator (generator.json + generator.safetensors); "
        "train it to the end or resume it first\n"
    )
    assert one_line_error(capsys, ["sample", "--run", str(tmp_path), "--out", "x.png", "--n", "0"]) == (
        "ganstab: error: --n must be positive, got 0\n"
    )


def test_cli_bad_config_value(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert one_line_error(capsys, ["train", "--preset", "toy", "optim.g_lr=0"]) == (
        "ganstab: error: config key 'optim.g_lr': Input should be greater than 0, got 0\n"
    )


def test_cli_train_prints_summary(capsys, tmp_path):
    out = tmp_path / "cli"
    code = main(["train", "--preset", "toy", "train.steps=4", "train.batch_size=32", "model.width=16",
                 "log.progress=false", f"out={out}"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"trained 4 G steps (4 D steps, 128 real images) in {out}" in lines
    assert f"samples: {out / 'samples' / 'step_0000004.png'}" in lines
    assert (out / "generator.safetensors").is_file()


# ---------------------------------------------------------------- slow: real trainings

def check_outputs(out: Path, steps: int, every: int) -> list[dict]:
    assert (out / "config.yaml").is_file()
    lines = metrics(out)
    assert [line["step"] for line in lines] == list(range(every, steps + 1, every))
    for line in lines:
        assert REQUIRED_KEYS <= set(line)
        assert "nonfinite" not in line
        for key in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"):
            assert math.isfinite(line[key]), (line["step"], key)
    assert (out / "samples" / f"step_{steps:07d}.png").is_file()
    assert (out / "checkpoints" / f"ckpt_{steps:07d}.pt").is_file()
    assert (out / "checkpoints" / f"ckpt_{steps:07d}.pt.sha256").is_file()
    assert (out / "generator.safetensors").is_file()
    meta = json.loads((out / "generator.json").read_text())
    assert meta["step"] == steps
    return lines


@pytest.mark.slow
def test_slow_toy_preset_on_grid25(tmp_path):
    out = tmp_path / "grid25"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_config(None, ["train.steps=400", "log.progress=false", f"out={out}"], preset="toy")
    result = train(cfg, **QUIET)
    assert (result.steps, result.d_steps, result.images_seen) == (400, 400, 400 * 256)
    lines = check_outputs(out, 400, 50)
    assert lines[-1]["images_seen"] == 400 * 256
    # the generator spreads its samples over the plane of the grid (no collapse to a point)
    target = tmp_path / "s.npy"
    assert main(["sample", "--run", str(out), "--n", "2500", "--out", str(target), "--format", "npy"]) == 0
    points = np.load(target)
    assert points.shape == (2500, 2) and np.isfinite(points).all()
    assert points.std(axis=0).min() > 0.5


@pytest.mark.slow
def test_slow_default_config_on_digits(tmp_path):
    out = tmp_path / "digits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults warn about nothing
        cfg = load_config(None, ["train.steps=300", "log.progress=false", f"out={out}"])
    assert (cfg.data.name, cfg.model.arch, cfg.loss.kind) == ("digits", "mlp", "hinge")
    result = train(cfg, **QUIET)
    assert (result.steps, result.d_steps, result.images_seen) == (300, 300, 300 * 64)
    lines = check_outputs(out, 300, 50)
    assert all(math.isfinite(line["loss_d"]) and math.isfinite(line["loss_g"]) for line in lines)
    assert json.loads((out / "generator.json").read_text())["ema"] is True
    grid = tmp_path / "grid.png"
    assert main(["sample", "--run", str(out), "--n", "16", "--out", str(grid)]) == 0
    with Image.open(grid) as img:
        assert img.mode == "L"
