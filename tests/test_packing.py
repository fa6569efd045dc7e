"""PacGAN packing: the wrapper's reshape, the registry hook, config rules and a short run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ganstab import penalties
from ganstab.config import ConfigError
from ganstab.pipeline import load_config
from ganstab.models import build_discriminator
from ganstab.models.packing import PackedDiscriminator, packed_shape


class _Recorder(nn.Module):
    """Inner D that remembers its input and returns the sum of each row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return x.sum(dim=1)


def test_packed_shape() -> None:
    assert packed_shape((2,), 4) == (8,)
    assert packed_shape((1, 8, 8), 2) == (128,)
    with pytest.raises(ValueError):
        packed_shape((2,), 0)


def test_wrapper_concatenates_consecutive_samples() -> None:
    inner = _Recorder()
    d = PackedDiscriminator(inner, 3)
    x = torch.arange(12.0).view(6, 2)
    out = d(x)
    assert out.shape == (2,)
    assert torch.equal(inner.seen, torch.tensor([[0., 1., 2., 3., 4., 5.], [6., 7., 8., 9., 10., 11.]]))
    assert torch.equal(out, torch.tensor([15.0, 51.0]))


def test_wrapper_refuses_batch_not_divisible() -> None:
    with pytest.raises(ValueError, match="model.pack=4"):
        PackedDiscriminator(_Recorder(), 4)(torch.zeros(6, 2))


def _cfg(*overrides: str):
    return load_config(preset="toy", overrides=list(overrides))


def test_build_discriminator_wraps_inner_d_for_packed_size() -> None:
    cfg = _cfg("model.pack=4", "model.width=16", "model.depth=2")
    d = build_discriminator(cfg.model, (2,), cfg)
    assert isinstance(d, PackedDiscriminator) and d.pack == 4
    first = next(m for m in d.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 8
    assert d(torch.randn(12, 2)).shape == (3,)


def test_pack_one_is_the_plain_discriminator() -> None:
    cfg = _cfg("model.width=16", "model.depth=2")
    assert cfg.model.pack == 1
    d = build_discriminator(cfg.model, (2,), cfg)
    assert not isinstance(d, PackedDiscriminator)
    assert d(torch.randn(5, 2)).shape == (5,)


def test_config_rejects_batch_not_divisible_by_pack() -> None:
    with pytest.raises(ConfigError, match="model.pack=3 does not divide train.batch_size=256"):
        _cfg("model.pack=3")
    assert _cfg("model.pack=4").model.pack == 4


def test_config_rejects_bad_pack_values() -> None:
    with pytest.raises(ConfigError):
        _cfg("model.pack=0")


def test_config_rejects_pack_on_conv_architectures() -> None:
    with pytest.raises(ConfigError, match="model.pack=2 is implemented for"):
        load_config(preset="dcgan", overrides=["data.name=digits", "data.image_size=8", "model.pack=2"])


def test_r1_on_packed_d_is_per_sample_slice_of_pack_gradient() -> None:
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    packed = PackedDiscriminator(_Squeeze(inner), 2)
    x = torch.randn(6, 2)
    r1 = penalties.r1_penalty(packed, x)
    xp = x.reshape(3, 4).requires_grad_(True)
    (grad,) = torch.autograd.grad(inner(xp).sum(), xp)
    expected = grad.pow(2).sum(dim=1).mean() / 2  # mean over samples = packed norm^2 / m
    assert torch.allclose(r1, expected, atol=1e-6)


class _Squeeze(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def test_short_packed_run_finishes_with_eval(tmp_path) -> None:
    from ganstab.train import train

    cfg = load_config(preset="toy", overrides=[
        "data.name=ring8", "model.pack=4", "model.width=32", "model.depth=2", "train.steps=40",
        "train.batch_size=64", "train.threads=1", "log.every=20", "log.sample_every=40",
        "log.checkpoint_every=40", "eval.n=500", f"out={tmp_path / 'run'}", "penalty.r1=0.1"])
    result = train(cfg, echo=lambda m: None)
    assert result.steps == 40
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_modes" in line for line in lines)
    assert any("r1" in line for line in lines)
