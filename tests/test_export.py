"""Exported generators as modules for other tools: the uint8 rule, shapes, refusals, and the input contracts
of torch-fidelity and clean-fid (their own input-handling code, driven with a probe instead of Inception)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ganstab.config import load_config, validate
from ganstab.errors import UsageError
from ganstab.export import (ImageGenerator, UInt8Generator, generator_meta, load_generator, load_generator_module,
                            save_generator, write_samples)
from ganstab.models import build_generator
from ganstab.sampling import quantize, to_uint8_rgb

from _torchvision_double import fidelity_imported

LATENT = 8
QUIET = dict(echo=lambda message: None)


def _export(folder: Path, data: str, shape: tuple[int, ...], num_classes: int = 0) -> Path:
    """A run folder holding an exported (untrained, seeded) generator, as training's end writes it."""
    torch.manual_seed(0)
    cfg = validate({"data": {"name": data}, "model": {"arch": "mlp", "latent_dim": LATENT,
                                                      "conditional": bool(num_classes)}})
    net = build_generator(cfg.model, shape, cfg, num_classes)
    kind = "points" if len(shape) == 1 else "image"
    save_generator(folder, net, generator_meta(cfg, shape, kind, True, 20, 320, {}, num_classes=num_classes))
    return folder


def _latents(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, LATENT, generator=torch.Generator().manual_seed(seed))


