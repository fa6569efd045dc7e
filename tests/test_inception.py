"""Inception metrics through torch-fidelity (`eval.features=inception`): the one-line refusals without the library or
the weights (always run), and the real library's plumbing with a weights file of its layout made here (skipped,
saying why, where torch-fidelity cannot be imported: e.g. a CPU-only torch beside PyPI's CUDA torchvision)."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ganstab.cli import main
from ganstab.config import DataConfig
from ganstab.data import make_dataset
from ganstab.errors import ConfigError
from ganstab.metrics import RunEvaluator
from ganstab.metrics.inception import (INCEPTION_ENV, RESIZE, InceptionFeatures, check_inception, import_fidelity,
                                       inception_scores, weights_digest, weights_path)
from ganstab.metrics.stats import frechet_distance
from ganstab.pipeline import load_config
from ganstab.rundir import read_jsonl
from ganstab.sampling import to_uint8_rgb

HOW = ("on a machine with internet download torch-fidelity's weights-inception-2015-12-05-6726825d.pth (its v0.2.0 "
       "release) and pass its path with {flag} or GANSTAB_INCEPTION_WEIGHTS=PATH")
NO_FILE = "Inception metrics need the InceptionV3 weights file and ganstab never downloads; " + HOW
NO_LIBRARY = ("{asked} needs torch-fidelity, which cannot be imported here (ModuleNotFoundError: import of "
              "torch_fidelity halted; None in sys.modules); install it with pip install 'ganstab[fidelity]' beside "
              "a torchvision built for your torch, or use the default features (ganstab)")
TRAIN = ["train", "train.steps=20", "train.batch_size=16", "log.progress=false", "eval.every=0", "train.device=cpu"]


@pytest.fixture
def no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch_fidelity unimportable, the same way on every machine."""
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)


@pytest.fixture
def stand_in_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """An importable (empty) torch_fidelity, so that the checks after the import are reached, and no weights in the
    environment."""
    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))
    monkeypatch.delenv(INCEPTION_ENV, raising=False)


def _layout(fc_rows: int = 1008) -> dict[str, torch.Tensor]:
    """The tensors ganstab checks, with torch-fidelity's shapes (fc with `fc_rows` rows)."""
    return {"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3), "fc.weight": torch.zeros(fc_rows, 2048),
            "fc.bias": torch.zeros(fc_rows)}


