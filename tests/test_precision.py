"""Mixed precision and torch.compile switches: CPU paths here, CUDA paths where a GPU exists."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ganstab.config import ConfigError
from ganstab.pipeline import load_config
from ganstab.train import train
from ganstab.pipeline import make_trainer

FAST = ["eval.final=false", "log.progress=false", "train.steps=6", "log.every=3", "train.batch_size=8", "model.width=8",
        "log.sample_every=1000"]
CUDA = torch.cuda.is_available()


def _finite_losses(run: Path) -> bool:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return all(math.isfinite(r[k]) for r in records for k in ("loss_d", "loss_g"))


def test_bf16_autocast_on_cpu_with_gradient_penalty(tmp_path: Path) -> None:
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *FAST, "train.precision=bf16", "loss.kind=wasserstein",
                                 "penalty.gp=10", "model.d_norm=layer"])
    result = train(cfg, echo=lambda m: None)
    assert result.steps == 6
    assert _finite_losses(tmp_path / "run")


def test_fp16_needs_cuda(tmp_path: Path) -> None:
    if CUDA:
        pytest.skip("a CUDA device is present; the refusal only applies without one")
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *FAST, "train.precision=fp16", "train.device=cpu"])
    with pytest.raises(ConfigError) as err:
        make_trainer(cfg)
    assert str(err.value) == "train.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU"


def test_compile_falls_back_with_a_message(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(torch, "compile", broken)
    messages: list[str] = []
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *FAST, "train.compile=true"])
    assert train(cfg, echo=messages.append).steps == 6
    assert messages[0] == "train.compile: torch.compile is not supported here (RuntimeError); continuing without it"


def test_scalers_are_checkpointed(tmp_path: Path) -> None:
    cfg = load_config(overrides=[f"out={tmp_path / 'run'}", *FAST])
    trainer = make_trainer(cfg)
    state = trainer.state()
    assert "scaler_g" in state and "scaler_d" in state


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("preset", ["dcgan", "wgan-gp"])
def test_cuda_mixed_precision_steps(tmp_path: Path, precision: str, preset: str) -> None:
    cfg = load_config(preset=preset, overrides=[f"out={tmp_path / 'run'}", *FAST, "data.name=digits",
                                                f"train.precision={precision}", "train.device=cuda"])
    assert train(cfg, echo=lambda m: None).steps == 6
    assert _finite_losses(tmp_path / "run")