def _library(name: str) -> Any:
    """The installed library, or a visible skip naming why it cannot be imported here."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # torchvision built for another torch raises RuntimeError, not ImportError
        pytest.skip(f"{name} is not importable here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                    "install the extra: pip install 'ganstab[fidelity]' with a torchvision that matches torch")


# --- the pixel rule ---------------------------------------------------------------------------------------------

def test_quantize_maps_minus_one_to_0_one_to_255_and_zero_to_128() -> None:
    x = torch.tensor([-1.0, 1.0, 0.0, -0.5, 0.5, -3.0, 2.0, 1.0 / 255]).view(1, 1, 1, 8)
    # (x + 1) * 127.5 = 0, 255, 127.5 (a half: rounds to even, 128), 63.75, 191.25, clamped, clamped, 128
    expected = torch.tensor([0, 255, 128, 64, 191, 0, 255, 128], dtype=torch.uint8).view(1, 1, 1, 8)
    assert torch.equal(quantize(x), expected)


def test_to_uint8_rgb_repeats_gray_and_keeps_rgb() -> None:
    gray = torch.tensor([[-1.0, 0.0], [0.5, 1.0]]).view(1, 1, 2, 2)
    out = to_uint8_rgb(gray)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 2, 2)
    for c in range(3):
        assert torch.equal(out[0, c], torch.tensor([[0, 128], [191, 255]], dtype=torch.uint8))
    rgb = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    assert torch.equal(to_uint8_rgb(rgb).flatten(), torch.tensor([0, 128, 255], dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"^expected images of shape \(N, 1 or 3, H, W\), got \(1, 2, 4, 4\)$"):
        to_uint8_rgb(torch.zeros(1, 2, 4, 4))


# --- the modules ------------------------------------------------------------------------------------------------

def test_gray_module_shapes_and_same_pixels_as_sample_folder(tmp_path: Path) -> None:
    run = _export(tmp_path / "run", "digits", (1, 8, 8))
    module = load_generator_module(run, **QUIET)
    assert isinstance(module, ImageGenerator) and module.latent_dim == LATENT and module.num_classes == 0
    assert module.image_shape == (1, 8, 8)
    z = _latents(5)
    with torch.no_grad():
        images = module(z)
    assert images.dtype == torch.float32 and images.shape == (5, 1, 8, 8)
    assert -1.0 <= float(images.min()) and float(images.max()) <= 1.0
    pixels = module.uint8()(z)
    assert isinstance(module.uint8(), UInt8Generator) and pixels.dtype == torch.uint8 and pixels.shape == (5, 3, 8, 8)
    for c in range(3):
        assert torch.equal(pixels[:, c], quantize(images)[:, 0])
    # `ganstab sample --format folder` draws z from the same seed: its PNGs hold the same pixels
    generator, meta = load_generator(run)  # the tuple API is unchanged
    folder = write_samples(generator, meta, 5, tmp_path / "fakes", "folder", seed=0)
    pngs = np.stack([np.asarray(Image.open(folder / f"{i:06d}.png")) for i in range(5)])
    assert pngs.shape == (5, 8, 8)
    assert np.array_equal(pngs, pixels[:, 0].numpy())


def test_rgb_module_keeps_three_channels(tmp_path: Path) -> None:
    module = load_generator_module(_export(tmp_path / "run", "folder", (3, 8, 8)), **QUIET)
    z = _latents(4)
    pixels = module.uint8()(z)
    assert pixels.shape == (4, 3, 8, 8) and pixels.dtype == torch.uint8
    with torch.no_grad():
        assert torch.equal(pixels, quantize(module(z)))
    assert not torch.equal(pixels[:, 0], pixels[:, 1])  # three real channels, not a repeated one


def test_conditional_module_fixed_class_drawn_labels_and_given_labels(tmp_path: Path) -> None:
    module = load_generator_module(_export(tmp_path / "run", "digits", (1, 8, 8), num_classes=10), **QUIET)
    assert module.num_classes == 10 and module.class_names == [str(k) for k in range(10)]
    z = _latents(6)
    with torch.no_grad():
        threes = quantize(module(z, torch.full((6,), 3)))
        sevens = quantize(module(z, torch.full((6,), 7)))
    assert not torch.equal(threes, sevens)
    assert torch.equal(module.uint8(class_index=3)(z)[:, 0], threes[:, 0])
    assert torch.equal(module.uint8()(z, torch.full((6,), 7))[:, 2], sevens[:, 0])
    drawn = module.uint8(seed=5)
    stream = torch.Generator().manual_seed(5)
    for _ in range(2):  # labels are drawn anew on each call, from the seeded stream
        labels = torch.randint(0, 10, (6,), generator=stream)
        with torch.no_grad():
            expected = quantize(module(z, labels))
        assert torch.equal(drawn(z)[:, 1], expected[:, 0])


def test_progressive_module_draws_at_the_resolution_it_reached(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = load_config(preset="progan", overrides=["data.name=digits", f"model.latent_dim={LATENT}"])
    net = build_generator(cfg.model, (1, 8, 8), cfg, 0)
    meta = generator_meta(cfg, (1, 8, 8), "image", True, 20, 320, {"resolution": 4, "alpha": 1.0})
    module = load_generator_module(save_generator(tmp_path / "run", net, meta).parent, **QUIET)
    assert module.image_shape == (1, 4, 4)
    assert module.uint8()(_latents(3)).shape == (3, 3, 4, 4)


def test_module_stays_in_eval_mode(tmp_path: Path) -> None:
    module = load_generator_module(_export(tmp_path / "run", "digits", (1, 8, 8)), **QUIET)
    module.train()
    assert not module.training and not module.generator.training


def test_refusals_name_the_problem_and_the_fix(tmp_path: Path) -> None:
    points = _export(tmp_path / "ring", "ring8", (2,))
    with pytest.raises(UsageError) as err:
        load_generator_module(points, **QUIET)
    assert str(err.value) == (f"run {str(points)!r} generates 2-D points (data.name=ring8), not images; image tools "
                              "cannot read them: write them with ganstab sample --format npy")
    gray = load_generator_module(_export(tmp_path / "gray", "digits", (1, 8, 8)), **QUIET)
    cond = load_generator_module(_export(tmp_path / "cond", "digits", (1, 8, 8), num_classes=10), **QUIET)
    cases: list[tuple[Any, str]] = [
        (lambda: gray(torch.zeros(2, LATENT + 1)), "z has shape (2, 9); this generator takes (N, 8) latents drawn "
                                                  "from N(0, I)"),
        (lambda: gray(_latents(2), torch.zeros(2, dtype=torch.long)),
         "this generator is unconditional: call it without labels"),
        (lambda: cond(_latents(2)), "this generator is class-conditional (10 classes): pass labels (N,) or use "
                                    ".uint8(class_index=K), which draws them"),
        (lambda: cond(_latents(2), torch.tensor([0, 10])), "labels must be 2 class indices in 0..9, one per latent; "
                                                          "got shape (2,)"),
        (lambda: cond(_latents(2), torch.tensor([1])), "labels must be 2 class indices in 0..9, one per latent; got "
                                                      "shape (1,)"),
        (lambda: cond.uint8(class_index=10), "class_index 10 is out of range: this generator has 10 classes (0..9)"),
        (lambda: gray.uint8(class_index=0), "class_index needs a class-conditional generator; this one is "
                                            "unconditional"),
    ]
    for call, message in cases:
        with pytest.raises(UsageError) as err:
            call()
        assert str(err.value) == message


def test_four_channel_images_are_refused(tmp_path: Path) -> None:
    run = _export(tmp_path / "rgba", "folder", (4, 8, 8))
    with pytest.raises(UsageError) as err:
        load_generator_module(run, **QUIET)
    assert str(err.value) == (f"run {str(run)!r} generates 4-channel images; only gray (1) or RGB (3) images can be "
                              "given to image tools: use ganstab sample --format npy for the raw values")


# --- the libraries' input contracts ------------------------------------------------------------------------------

class _Probe:
    """Stands in for Inception: records what the library hands to the feature network, returns tiny features."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        self.batches.append(batch.detach().cpu().clone())
        flat = batch.float().flatten(1)
        return torch.stack([flat.mean(1), flat.std(1)], dim=1)


