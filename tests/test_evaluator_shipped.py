"""The evaluators shipped for digits and Fashion-MNIST: files, data hash, accuracy, use at load, fallback to
training, and the evaluator's version and weights hash in `eval_features` (issue #27)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ganstab.config import DataConfig
from ganstab.data import FASHION_MNIST_PATH, make_dataset
from ganstab.errors import ConfigError
from ganstab.metrics.evaluator import EVALUATOR_VERSION, Evaluator, EvaluatorSettings, train_evaluator
from ganstab.metrics.run_eval import RunEvaluator
from ganstab.metrics.shipped import (RECIPES, WEIGHTS_DIR, data_digest, shipped_evaluator,
                                     shipped_paths)
from ganstab.metrics.stacked import StackedEvaluator
from ganstab.pipeline import load_config
from ganstab.rundir import sha256_file

HAVE_FASHION = any((Path(FASHION_MNIST_PATH) / name).is_file()
                   for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"))
needs_fashion = pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST IDX files not in {FASHION_MNIST_PATH} "
                                                              "(apt-get install dataset-fashion-mnist)")
CPU = torch.device("cpu")


def _meta(name: str) -> dict:
    return json.loads(shipped_paths(name)[1].read_text(encoding="utf-8"))


def _accuracy(evaluator: Evaluator, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((evaluator.class_probs(images).argmax(dim=1) == labels).double().mean())


def _quiet_scorer(data, cache: Path, messages: list[str], **kwargs) -> RunEvaluator:
    return RunEvaluator(data, 100, CPU, cache, 1, echo=messages.append, **kwargs)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_shipped_files_record_their_recipe_hashes_and_command(name: str) -> None:
    weights, side = shipped_paths(name)
    meta = _meta(name)
    assert weights.parent == WEIGHTS_DIR and side.is_file()
    assert sha256_file(weights) == meta["weights_sha256"]
    assert weights.stat().st_size < 1_000_000  # small: well under 1 MB of fp32 weights
    assert meta["command"] == f"python benchmarks/train_evaluator.py --data {name}"
    assert meta["settings"]["version"] == EVALUATOR_VERSION
    recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in RECIPES[name].items()}
    assert {k: meta["settings"][k] for k in recipe} == recipe
    assert {"date", "machine", "commit", "data_sha256", "test_accuracy"} <= set(meta)
    loaded = Evaluator.load(weights)
    assert loaded.weights_sha256() == meta["weights_sha256"]  # the hash of the weights, not of the data


def test_shipped_digits_evaluator_matches_the_data_and_its_stated_accuracy() -> None:
    train, labels, test, test_labels = make_dataset(DataConfig(name="digits"), 0).evaluator_data()
    meta = _meta("digits")
    assert data_digest(train, labels, test, test_labels) == meta["data_sha256"]
    check = shipped_evaluator("digits", train, labels, test, test_labels)
    assert check.reason == "" and check.evaluator is not None
    accuracy = _accuracy(check.evaluator, test, test_labels)
    assert accuracy == pytest.approx(358 / 360, abs=1e-12)  # 2 of the 360 test images wrong
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-12)


@needs_fashion
def test_shipped_fashion_mnist_evaluator_matches_the_data_and_reaches_93_percent() -> None:
    train, labels, test, test_labels = make_dataset(DataConfig(name="fashion-mnist"), 0).evaluator_data()
    meta = _meta("fashion-mnist")
    check = shipped_evaluator("fashion-mnist", train, labels, test, test_labels)
    assert check.evaluator is not None, check.reason
    accuracy = _accuracy(check.evaluator, test, test_labels)
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-12)
    assert 0.93 <= accuracy <= 1.0
    assert test.shape[0] == 10_000 and meta["train_images"] == 60_000


def test_auto_uses_the_shipped_digits_evaluator_without_training_or_a_cache_file(tmp_path: Path) -> None:
    messages: list[str] = []
    scorer = _quiet_scorer(make_dataset(DataConfig(name="digits"), 0), tmp_path, messages)
    sha = _meta("digits")["weights_sha256"]
    assert messages == [f"evaluator: shipped classifier, version {EVALUATOR_VERSION}, weights sha256 {sha[:12]}, "
                        f"test accuracy 0.9944 (no training)"]
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing cached
    assert scorer.features_name() == f"ganstab-evaluator-v{EVALUATOR_VERSION}-classifier-{sha[:12]}"
    assert scorer.provenance("validation")["features"] == scorer.features_name()


def _other_digits():
    """Digits whose first training image differs in one pixel: other files than the shipped evaluator's."""
    data = make_dataset(DataConfig(name="digits"), 0)
    train = data.train.clone()
    train[0, 0, 0, 0] = -train[0, 0, 0, 0] + 0.5
    return dataclasses.replace(data, train=train), data_digest(train, data.labels, data.test, data.test_labels)


