"""Inception metrics through torch-fidelity (`eval.features=inception`): the one-line refusals without the library or
the weights (always run), and the real library's plumbing with a random weights file of its layout, made once per
session (skipped, saying why, where torch-fidelity is not installed). Where `import torch_fidelity` fails only
because torchvision is missing or cannot load (a CPU-only torch beside PyPI's CUDA torchvision), those tests run
torch-fidelity's real code (its InceptionV3 extractor, `calculate_metrics` and its FID/KID/IS/PRC functions) with a
test double for torchvision in sys.modules (`tests/_torchvision_double.py`: only the names torch-fidelity imports,
each raising RuntimeError if used), and the pytest report says so in one line; a torchvision that loads is used as
is."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import math
import re
import sys
import types
from pathlib import Path
from types import ModuleType
from typing import Iterator

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

import _torchvision_double
from _torchvision_double import fidelity_imported, make_double

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


# ------------------------------------------------------------------------------------------- the torchvision double

def _without(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Every sys.modules entry of a top-level package out for one test (monkeypatch puts them back)."""
    for name in [name for name in sys.modules if name.split(".", 1)[0] == package]:
        monkeypatch.delitem(sys.modules, name)


def _installed() -> str:
    """torch-fidelity's installed version, or a skip saying why these tests need it."""
    try:
        return importlib.metadata.version("torch-fidelity")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("torch-fidelity is not installed: pip install --no-deps torch-fidelity==0.4.0 (as .ci/run does)")


def test_the_double_holds_only_what_torch_fidelity_imports_and_refuses_any_use() -> None:
    double = make_double()
    assert sorted(double) == ["torchvision", "torchvision.datasets", "torchvision.transforms",
                              "torchvision.transforms.functional"]
    assert double["torchvision"].transforms.functional is double["torchvision.transforms.functional"]
    assert sorted(name for name in vars(double["torchvision.datasets"]) if not name.startswith("_")) == [
        "CIFAR10", "CIFAR100", "STL10"]
    with pytest.raises(RuntimeError) as caught:
        double["torchvision.datasets"].CIFAR10("root", download=True)
    assert str(caught.value) == ("torchvision test double: torchvision.datasets.CIFAR10 is not available here "
                                 "(torchvision cannot be imported, so the tests put a stand-in into sys.modules that "
                                 "holds only the names torch-fidelity imports)")
    for module, name in [("torchvision", "models"), ("torchvision.transforms", "Resize"),
                         ("torchvision.transforms.functional", "normalize")]:
        with pytest.raises(RuntimeError, match=f"^torchvision test double: {re.escape(module)}.{name} is not "):
            getattr(double[module], name)
    assert not hasattr(double["torchvision"], "__wrapped__")  # dunder look-ups (inspect, copy) see a plain module


def test_the_double_stands_in_while_torchvision_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    version = _installed()
    monkeypatch.setattr(_torchvision_double, "USED", {})
    _without(monkeypatch, "torch_fidelity")
    _without(monkeypatch, "torchvision")
    monkeypatch.setitem(sys.modules, "torchvision", None)  # torchvision cannot be imported, whatever is installed
    with fidelity_imported() as fidelity:
        datasets = importlib.import_module("torch_fidelity.datasets")
        assert datasets.CIFAR10 is sys.modules["torchvision.datasets"].CIFAR10  # the double's
        assert fidelity.FeatureExtractorInceptionV3.__module__ == "torch_fidelity.feature_extractor_inceptionv3"
    assert sys.modules["torchvision"] is None and "torch_fidelity" not in sys.modules  # as before the block
    assert list(_torchvision_double.USED) == [
        f"torchvision test double: torch-fidelity {version}'s own code ran (InceptionV3 extractor, FID/KID/IS/PRC) "
        "with a stand-in torchvision in sys.modules, because torchvision cannot be imported here "
        "(ModuleNotFoundError: import of torchvision halted; None in sys.modules)"]


def test_a_torchvision_that_loads_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed()
    monkeypatch.setattr(_torchvision_double, "USED", {})
    _without(monkeypatch, "torch_fidelity")
    _without(monkeypatch, "torchvision")
    loadable = make_double()  # any torchvision that imports will do: these modules, put in place beforehand
    for name, module in loadable.items():
        monkeypatch.setitem(sys.modules, name, module)
    with fidelity_imported():
        assert importlib.import_module("torch_fidelity.datasets").CIFAR10 is loadable["torchvision.datasets"].CIFAR10
        assert sys.modules["torchvision"] is loadable["torchvision"]
    assert _torchvision_double.USED == {} and sys.modules["torchvision"] is loadable["torchvision"]