def _one_error_line(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run the CLI, expect exit 2 and return its one stderr line (no traceback)."""
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out
    return lines[0]


# ------------------------------------------------------------------------------------------- without the library

def test_import_failure_is_one_line_with_the_install(no_library: None) -> None:
    with pytest.raises(ConfigError) as caught:
        import_fidelity()
    assert str(caught.value) == NO_LIBRARY.format(asked="eval.features=inception")


def test_train_refuses_before_anything_is_written(no_library: None, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    line = _one_error_line(capsys, [*TRAIN, "eval.features=inception", f"out={run}"])
    assert line == "ganstab: error: " + NO_LIBRARY.format(asked="eval.features=inception")
    assert not run.exists()


def test_missing_weights_say_how_to_get_them(stand_in_library: None, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    line = _one_error_line(capsys, [*TRAIN, "eval.features=inception", f"out={run}"])
    assert line == "ganstab: error: " + NO_FILE.format(flag="eval.inception_weights=PATH")
    assert not run.exists()


def test_a_path_that_is_not_a_file(stand_in_library: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(ConfigError) as caught:
        weights_path(str(missing))
    assert str(caught.value) == (f"Inception weights {str(missing)!r} (from eval.inception_weights) does not exist; "
                                 + HOW.format(flag="eval.inception_weights=PATH"))
    monkeypatch.setenv(INCEPTION_ENV, str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        weights_path(None)
    assert str(caught.value) == (f"Inception weights {str(tmp_path)!r} (from GANSTAB_INCEPTION_WEIGHTS) is a folder; "
                                 + HOW.format(flag="eval.inception_weights=PATH"))


def test_the_environment_variable_names_the_file(stand_in_library: None, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "w.pth"
    torch.save(_layout(), file)
    monkeypatch.setenv(INCEPTION_ENV, str(file))
    assert weights_path(None) == file
    assert check_inception(None) == file
    given = tmp_path / "given.pth"
    torch.save(_layout(), given)
    assert weights_path(str(given)) == given  # a path given wins over the environment


def test_weights_of_another_layout_are_refused(stand_in_library: None, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save(_layout(fc_rows=1000), wrong)  # torchvision's ImageNet head has 1000 classes, the TF graph's 1008
    with pytest.raises(ConfigError) as caught:
        weights_digest(wrong)
    assert str(caught.value) == (f"Inception weights {str(wrong)!r} are not torch-fidelity's InceptionV3: fc.weight "
                                 "has shape (1000, 2048), expected (1008, 2048); pass torch-fidelity's "
                                 "weights-inception-2015-12-05-6726825d.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ConfigError) as caught:
        weights_digest(text)
    message = str(caught.value)
    assert message.startswith(f"Inception weights {str(text)!r} cannot be read as a PyTorch state dict (")
    assert message.endswith("); pass torch-fidelity's weights-inception-2015-12-05-6726825d.pth")
    assert "\n" not in message


def test_weights_are_named_by_their_sha256(stand_in_library: None, tmp_path: Path) -> None:
    file = tmp_path / "w.pth"
    torch.save(_layout(), file)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    assert weights_digest(file) == digest
    assert InceptionFeatures(str(file)).name == "inception-v3-compat-" + digest[:12]


def test_points_are_refused(stand_in_library: None) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, ["data.name=ring8", "eval.features=inception"], "toy")
    assert str(caught.value) == ("eval.features=inception scores images, but ring8 holds 2-D points; remove "
                                 "eval.features")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny digits run with ganstab's features (no evaluation: only its files matter here)."""
    run = tmp_path_factory.mktemp("digits") / "run"
    assert main([*TRAIN, "eval.final=false", f"out={run}"]) == 0
    return run


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under a folder and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("library", ["missing", "present"])
def test_eval_run_refuses_and_keeps_the_run(library: str, digits_run: Path, capsys,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None if library == "missing" else types.ModuleType("tf"))
    before = _files(digits_run)
    line = _one_error_line(capsys, ["eval", "--run", str(digits_run), "--features", "inception"])
    expected = (NO_LIBRARY.format(asked="--features inception") if library == "missing"
                else NO_FILE.format(flag="--inception-weights PATH"))
    assert line == "ganstab: error: " + expected
    assert _files(digits_run) == before


def test_eval_samples_refuses_with_one_line(no_library: None, tmp_path: Path, capsys) -> None:
    samples = tmp_path / "fakes.npy"
    np.save(samples, np.zeros((4, 1, 8, 8), dtype=np.uint8))
    argv = ["eval", "--samples", str(samples), "--against", "digits", "--features", "inception"]
    line = _one_error_line(capsys, [*argv, "--data", "digits", "--json", str(tmp_path / "x.json")])
    assert line == ("ganstab: error: --data sets ganstab's evaluator network, which --features inception does not "
                    "use; drop it")
    line = _one_error_line(capsys, [*argv, "--json", str(tmp_path / "x.json")])
    assert line == "ganstab: error: " + NO_LIBRARY.format(asked="--features inception")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fakes.npy"]


def test_eval_flags_are_checked(capsys, tmp_path: Path) -> None:
    line = _one_error_line(capsys, ["eval", "--run", str(tmp_path), "--features", "clip"])
    assert line == "ganstab: error: --features must be ganstab or inception, got 'clip'"
    line = _one_error_line(capsys, ["eval", "--run", str(tmp_path), "--features", "ganstab", "--inception-weights",
                                    "w.pth"])
    assert line == "ganstab: error: --inception-weights goes with --features inception; drop one of them"


# ------------------------------------------------------------------------------------------- with the real library

def _fidelity() -> Any:
    """torch_fidelity, or a visible skip saying why it cannot be imported here."""
    try:
        return importlib.import_module("torch_fidelity")
    except Exception as exc:  # a torchvision built for another torch raises RuntimeError, not ImportError
        pytest.skip(f"torch_fidelity is not importable here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                    "install the extra: pip install 'ganstab[fidelity]' with a torchvision that matches torch")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file in the library's own format (its InceptionV3's state dict, saved by torch.save), filled with
    seeded He-scaled values: meaningless, but the features vary from image to image."""
    fidelity = _fidelity()
    module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    with pytest.MonkeyPatch.context() as patch:  # build the network without any weights to read its layout
        patch.setattr(module, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *args, **kwargs: None)
        layout = fidelity.FeatureExtractorInceptionV3("layout", ["2048"]).state_dict()
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, tensor in layout.items():
        if name.endswith(("running_var", "bn.weight")):
            state[name] = torch.ones_like(tensor)
        elif name.endswith(("running_mean", "bn.bias")) or not tensor.is_floating_point():
            state[name] = torch.zeros_like(tensor)
        elif tensor.dim() >= 2:
            state[name] = torch.randn(tensor.shape, generator=gen) * math.sqrt(2.0 / tensor[0].numel())
        else:
            state[name] = torch.randn(tensor.shape, generator=gen)
    file = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(state, file)
    return file


def _images(seed: int, n: int = 8, scale: float = 1.0) -> torch.Tensor:
    """n gray 16 x 16 images in [-1, 1]."""
    return (torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * scale


@pytest.fixture(scope="module")
def features(weights: Path) -> tuple[InceptionFeatures, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The extractor over the test's weights and the features of 8 real and 8 generated images (extracted once)."""
    inception = InceptionFeatures(str(weights))
    return inception, inception.features(_images(1)), inception.features(_images(2, scale=0.5))


def test_ganstab_fd_equals_the_library_fid(features) -> None:
    _, (real_pool, _), (fake_pool, fake_logits) = features
    assert real_pool.shape == (8, 2048) and fake_logits.shape == (8, 1008)
    scores = inception_scores(real_pool, fake_pool, fake_logits)
    assert set(scores) == {"fd", "kid", "kid_std", "is", "precision", "recall"}
    assert scores["fd"] > 1.0  # distinct sets: not a zero that any two numbers would match
    torch.testing.assert_close(frechet_distance(real_pool, fake_pool), scores["fd"], rtol=1e-6, atol=0.0)


def test_features_are_the_ones_the_library_extracts_itself(features, weights: Path) -> None:
    fidelity = _fidelity()
    inception, (real_pool, _), (fake_pool, _) = features
    dataset = type("Pixels", (torch.utils.data.Dataset,), {"__init__": lambda self, x: setattr(self, "x", x),
                                                           "__len__": lambda self: len(self.x),
                                                           "__getitem__": lambda self, i: self.x[i]})
    theirs = fidelity.calculate_metrics(input1=dataset(to_uint8_rgb(_images(2, scale=0.5))),
                                        input2=dataset(to_uint8_rgb(_images(1))), fid=True, cuda=False, cache=False,
                                        verbose=False, save_cpu_ram=True, batch_size=8,
                                        feature_extractor_weights_path=str(weights))
    torch.testing.assert_close(theirs["frechet_inception_distance"], frechet_distance(real_pool, fake_pool),
                               rtol=1e-5, atol=0.0)


def test_scores_of_known_features() -> None:
    _fidelity()
    real = torch.randn(40, 6, generator=torch.Generator().manual_seed(3))
    same = inception_scores(real, real, torch.zeros(40, 1008))
    torch.testing.assert_close(same["fd"], 0.0, rtol=0.0, atol=1e-9)
    assert (same["precision"], same["recall"], same["is"]) == (1.0, 1.0, 1.0)  # constant logits: p(y|x) = p(y)
    far = inception_scores(real, real + 100.0, torch.zeros(40, 1008))
    # equal covariances: FD = |shift|^2 (features are float32, so real + 100 carries ~1e-7 relative rounding)
    torch.testing.assert_close(far["fd"], 6 * 100.0 ** 2, rtol=1e-6, atol=0.0)
    assert (far["precision"], far["recall"]) == (0.0, 0.0) and far["kid"] > 1.0


def test_the_test_line_is_scored_by_inception(features, tmp_path: Path) -> None:
    inception = features[0]
    data = make_dataset(DataConfig(name="digits"))
    evaluator = RunEvaluator(data, 8, torch.device("cpu"), tmp_path, 1, echo=lambda _m: None, val_n=8,
                             inception=inception)
    fake = torch.nn.functional.interpolate(_images(2, scale=0.5), size=tuple(data.shape[-2:]))
    scores = evaluator.score_samples(fake, split="test")
    assert set(scores) == {"fd", "kid", "kid_std", "is", "precision", "recall"}
    provenance = evaluator.provenance("test")
    assert provenance == {"split": "test", "reference_n": 8, "n": 8, "features": inception.name, "resize": RESIZE}
    real_pool = evaluator.split_reference("test").inception
    assert real_pool.shape == (8, 2048)
    fake_pool = inception.features(fake)[0]
    torch.testing.assert_close(scores["fd"], frechet_distance(real_pool, fake_pool), rtol=1e-6, atol=0.0)
    validation = evaluator.score_samples(data.reference("validation", 8, 8), split="validation")
    assert "class_kl" in validation and evaluator.provenance("validation")["features"].startswith(
        "ganstab-evaluator-")


def test_eval_run_writes_the_inception_json_beside_the_evaluators(digits_run: Path, weights: Path, capsys) -> None:
    before = _files(digits_run)
    assert main(["eval", "--run", str(digits_run), "--n", "8", "--features", "inception", "--inception-weights",
                 str(weights)]) == 0
    written = digits_run / "eval-n8-seed3-inception.json"
    record = json.loads(written.read_text())
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert {k: record[k] for k in ("split", "reference_n", "n", "features", "resize")} == {
        "split": "test", "reference_n": 8, "n": 8, "features": "inception-v3-compat-" + digest[:12], "resize": RESIZE}
    assert set(record) - {"seed", "step", "split", "reference_n", "n", "features", "resize"} == {
        "fd", "kid", "kid_std", "is", "precision", "recall"}
    assert _files(digits_run) == {**before, "eval-n8-seed3-inception.json": written.read_bytes()}
    assert f"inception-v3-compat-{digest[:12]}, step 20" in capsys.readouterr().out


def test_a_run_logs_its_test_line_with_inception_provenance(weights: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main([*TRAIN, "eval.n=8", f"eval.cache_dir={tmp_path / 'cache'}", "eval.features=inception",
                 f"eval.inception_weights={weights}", f"out={run}"]) == 0
    lines = [line for line in read_jsonl(run / "metrics.jsonl") if "eval_split" in line]
    validation, test = [line for line in lines if line.get("final")]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (validation["eval_split"], test["eval_split"]) == ("validation", "test")
    assert validation["eval_features"].startswith("ganstab-evaluator-") and validation["eval_resize"] == "none"
    assert {k: test[k] for k in ("eval_reference_n", "eval_n", "eval_features", "eval_resize")} == {
        "eval_reference_n": 8, "eval_n": 8, "eval_features": "inception-v3-compat-" + digest[:12], "eval_resize": RESIZE}
    assert {k for k in test if k.startswith("eval_")} - {"eval_split", "eval_reference_n", "eval_n", "eval_features",
                                                         "eval_resize", "eval_time"} == {
        "eval_fd", "eval_kid", "eval_kid_std", "eval_is", "eval_precision", "eval_recall"}
