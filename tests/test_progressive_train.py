"""Progressive growing end to end: every resolution visited, samples per phase, progan preset valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganstab.pipeline import load_config
from ganstab.train import train


def test_passes_through_every_resolution_with_samples(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = load_config(preset="progan", overrides=[
        f"out={out}", "data.name=digits", "data.image_size=16", "train.steps=100", "train.batch_size=32",
        "progressive.stable_images=640", "progressive.fade_images=640", "model.width=8", "model.latent_dim=16",
        "log.every=5", "log.sample_every=20", "log.progress=false", "eval.final=false", "train.threads=1"])
    result = train(cfg, echo=lambda m: None)
    assert result.steps == 100
    lines = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss_d" in r]
    by_step = {r["step"]: (r["resolution"], r["alpha"]) for r in lines}
    # 32 images per step; the logged state is the one step k trained with, i.e. at (k-1)*32 images seen:
    # 4x4 stable to 640 images, fade 8x8 to 1280, stable 8x8 to 1920, fade 16x16 to 2560, then 16x16 stable
    assert by_step[20] == (4, 1.0)  # 608 images
    assert by_step[30] == (8, 0.45)  # (928 - 640) / 640
    assert by_step[60] == (8, 1.0)  # 1888 images
    assert by_step[70] == (16, 0.45)  # (2208 - 1920) / 640
    assert by_step[100] == (16, 1.0)
    assert sorted({r["resolution"] for r in lines}) == [4, 8, 16]
    names = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert {n.rsplit("_res", 1)[1] for n in names} == {"4.png", "8.png", "16.png"}
    assert all("drift" in r and "gp" in r for r in lines)
    meta = json.loads((out / "generator.json").read_text())
    assert meta["g_kwargs"] == {"resolution": 16, "alpha": 1.0}


@pytest.mark.parametrize("side,expected", [(28, 32), (32, 32), (8, 8)])
def test_progan_preset_builds_for_sizes(tmp_path: Path, side: int, expected: int) -> None:
    from ganstab.pipeline import make_trainer

    cfg = load_config(preset="progan", overrides=[f"out={tmp_path}", "data.name=digits", f"data.image_size={side}",
                                                  "model.width=8"])
    trainer = make_trainer(cfg)
    assert trainer.schedule.final == expected
    assert trainer.G(trainer.fixed_z[:2]).shape == (2, 1, side, side)


def test_non_power_of_two_data_reaches_full_size_with_gradient_penalty(tmp_path: Path) -> None:
    # 12x12 data grows 4 -> 8 -> 16 (padded); at 16 reals and fakes are both 12x12 before D pads them
    out = tmp_path / "run"
    cfg = load_config(preset="progan", overrides=[
        f"out={out}", "data.name=digits", "data.image_size=12", "train.steps=50", "train.batch_size=16",
        "progressive.stable_images=160", "progressive.fade_images=160", "model.width=8", "model.latent_dim=16",
        "log.every=5", "log.progress=false", "eval.final=true", "eval.n=64", "train.threads=1"])
    result = train(cfg, echo=lambda m: None)
    assert result.steps == 50
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    training = [r for r in lines if "loss_d" in r]
    assert [r["resolution"] for r in training][-3:] == [16, 16, 16]
    assert any(0 < r["alpha"] < 1 and r["resolution"] == 16 for r in training)  # the final fade ran too
    assert all(r["gp"] is not None for r in training)
    assert any("eval_fd" in r for r in lines)
    from ganstab.export import load_generator

    generator, meta = load_generator(out)
    import torch

    assert generator(torch.randn(3, 16), **meta["g_kwargs"]).shape == (3, 1, 12, 12)


def test_grow_false_trains_the_same_networks_at_full_size(tmp_path: Path) -> None:
    from ganstab.pipeline import make_trainer

    common = [f"out={tmp_path}", "data.name=digits", "data.image_size=16", "model.width=8"]
    growing = make_trainer(load_config(preset="progan", overrides=common))
    flat = make_trainer(load_config(preset="progan", overrides=[*common, "progressive.grow=false"]))
    assert growing.G.state_dict().keys() == flat.G.state_dict().keys()  # same blocks 4..16
    assert (growing.resolution, growing.alpha) == (4, 1.0)
    assert (flat.resolution, flat.alpha) == (16, 1.0)
    flat.images_seen = 10 ** 6
    flat.before_step()
    assert (flat.resolution, flat.alpha, flat.phase) == (16, 1.0, 0)