def test_without_torch_fidelity_the_library_tests_skip_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "torch_fidelity")
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # not installed, the same way on every machine
    with pytest.raises(pytest.skip.Exception) as caught, fidelity_imported():
        pass
    assert caught.value.msg == ("torch-fidelity is not installed, so its real-library tests cannot run: "
                                "pip install --no-deps torch-fidelity==0.4.0 (as .ci/run does)")


def test_a_torch_fidelity_broken_for_another_reason_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed()
    _without(monkeypatch, "torch_fidelity")
    monkeypatch.setitem(sys.modules, "torch_fidelity.metric_fid", None)  # one of its own modules is missing
    for name, module in make_double().items():  # and torchvision loads, so the double cannot help
        monkeypatch.setitem(sys.modules, name, module)
    with pytest.raises(pytest.fail.Exception) as caught, fidelity_imported():
        pass
    assert caught.value.msg == ("torch_fidelity is installed but cannot be imported (ModuleNotFoundError: import of "
                                "torch_fidelity.metric_fid halted; None in sys.modules), and torchvision loads, so "
                                "the torchvision test double cannot help")
    assert sys.modules["torch_fidelity.metric_fid"] is None and "torch_fidelity" not in sys.modules


# ------------------------------------------------------------------------------------------- with the real library

@pytest.fixture(scope="module")
def fidelity() -> Iterator[ModuleType]:
    """The real torch_fidelity for this module's library tests: with the torchvision test double in sys.modules where
    torchvision alone keeps it from importing, removed again after the module; a skip saying why without it."""
    with fidelity_imported() as module:
        yield module


#: Images per set: the fewest that precision/recall accept (k = 3 nearest neighbours besides the sample itself)
N = 4
#: Samples per set where ganstab's own evaluator scores too (validation lines): density/coverage use k = 5
EVAL_N = 6
#: The last block's six branches (Mixed_7c: 320 + 4 x 384 + 192 = 2,048 pool features, concatenated in this order)
LAST_BRANCHES = ("branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool")
#: Channels of each that the test weights leave alive: at most 6 x 8 = 48 of the 2,048 pool features are non-zero
LIVE = 8


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file in the library's own format (its InceptionV3's state dict, saved by torch.save), filled with
    seeded He-scaled values: meaningless, but the features vary from image to image. Made once per session.

    All but LIVE channels of each last-block branch are dead (batch-norm weight 0: exactly 0 after the ReLU). The
    library's FID takes NumPy's general `eigvals` of a 2,048 x 2,048 product, about 22 s of CPU for dense features;
    LAPACK's balancing sets the zero rows and columns of dead features aside, so it takes about 1 s here. Dead
    features are also what ganstab's FD must handle (singular covariances)."""
    with fidelity_imported() as fidelity, pytest.MonkeyPatch.context() as patch:
        module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
        # build the network without any weights to read its layout
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
    for branch in LAST_BRANCHES:
        state[f"Mixed_7c.{branch}.bn.weight"][LIVE:] = 0.0
    file = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(state, file)
    return file


