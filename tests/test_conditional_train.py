"""Class-conditional training through the pipeline: labels reach G and D, GP sees each sample's own label,
sampling by class works, and bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ganstab.training.parallel as parallel
from ganstab.cli import main
from ganstab.errors import DataError
from ganstab.export import load_generator, write_samples
from ganstab.pipeline import load_config, make_trainer, train

QUIET = dict(echo=lambda message: None)
BASE = ["log.progress=false", "log.every=10", "log.sample_every=1000", "log.checkpoint_every=1000",
        "train.device=cpu", "model.conditional=true"]


def _two_sides(path: Path, n: int = 2048) -> Path:
    """Two Gaussians at (-2, 0) and (+2, 0), labelled 0 and 1 by side."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    x = np.stack([np.where(y == 0, -2.0, 2.0), np.zeros(n)], axis=1) + 0.2 * rng.standard_normal((n, 2))
    np.savez(path, x=x.astype(np.float32), y=y)
    return path


def test_gp_uses_each_real_samples_own_label_and_fakes_share_it(tmp_path: Path, monkeypatch) -> None:
    seen = []
    forward = parallel.CriticPass.forward

    def spy(self, real, fake, **kwargs):
        seen.append(kwargs["d_kwargs"]["y"].clone())
        return forward(self, real, fake, **kwargs)

    monkeypatch.setattr(parallel.CriticPass, "forward", spy)
    cfg = load_config(overrides=[*BASE, f"out={tmp_path / 'gp'}", "train.steps=3", "eval.final=false",
                                 "loss.kind=wasserstein", "penalty.gp=10", "model.d_norm=layer", "train.batch_size=16"])
    trainer = make_trainer(cfg, **QUIET)
    trainer.run()
    expected = [trainer.data.rank_labels(i, 16, 0, 1) for i in range(3)]
    assert len(seen) == 3
    for got, want in zip(seen, expected):
        assert torch.equal(got, want)


def test_conditional_toy_generates_the_requested_side(tmp_path: Path) -> None:
    data = _two_sides(tmp_path / "sides.npz")
    out = tmp_path / "sides"
    cfg = load_config(overrides=[*BASE, f"out={out}", "data.name=npz", f"data.path={data}", "model.arch=toy",
                                 "model.width=32", "model.depth=2", "model.latent_dim=4", "loss.kind=nonsaturating",
                                 "train.steps=400", "train.batch_size=64", "eval.final=false", "train.ema=0",
                                 "optim.g_lr=1e-3", "optim.d_lr=1e-3", "optim.g_betas=[0.5,0.9]",
                                 "optim.d_betas=[0.5,0.9]"])
    train(cfg, **QUIET)
    generator, meta = load_generator(out)
    assert meta["num_classes"] == 2 and meta["class_names"] == ["0", "1"]
    for k, sign in ((0, -1.0), (1, 1.0)):
        path = write_samples(generator, meta, 500, tmp_path / f"class{k}.npy", "npy", seed=1, class_index=k)
        points = np.load(path)
        assert (np.sign(points[:, 0]) == sign).mean() > 0.9


def test_sample_by_class_and_one_row_per_class(tmp_path: Path, capsys) -> None:
    out = tmp_path / "digits"
    train(load_config(overrides=[*BASE, f"out={out}", "train.steps=20", "eval.final=false"]), **QUIET)
    assert main(["sample", "--run", str(out), "--class", "7", "--n", "9", "--out", str(tmp_path / "c7.npy"),
                 "--format", "npy"]) == 0
    assert np.load(tmp_path / "c7.npy").shape == (9, 1, 8, 8)
    assert main(["sample", "--run", str(out), "--classes", "all", "--n", "25", "--out", str(tmp_path / "all.png")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote 20 samples to {tmp_path / 'all.png'}"
    assert main(["sample", "--run", str(out), "--class", "10", "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.strip() == ("ganstab: error: --class 10 is out of range: this generator has 10 "
                                               "classes (0..9)")


def test_conditional_bad_inputs_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["train", "model.conditional=true", "data.name=ring8", "model.arch=toy",
                 f"out={tmp_path / 'r8'}"]) == 2
    assert capsys.readouterr().err.strip().startswith(
        "ganstab: error: model.conditional=true needs labels, but data.name=ring8 has none")
    assert not (tmp_path / "r8").exists()
    assert main(["train", "model.conditional=true", "model.arch=resnet", "data.image_size=32", f"out={tmp_path / 'p'}"]) == 2
    assert capsys.readouterr().err.strip() == (
        "ganstab: error: model.conditional=true is implemented for model.arch=mlp, toy, dcgan, not resnet; "
        "choose one of them or set model.conditional=false")
    plain = tmp_path / "plain"
    train(load_config(overrides=["log.progress=false", "train.steps=2", "eval.final=false", f"out={plain}"]), **QUIET)
    assert main(["sample", "--run", str(plain), "--class", "1", "--out", str(tmp_path / "x.png")]) == 2
    assert "this generator is unconditional" in capsys.readouterr().err
    with pytest.raises(DataError, match="labels"):
        np.savez(tmp_path / "bad.npz", x=np.zeros((64, 2), np.float32))
        make_trainer(load_config(overrides=[*BASE, "data.name=npz", f"data.path={tmp_path / 'bad.npz'}",
                                            "model.arch=toy", f"out={tmp_path / 'b'}"]), **QUIET)


def test_conditional_evaluation_scores_requested_labels(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    train(load_config(overrides=[*BASE, f"out={out}", "train.steps=10", "eval.n=200"]), **QUIET)
    line = [r for r in __import__("ganstab.rundir", fromlist=["read_jsonl"]).read_jsonl(out / "metrics.jsonl")
            if "eval_fd" in r][-1]
    assert 0.0 <= line["eval_class_accuracy"] <= 1.0 and line["eval_intra_fd"] > 0
