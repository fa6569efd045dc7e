"""Fine-tuning: train.init_from (a run folder, a checkpoint or an export) and FreezeD's model.freeze_d."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganstab.cli import main
from ganstab.config import load_config as load_plain_config
from ganstab.errors import CheckpointError, ConfigError
from ganstab.export import load_generator
from ganstab.models import build_discriminator
from ganstab.models.freeze import discriminator_blocks, freeze_discriminator_blocks
from ganstab.pipeline import load_config
from ganstab.train import train
from ganstab.training.checkpoint import load_checkpoint

FAST = ["eval.final=false", "eval.every=0", "log.progress=false", "log.every=2", "log.checkpoint_every=1000",
        "log.sample_every=1000", "train.batch_size=16", "model.hidden=[32,32]", "train.ema=200"]


def _blocks(arch: str, shape: tuple[int, ...], extra: list[str], classes: int = 0) -> list[list[str]]:
    cfg = load_plain_config(overrides=[f"model.arch={arch}", "model.width=8", *extra])
    net = build_discriminator(cfg.model, shape, cfg, classes)
    return [[type(m).__name__ for m in block] for block in discriminator_blocks(net)]


def test_blocks_of_each_discriminator() -> None:
    assert _blocks("mlp", (1, 8, 8), ["model.d_norm=batch"]) == [["Linear"], ["Linear", "BatchNorm1d"], ["Linear"]]
    assert _blocks("mlp", (1, 8, 8), []) == [["ParametrizedLinear"]] * 3
    assert _blocks("dcgan", (1, 28, 28), ["model.d_norm=layer"]) == [["Conv2d"], ["Conv2d", "GroupNorm"], ["Linear"]]
    assert _blocks("resnet", (1, 32, 32), []) == [["OptimizedBlock"], ["DownBlock"], ["DownBlock"], ["DownBlock"],
                                                  ["ParametrizedLinear"]]
    assert _blocks("mlp", (1, 8, 8), ["model.conditional=true"], classes=10) == [
        ["ParametrizedLinear"], ["ParametrizedLinear"], ["ProjectionHead"]]


def test_freeze_sets_requires_grad_on_the_first_blocks_only() -> None:
    cfg = load_plain_config(overrides=["model.d_norm=batch", "model.hidden=[16,8]"])
    net = build_discriminator(cfg.model, (1, 8, 8), cfg)
    assert freeze_discriminator_blocks(net, 2) == 3
    flags = {name: p.requires_grad for name, p in net.named_parameters()}
    assert flags == {"net.0.weight": False, "net.0.bias": False, "net.2.weight": False, "net.2.bias": False,
                     "net.3.weight": False, "net.3.bias": False, "net.5.weight": True, "net.5.bias": True}
    with pytest.raises(ValueError) as err:
        freeze_discriminator_blocks(net, 3)
    assert str(err.value) == ("model.freeze_d=3 but this discriminator has 3 blocks, the last of them its output "
                              "layer; freeze at most 2")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A short trained digits run with checkpoints and an export."""
    out = tmp_path_factory.mktemp("finetune") / "source"
    train(load_config(overrides=[f"out={out}", "train.steps=6", *FAST]), echo=lambda m: None)
    return out


def _ckpt(run: Path, step: int) -> dict:
    return load_checkpoint(run / "checkpoints" / f"ckpt_{step:07d}.pt")