def test_other_data_fall_back_to_training_with_one_line(tmp_path: Path) -> None:
    data, digest = _other_digits()
    messages: list[str] = []
    scorer = _quiet_scorer(data, tmp_path, messages)
    shipped = _meta("digits")
    assert messages[0] == (f"evaluator: the shipped digits evaluator was made for other data (data sha256 "
                           f"{digest[:12]}, shipped for {shipped['data_sha256'][:12]}: other files or data "
                           f"settings); training one instead")
    assert messages[1].startswith("evaluator: epoch 1/1: loss ")
    assert messages[-1].startswith("evaluator: trained in ") and ", test accuracy " in messages[-1]
    assert len(list(tmp_path.glob("evaluator-digits-*.safetensors"))) == 1
    trained_sha = scorer.evaluator.weights_sha256()
    assert trained_sha != shipped["weights_sha256"]
    assert scorer.features_name() == f"ganstab-evaluator-v{EVALUATOR_VERSION}-classifier-{trained_sha[:12]}"


def test_shipped_is_an_error_for_other_data_and_train_always_trains(tmp_path: Path) -> None:
    data, digest = _other_digits()
    with pytest.raises(ConfigError) as raised:
        _quiet_scorer(data, tmp_path, [], evaluator="shipped")
    assert str(raised.value) == (
        f"eval.evaluator=shipped: the shipped digits evaluator was made for other data (data sha256 {digest[:12]}, "
        f"shipped for {_meta('digits')['data_sha256'][:12]}: other files or data settings); set eval.evaluator=auto "
        f"or train to train one")
    messages: list[str] = []
    scorer = _quiet_scorer(make_dataset(DataConfig(name="digits"), 0), tmp_path, messages, evaluator="train")
    assert messages[0] == "evaluator: epoch 1/1: loss " + messages[0].split("loss ")[1]  # trains at once
    assert messages[-1].startswith("evaluator: trained in ")
    assert scorer.evaluator.settings.epochs == 1 and scorer.evaluator.settings.widths == (16, 32, 64)


def test_shipped_is_an_error_for_data_with_no_shipped_evaluator(tmp_path: Path) -> None:
    images = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    digits = make_dataset(DataConfig(name="digits"), 0)
    data = dataclasses.replace(digits, name="mine", train=images, labels=None, test=None, test_labels=None)
    with pytest.raises(ConfigError, match=r"^eval\.evaluator=shipped: no evaluator is shipped for 'mine' \(shipped: "
                                          r"digits, fashion-mnist\); set eval.evaluator=auto or train to train one$"):
        _quiet_scorer(data, tmp_path, [], evaluator="shipped")


def test_a_bad_evaluator_choice_is_one_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^config key 'eval\.evaluator': Input should be 'auto', 'shipped' or "
                                          r"'train', got 'inception'$"):
        load_config(overrides=["eval.evaluator=inception"])


def test_eval_features_names_version_and_weights_and_changes_with_the_weights(tmp_path: Path) -> None:
    images = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.arange(40) % 2
    first = train_evaluator(images, labels, epochs=1, batch_size=16)
    first.save(tmp_path / "first")
    assert first.weights_sha256() == sha256_file(tmp_path / "first.safetensors")
    before = first.weights_sha256()
    with torch.no_grad():
        first.network.encoder.embed.bias[0] += 1.0
    assert first.weights_sha256() != before
    scorer = RunEvaluator.__new__(RunEvaluator)
    scorer.evaluator, scorer.inception = first, None
    assert scorer.features_name() == f"ganstab-evaluator-v{EVALUATOR_VERSION}-classifier-{first.weights_sha256()[:12]}"
    scorer.evaluator = StackedEvaluator(first, 3)
    assert scorer.features_name() == (f"stacked-ganstab-evaluator-v{EVALUATOR_VERSION}-classifier-"
                                      f"{first.weights_sha256()[:12]}")


def test_shift_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match=r"^shift must be >= 0 pixels, got -1$"):
        EvaluatorSettings(kind="classifier", in_channels=1, height=8, width=8, num_classes=2, shift=-1)


@needs_fashion
def test_the_stacked_evaluator_uses_the_shipped_fashion_mnist_weights(tmp_path: Path) -> None:
    messages: list[str] = []
    scorer = _quiet_scorer(make_dataset(DataConfig(name="stacked-fashion-mnist"), 0), tmp_path, messages)
    sha = _meta("fashion-mnist")["weights_sha256"]
    assert isinstance(scorer.evaluator, StackedEvaluator)
    assert scorer.evaluator.channel_evaluator.weights_sha256() == sha
    assert scorer.features_name() == f"stacked-ganstab-evaluator-v{EVALUATOR_VERSION}-classifier-{sha[:12]}"
    assert list(tmp_path.iterdir()) == [] and "(no training)" in messages[0]


def test_the_shipped_files_are_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '[tool.setuptools.package-data]\n' in pyproject  # read as text: tomllib needs Python 3.11
    assert '\n"ganstab.metrics" = ["weights/*.safetensors", "weights/*.json"]\n' in pyproject
    assert sorted(path.name for path in WEIGHTS_DIR.iterdir()) == [
        "digits.json", "digits.safetensors", "fashion-mnist.json", "fashion-mnist.safetensors"]