def _fidelity_extractor(fidelity: Any, probe: _Probe) -> nn.Module:
    """A torch-fidelity feature extractor that checks the input like the library's own ones, then probes."""
    vassert = _library("torch_fidelity.helpers").vassert

    class ProbeExtractor(fidelity.FeatureExtractorBase):
        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("probe",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "probe"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # the two checks every torch-fidelity extractor (Inception, VGG, CLIP, DINOv2) makes first
            vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with uint8")
            vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {x.shape}")
            return (probe.features(x),)

    return ProbeExtractor("ganstab-probe", ["probe"])


@pytest.mark.parametrize("conditional", [False, True])
def test_torch_fidelity_generator_input(tmp_path: Path, conditional: bool) -> None:
    run = _export(tmp_path / "run", "digits", (1, 8, 8), num_classes=10 if conditional else 0)
    module = load_generator_module(run, **QUIET)
    # torch-fidelity's own code; a torchvision test double stands in where torchvision cannot load
    with fidelity_imported() as fidelity:
        _check_fidelity_input(fidelity, _library("torch_fidelity.utils"), module, conditional)


def _check_fidelity_input(fidelity: Any, utils: Any, module: Any, conditional: bool) -> None:
    """Drive torch-fidelity's generator path with our exported module and a probe; check what the probe saw."""
    # labels are drawn by our wrapper: torch-fidelity 0.4's own label path (num_classes > 0) uses np.int
    wrapped = fidelity.GenerativeModelModuleWrapper(module.uint8(class_index=2 if conditional else None),
                                                    module.latent_dim, "normal", 0)
    assert utils.prepare_input_from_descriptor({"input": wrapped}) is wrapped  # calculate_metrics accepts it
    probe = _Probe()
    extractor = _fidelity_extractor(fidelity, probe)
    features = utils.get_featuresdict_from_generative_model(wrapped, extractor, num_samples=10, batch_size=4,
                                                            cuda=False, rng_seed=0, verbose=False)
    assert [tuple(b.shape) for b in probe.batches] == [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)]
    assert all(b.dtype == torch.uint8 for b in probe.batches)
    assert features["probe"].shape == (10, 2)
    # the latents torch-fidelity drew (its "normal" source, seeded) reproduce the batches exactly
    noise = np.random.RandomState(0)
    first = torch.from_numpy(noise.randn(4, LATENT).astype(np.float32))
    labels = torch.full((4,), 2) if conditional else None
    with torch.no_grad():
        assert torch.equal(probe.batches[0], to_uint8_rgb(module(first, labels)))


def test_clean_fid_gen_function_input(tmp_path: Path) -> None:
    fid = _library("cleanfid.fid")
    module = load_generator_module(_export(tmp_path / "run", "digits", (1, 8, 8)), **QUIET)
    gen = module.uint8()
    for mode, side in (("clean", 299), ("legacy_tensorflow", 8)):
        probe = _Probe()
        torch.manual_seed(3)
        feats = fid.get_model_features(gen, probe.features, mode=mode, z_dim=module.latent_dim, num_gen=10,
                                       batch_size=4, device=torch.device("cpu"), verbose=False)
        assert feats.shape == (10, 2)
        assert [tuple(b.shape) for b in probe.batches] == [(4, 3, side, side)] * 3  # clean-fid fills whole batches
        for b in probe.batches:
            assert 0.0 <= float(b.min()) and float(b.max()) <= 255.0
        torch.manual_seed(3)
        expected = gen(torch.randn(4, module.latent_dim))
        if mode == "legacy_tensorflow":  # handed over unresized: exactly our uint8 images
            assert probe.batches[0].dtype == torch.uint8 and torch.equal(probe.batches[0], expected)
        else:  # PIL bicubic to 299 x 299 per channel, float32 in [0, 255]: the three channels agree, means agree
            assert probe.batches[0].dtype == torch.float32
            torch.testing.assert_close(probe.batches[0][:, 1], probe.batches[0][:, 0], rtol=0, atol=0)
            torch.testing.assert_close(probe.batches[0].mean(dim=(1, 2, 3)), expected.float().mean(dim=(1, 2, 3)),
                                       rtol=0, atol=3.0)