def _images(seed: int, n: int = N, scale: float = 1.0) -> torch.Tensor:
    """n gray 16 x 16 images in [-1, 1]."""
    return (torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * scale


@pytest.fixture(scope="module")
def features(fidelity: ModuleType, weights: Path) -> tuple[InceptionFeatures, tuple[torch.Tensor, ...],
                                                          tuple[torch.Tensor, ...]]:
    """The extractor over the test's weights and the features of N real and N generated images (extracted once)."""
    inception = InceptionFeatures(str(weights))
    return inception, inception.features(_images(1)), inception.features(_images(2, scale=0.5))


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """The pixel rule written out: uint8 round((x + 1) * 127.5) (halves to even), gray repeated on 3 channels."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).repeat(1, 3, 1, 1)


@pytest.fixture(scope="module")
def library_metrics(fidelity: ModuleType, weights: Path) -> dict[str, float]:
    """The library on its own: `calculate_metrics` reading the same images as `features`, made uint8 here (its own
    loader, extractor and FID, KID and IS; KID subsets and IS splits of N, as ganstab uses min(default, n))."""
    dataset = type("Pixels", (torch.utils.data.Dataset,), {"__init__": lambda self, x: setattr(self, "x", x),
                                                           "__len__": lambda self: len(self.x),
                                                           "__getitem__": lambda self, i: self.x[i]})
    return fidelity.calculate_metrics(input1=dataset(_pixels(_images(2, scale=0.5))),
                                      input2=dataset(_pixels(_images(1))), fid=True, kid=True, isc=True,
                                      kid_subset_size=N, isc_splits=N, cuda=False, cache=False, verbose=False,
                                      save_cpu_ram=True, batch_size=N, feature_extractor_weights_path=str(weights))


def test_ganstab_fd_equals_the_library_fid(fidelity: ModuleType, features, library_metrics: dict[str, float]) -> None:
    _, (real_pool, _), (fake_pool, fake_logits) = features
    assert real_pool.shape == (N, 2048) and fake_logits.shape == (N, 1008)
    assert 0 < int((real_pool != 0).any(dim=0).sum()) <= len(LAST_BRANCHES) * LIVE  # the weights' dead features
    fid = library_metrics[fidelity.KEY_METRIC_FID]
    assert fid > 0.1  # distinct sets: not a zero that any two numbers would match
    # ganstab's pixels, features (InceptionFeatures) and FD (stats.frechet_distance) against the library's own
    torch.testing.assert_close(frechet_distance(real_pool, fake_pool), fid, rtol=1e-5, atol=0.0)


def test_scores_are_the_librarys_over_ganstabs_features(fidelity: ModuleType, features,
                                                       library_metrics: dict[str, float]) -> None:
    _, (real_pool, _), (fake_pool, fake_logits) = features
    scores = inception_scores(real_pool, fake_pool, fake_logits)
    assert set(scores) == {"fd", "kid", "kid_std", "is", "precision", "recall"}
    theirs = {"fd": fidelity.KEY_METRIC_FID, "kid": fidelity.KEY_METRIC_KID_MEAN, "is": fidelity.KEY_METRIC_ISC_MEAN}
    torch.testing.assert_close({ours: scores[ours] for ours in theirs},
                               {ours: library_metrics[key] for ours, key in theirs.items()}, rtol=1e-5, atol=0.0)


def test_scores_of_known_features(fidelity: ModuleType) -> None:
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
    evaluator = RunEvaluator(data, N, torch.device("cpu"), tmp_path, 1, echo=lambda _m: None, val_n=EVAL_N,
                             inception=inception)
    fake = torch.nn.functional.interpolate(_images(2, scale=0.5), size=tuple(data.shape[-2:]))
    scores = evaluator.score_samples(fake, split="test")
    assert set(scores) == {"fd", "kid", "kid_std", "is", "precision", "recall"}
    provenance = evaluator.provenance("test")
    assert provenance == {"split": "test", "reference_n": N, "n": N, "features": inception.name, "resize": RESIZE}
    real_pool = evaluator.split_reference("test").inception
    assert real_pool.shape == (N, 2048)
    # the line is the library's scores of the test reference's Inception features against the samples' (and the
    # FD among them is ganstab's: test_ganstab_fd_equals_the_library_fid)
    assert scores == inception_scores(real_pool, *inception.features(fake))
    validation = evaluator.score_samples(data.reference("validation", N, EVAL_N), split="validation")
    assert "class_kl" in validation and evaluator.provenance("validation")["features"].startswith(
        "ganstab-evaluator-")


def test_eval_run_writes_the_inception_json_beside_the_evaluators(fidelity: ModuleType, digits_run: Path, weights: Path,
                                                                  capsys) -> None:
    before = _files(digits_run)
    assert main(["eval", "--run", str(digits_run), "--n", str(N), "--features", "inception", "--inception-weights",
                 str(weights)]) == 0
    written = digits_run / f"eval-n{N}-seed7-inception.json"
    record = json.loads(written.read_text())
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert {k: record[k] for k in ("split", "reference_n", "n", "features", "resize")} == {
        "split": "test", "reference_n": N, "n": N, "features": "inception-v3-compat-" + digest[:12], "resize": RESIZE}
    assert set(record) - {"seed", "step", "split", "reference_n", "n", "features", "resize"} == {
        "fd", "kid", "kid_std", "is", "precision", "recall"}
    assert _files(digits_run) == {**before, written.name: written.read_bytes()}
    assert f"inception-v3-compat-{digest[:12]}, step 20" in capsys.readouterr().out


def test_a_run_logs_its_test_line_with_inception_provenance(fidelity: ModuleType, weights: Path,
                                                            tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main([*TRAIN, f"eval.n={EVAL_N}", f"eval.cache_dir={tmp_path / 'cache'}", "eval.features=inception",
                 f"eval.inception_weights={weights}", f"out={run}"]) == 0
    lines = [line for line in read_jsonl(run / "metrics.jsonl") if "eval_split" in line]
    validation, test = [line for line in lines if line.get("final")]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (validation["eval_split"], test["eval_split"]) == ("validation", "test")
    assert validation["eval_features"].startswith("ganstab-evaluator-") and validation["eval_resize"] == "none"
    assert {k: test[k] for k in ("eval_reference_n", "eval_n", "eval_features", "eval_resize")} == {
        "eval_reference_n": EVAL_N, "eval_n": EVAL_N, "eval_features": "inception-v3-compat-" + digest[:12],
        "eval_resize": RESIZE}
    assert {k for k in test if k.startswith("eval_")} - {"eval_split", "eval_reference_n", "eval_n", "eval_features",
                                                         "eval_resize", "eval_time"} == {
        "eval_fd", "eval_kid", "eval_kid_std", "eval_is", "eval_precision", "eval_recall"}
