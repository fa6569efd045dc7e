"""DDP on CPU (gloo, 2 processes via torchrun): 2 ranks x batch B == 1 rank x batch 2B; resume works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganstab.pipeline import load_config
from ganstab.train import train

COMMON = ["eval.final=false", "log.every=3", "log.progress=false", "train.threads=1", "model.width=8", "model.g_norm=layer",
          "model.d_norm=layer", "loss.kind=wasserstein", "penalty.gp=10", "train.n_critic=2", "train.ema=200",
          "log.checkpoint_every=6", "log.sample_every=1000"]


def _torchrun(args: list[str], port: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "ganstab", "train", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_ranks_equal_one_rank_with_double_batch(tmp_path: Path) -> None:
    single = tmp_path / "single"
    train(load_config(overrides=[f"out={single}", "train.steps=12", "train.batch_size=16", *COMMON]),
          echo=lambda m: None)
    ddp = tmp_path / "ddp"
    first = _torchrun([f"out={ddp}", "train.steps=6", "train.batch_size=8", *COMMON], port=29611)
    assert first.returncode == 0, first.stderr[-2000:]
    second = _torchrun(["--resume", str(ddp), "train.steps=12", "train.batch_size=8", *COMMON], port=29612)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("trained 12 G steps") == 1  # only rank 0 reports

    g_single = load_file(str(single / "generator.safetensors"))
    g_ddp = load_file(str(ddp / "generator.safetensors"))
    for key in g_single:
        torch.testing.assert_close(g_ddp[key], g_single[key], rtol=1e-5, atol=1e-6)
    a, b = _records(single), _records(ddp)
    assert [r["step"] for r in b] == [3, 6, 9, 12]  # one line per log step: written once
    assert [r["images_seen"] for r in b] == [r["images_seen"] for r in a] == [96, 192, 288, 384]
    for x, y in zip(a, b):
        for key in ("loss_d", "loss_g", "gp", "d_real", "d_fake"):
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), key
    names = sorted(p.name for p in (ddp / "checkpoints").iterdir() if p.name.startswith("ckpt_"))  # rank 0 only
    assert names == ["ckpt_0000000.pt", "ckpt_0000000.pt.sha256", "ckpt_0000006.pt", "ckpt_0000006.pt.sha256",
                     "ckpt_0000012.pt", "ckpt_0000012.pt.sha256"]


def test_r2_lecam_relativistic_two_ranks_equal_one_rank_with_double_batch(tmp_path: Path) -> None:
    """R2 (and R1) inside the DDP-wrapped CriticPass, LeCam's all-reduced anchors, the G step's fresh real batch."""
    common = ["eval.final=false", "log.every=3", "log.progress=false", "train.threads=1", "model.width=8",
              "model.g_norm=layer", "model.d_norm=layer", "loss.kind=relativistic", "penalty.r1=1", "penalty.r2=1",
              "penalty.r2_every=2", "penalty.lecam=0.3", "penalty.lecam_decay=0.9", "train.ema=0",
              "log.sample_every=1000", "train.steps=6"]
    single = tmp_path / "single"
    train(load_config(overrides=[f"out={single}", "train.batch_size=16", *common]), echo=lambda m: None)
    ddp = tmp_path / "ddp"
    proc = _torchrun([f"out={ddp}", "train.batch_size=8", *common], port=29631)
    assert proc.returncode == 0, proc.stderr[-2000:]
    g_single = load_file(str(single / "generator.safetensors"))
    g_ddp = load_file(str(ddp / "generator.safetensors"))
    for key in g_single:  # double back-propagation through 6 steps: reduction order moves a few weights by ~5e-6
        torch.testing.assert_close(g_ddp[key], g_single[key], rtol=1e-5, atol=1e-5)
    a, b = _records(single), _records(ddp)
    # two real batches per step (D's and the G step's): 2 x 16 images
    assert [r["images_seen"] for r in b] == [r["images_seen"] for r in a] == [96, 192]
    for x, y in zip(a, b):
        for key in ("loss_d", "loss_g", "r1", "r2", "lecam", "d_real", "d_fake"):
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), key


def test_streamed_folder_two_ranks_equal_one_rank_with_double_batch(tmp_path: Path) -> None:
    """data.stream=true: each rank reads its DistributedSampler shard; the union per step is the 2B batch."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    common = ["data.name=folder", f"data.path={folder}", "data.stream=true", "model.arch=mlp", "model.hidden=[16]",
              "model.g_norm=layer", "model.d_norm=layer", "loss.kind=hinge", "penalty.r1=1", "train.ema=0",
              "eval.final=false", "log.every=3", "log.progress=false", "train.threads=1", "log.sample_every=1000",
              "train.steps=6"]
    single = tmp_path / "single"
    train(load_config(overrides=[f"out={single}", "train.batch_size=16", *common]), echo=lambda m: None)
    ddp = tmp_path / "ddp"
    proc = _torchrun([f"out={ddp}", "train.batch_size=8", *common], port=29613)
    assert proc.returncode == 0, proc.stderr[-2000:]
    g_single = load_file(str(single / "generator.safetensors"))
    g_ddp = load_file(str(ddp / "generator.safetensors"))
    for key in g_single:
        torch.testing.assert_close(g_ddp[key], g_single[key], rtol=1e-5, atol=1e-6)
    assert [r["images_seen"] for r in _records(ddp)] == [r["images_seen"] for r in _records(single)] == [48, 96]


def test_conditional_two_ranks_equal_one_rank_with_double_batch(tmp_path: Path) -> None:
    """Labels are sharded like the images: each rank's real labels and sampled fake labels are its slice."""
    extra = ["model.conditional=true", "model.arch=dcgan"]
    single = tmp_path / "single"
    train(load_config(overrides=[f"out={single}", "train.steps=6", "train.batch_size=16", *COMMON, *extra]),
          echo=lambda m: None)
    ddp = tmp_path / "ddp"
    done = _torchrun([f"out={ddp}", "train.steps=6", "train.batch_size=8", *COMMON, *extra], port=29621)
    assert done.returncode == 0, done.stderr[-2000:]
    g_single = load_file(str(single / "generator.safetensors"))
    g_ddp = load_file(str(ddp / "generator.safetensors"))
    assert "embed.weight" in g_single  # the label embedding is part of G
    for key in g_single:
        torch.testing.assert_close(g_ddp[key], g_single[key], rtol=1e-5, atol=1e-6)
    assert json.loads((ddp / "generator.json").read_text())["num_classes"] == 10