def test_fine_tuning_starts_from_the_source_and_keeps_frozen_blocks(source: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    out = tmp_path / "tuned"
    cfg = load_config(overrides=[f"out={out}", "train.steps=4", f"train.init_from={source}", "model.freeze_d=1",
                                 "seed=7", *FAST])
    flags: list[tuple[bool, ...]] = []
    train(cfg, echo=messages.append,
          hooks={"after_step": lambda t: flags.append(tuple(p.requires_grad for p in t.D.parameters()))})
    assert f"fine-tuning from {source}: G, D, G's EMA loaded; D's first 1 blocks frozen" in messages
    assert flags == [(False, False, True, True, True, True)] * 4  # the G step's unfreeze leaves frozen blocks alone
    start, end, src = _ckpt(out, 0), _ckpt(out, 4), _ckpt(source, 6)
    for net in ("g", "d", "g_ema"):  # step 0 of the new run holds the source's final weights
        for key, value in src[net].items():
            assert torch.equal(start[net][key], value), (net, key)
    frozen = [k for k in src["d"] if k.startswith("net.0.") and not k.endswith(("._u", "._v"))]  # SN's buffers move
    assert frozen == ["net.0.bias", "net.0.parametrizations.weight.original"]
    for key in frozen:
        assert torch.equal(end["d"][key], src["d"][key]), key
    generator, meta = load_generator(out)  # the export of a FreezeD run loads (freeze_d is no part of G)
    assert "freeze_d" not in meta["model"] and generator.training is False
    out_weight = "net.4.parametrizations.weight.original"  # (its bias can stand still: hinge gradients cancel)
    assert not torch.equal(end["d"][out_weight], src["d"][out_weight])  # the output layer learned
    assert not torch.equal(end["g"]["net.0.weight"], src["g"]["net.0.weight"])


def test_fine_tuning_from_an_export_loads_g_and_copies_it_to_the_ema(source: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    for name in ("generator.safetensors", "generator.json"):
        shutil.copy(source / name, export / name)
    messages: list[str] = []
    out = tmp_path / "tuned"
    train(load_config(overrides=[f"out={out}", "train.steps=2", f"train.init_from={export}", *FAST]),
          echo=messages.append)
    assert f"fine-tuning from {export}: G, G's EMA (a copy of G) loaded" in messages
    exported, start = load_file(str(export / "generator.safetensors")), _ckpt(out, 0)
    for key, value in exported.items():
        assert torch.equal(start["g"][key], value), key
        assert torch.equal(start["g_ema"][key], value), key
    with pytest.raises(ConfigError) as err:
        train(load_config(overrides=[f"out={tmp_path / 'frozen'}", "train.steps=2", f"train.init_from={export}",
                                     "model.freeze_d=1", *FAST]), echo=lambda m: None)
    assert str(err.value) == (f"model.freeze_d freezes blocks of a trained D, but {str(export / 'generator.safetensors')!r} "
                              "holds a generator only; give train.init_from a run folder with a checkpoint or remove "
                              "model.freeze_d")
    assert not (tmp_path / "frozen").exists()


def test_a_different_architecture_is_refused_in_one_line(source: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "other"
    code = main(["train", f"out={out}", "train.steps=2", f"train.init_from={source}", *FAST, "model.hidden=[48,32]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith(f"ganstab: error: train.init_from: the generator in "
                             f"{str(source / 'checkpoints' / 'ckpt_0000006.pt')!r} does not fit this model (")
    assert err[0].endswith("); use the model.* settings, data shape and classes of the run it comes from")
    assert not out.exists()


@pytest.mark.parametrize("overrides, message", [
    (["model.freeze_d=1"], "model.freeze_d freezes D's first blocks at trained weights, but train.init_from is not "
                           "set; set train.init_from=RUN (a trained run) or remove model.freeze_d"),
    (["model.freeze_d=1", "train.init_from=x", "model.arch=progressive", "model.d_norm=none"],
     "model.freeze_d is not supported by model.arch=progressive (its D grows new blocks); use mlp, dcgan or resnet, "
     "or remove model.freeze_d"),
])
def test_config_rules(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_plain_config(overrides=overrides)
    assert str(err.value) == message


def test_missing_or_unknown_sources(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        train(load_config(overrides=[f"out={tmp_path / 'a'}", f"train.init_from={tmp_path / 'nope'}", *FAST]),
              echo=lambda m: None)
    assert str(err.value) == (f"train.init_from: {str(tmp_path / 'nope')!r} does not exist; give a run folder, a "
                              "checkpoint (.pt) or an exported generator.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as err:
        train(load_config(overrides=[f"out={tmp_path / 'b'}", f"train.init_from={tmp_path / 'empty'}", *FAST]),
              echo=lambda m: None)
    assert str(err.value) == (f"train.init_from: {str(tmp_path / 'empty')!r} holds neither a valid checkpoint nor "
                              "an exported generator; give a run folder, a checkpoint (.pt) or an exported "
                              "generator.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        train(load_config(overrides=[f"out={tmp_path / 'c'}", f"train.init_from={tmp_path / 'junk.pt'}", *FAST]),
              echo=lambda m: None)
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))
