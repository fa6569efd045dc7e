"""Tests of the evaluator network, its cache and `evaluate_images`, on scikit-learn's 8x8 digits."""

from __future__ import annotations

import gzip
import json
import math
import time
from pathlib import Path

import numpy as np

import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from torch.testing import assert_close

from ganstab import metrics
from ganstab.metrics import evaluator as evaluator_module

EPOCHS = 10
BATCH = 64
FASHION = Path("/usr/share/datasets/fashion-mnist")


def read_idx_gz(path: Path) -> np.ndarray:
    """Minimal reader for a gzip-compressed unsigned-byte IDX file (magic 0x0000 08 ndim, big-endian dims)."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    assert raw[:3] == b"\x00\x00\x08", f"{path}: not an unsigned-byte IDX file"
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    """Digits scaled to [-1, 1] (pixel values 0..16), split 1347 train / 450 test by a seeded permutation."""
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    labels = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))
    train, test = order[:1347], order[1347:]
    return {"x": images[train], "y": labels[train], "x_test": images[test], "y_test": labels[test]}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evaluator-cache")


@pytest.fixture(scope="module")
def trained(digits: dict[str, torch.Tensor], cache_dir: Path) -> metrics.Evaluator:
    return metrics.load_or_train_evaluator(
        cache_dir, "digits", digits["x"], digits["y"], digits["x_test"], digits["y_test"],
        epochs=EPOCHS, batch_size=BATCH, seed=0,
    )


def test_accuracy_and_shapes(trained: metrics.Evaluator, digits: dict[str, torch.Tensor]) -> None:
    assert trained.is_classifier
    assert trained.test_accuracy > 0.9
    features = trained.features(digits["x_test"], batch_size=100)
    assert features.shape == (450, 128)
    assert features.dtype == torch.float32
    probs = trained.class_probs(digits["x_test"])
    assert probs.shape == (450, 10)
    assert_close(probs.sum(dim=1), torch.ones(450))
    both_features, both_probs = trained.features_and_probs(digits["x_test"], batch_size=64)
    assert_close(both_features, features)
    assert_close(both_probs, probs)
    with pytest.raises(ValueError):
        trained.features(torch.zeros(4, 3, 8, 8))


def test_cache_hit_returns_identical_features(
    trained: metrics.Evaluator, digits: dict[str, torch.Tensor], cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("cache miss: the evaluator was retrained")

    monkeypatch.setattr(evaluator_module, "train_evaluator", refuse)
    cached = metrics.load_or_train_evaluator(
        cache_dir, "digits", digits["x"], digits["y"], digits["x_test"], digits["y_test"],
        epochs=EPOCHS, batch_size=BATCH, seed=0,
    )
    assert torch.equal(cached.features(digits["x_test"]), trained.features(digits["x_test"]))
    assert cached.test_accuracy == trained.test_accuracy
    assert len(list(cache_dir.glob("*.safetensors"))) == 1
    # Other settings or other data are a different entry: they would train.
    with pytest.raises(AssertionError, match="cache miss"):
        metrics.load_or_train_evaluator(
            cache_dir, "digits", digits["x"], digits["y"], digits["x_test"], digits["y_test"],
            epochs=EPOCHS, batch_size=BATCH, seed=1,
        )
    changed = digits["x"].clone()
    changed[0, 0, 0, 0] += 0.5
    with pytest.raises(AssertionError, match="cache miss"):
        metrics.load_or_train_evaluator(
            cache_dir, "digits", changed, digits["y"], digits["x_test"], digits["y_test"],
            epochs=EPOCHS, batch_size=BATCH, seed=0,
        )


def test_tensor_digest() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert metrics.tensor_digest(x) == metrics.tensor_digest(x.clone())
    assert metrics.tensor_digest(x) != metrics.tensor_digest(x.double())
    assert metrics.tensor_digest(x) != metrics.tensor_digest(x.reshape(4, 3))
    assert metrics.tensor_digest(x, None) != metrics.tensor_digest(x)
    assert metrics.tensor_digest(x, extra="a") != metrics.tensor_digest(x, extra="b")
    assert len(metrics.tensor_digest(x)) == 64


def test_save_load_round_trip(trained: metrics.Evaluator, digits: dict[str, torch.Tensor], tmp_path: Path) -> None:
    weights_path, json_path = trained.save(tmp_path / "eval")
    assert (weights_path.name, json_path.name) == ("eval.safetensors", "eval.json")
    meta = json.loads(json_path.read_text())
    assert meta["settings"]["kind"] == "classifier"
    assert meta["test_accuracy"] == trained.test_accuracy
    assert set(load_file(str(weights_path))) == set(trained.network.state_dict())
    loaded = metrics.Evaluator.load(tmp_path / "eval.safetensors")
    assert loaded.settings == trained.settings
    assert torch.equal(loaded.features(digits["x_test"]), trained.features(digits["x_test"]))


def test_real_data_check(trained: metrics.Evaluator, digits: dict[str, torch.Tensor]) -> None:
    """Test split vs train split is close; the train split with classes 5-9 removed is clearly worse."""
    reference = metrics.prepare_reference(trained, digits["x_test"])
    good = metrics.evaluate_images(trained, reference, digits["x"])
    half = metrics.evaluate_images(trained, reference, digits["x"][digits["y"] < 5])
    assert set(good) == set(metrics.METRIC_NAMES)
    assert good["fd"] < 0.5
    assert half["fd"] > 10 * good["fd"]
    # Two finite samples of one law: tail points fall outside the other set's 3-NN balls, so
    # recall sits near 0.9 (0.88-0.90 over three training seeds), coverage near 1 (0.998-1.0).
    assert good["recall"] > 0.8
    assert good["coverage"] > 0.95
    # Without classes 5-9 about half of the real test images have no fake neighbour.
    assert half["recall"] < 0.6
    assert half["coverage"] < 0.6
    assert good["class_kl"] < 0.05
    assert half["class_kl"] > 0.5  # ideal value for five of ten balanced classes: log 2 = 0.69
    assert half["kid"] > 0.02 > 0.01 > good["kid"]
    assert good["is"] > 7.5 and half["is"] < 5.5  # IS <= number of classes present
    # The RealReference shortcut gives the same numbers as passing the images.
    assert metrics.evaluate_images(trained, digits["x_test"], digits["x"]) == good
    # An explicit real class distribution (the true label frequencies) works too.
    freq = torch.bincount(digits["y_test"], minlength=10).double()
    explicit = metrics.evaluate_images(trained, reference, digits["x"][digits["y"] < 5], freq, metrics=["class_kl"])
    assert list(explicit) == ["class_kl"]
    assert explicit["class_kl"] > 0.5


def test_metric_selection(trained: metrics.Evaluator, digits: dict[str, torch.Tensor]) -> None:
    only = metrics.evaluate_images(trained, digits["x_test"], digits["x"][:200], metrics=["fd", "kid", "coverage"])
    assert list(only) == ["fd", "kid", "kid_std", "coverage"]
    with pytest.raises(ValueError, match="unknown metrics"):
        metrics.evaluate_images(trained, digits["x_test"], digits["x"], metrics=["fid"])


def test_autoencoder_without_labels(digits: dict[str, torch.Tensor]) -> None:
    state = torch.get_rng_state()
    autoencoder = metrics.train_evaluator(
        digits["x"], None, test_images=digits["x_test"], epochs=3, batch_size=BATCH, seed=0, feature_dim=32
    )
    assert torch.equal(state, torch.get_rng_state())
    assert not autoencoder.is_classifier
    assert math.isnan(autoencoder.test_accuracy)
    assert 0 < autoencoder.test_loss < 0.5  # pixel MSE in [-1, 1] units; predicting 0 gives about 0.6
    assert autoencoder.features(digits["x_test"]).shape == (450, 32)
    with pytest.raises(ValueError):
        autoencoder.class_probs(digits["x_test"])
    result = metrics.evaluate_images(autoencoder, digits["x_test"], digits["x"], kid_subsets=10)
    assert list(result) == ["fd", "kid", "kid_std", "precision", "recall", "density", "coverage"]


def test_training_is_deterministic(digits: dict[str, torch.Tensor]) -> None:
    subset = slice(0, 400)
    kwargs = dict(epochs=1, batch_size=BATCH, seed=3, widths=(8, 16, 16), feature_dim=16)
    first = metrics.train_evaluator(digits["x"][subset], digits["y"][subset], **kwargs)
    second = metrics.train_evaluator(digits["x"][subset], digits["y"][subset], **kwargs)
    assert torch.equal(first.features(digits["x_test"]), second.features(digits["x_test"]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(trained: metrics.Evaluator, digits: dict[str, torch.Tensor], tmp_path: Path) -> None:
    trained.save(tmp_path / "eval")
    on_gpu = metrics.Evaluator.load(tmp_path / "eval", device="cuda")
    cpu_result = metrics.evaluate_images(trained, digits["x_test"], digits["x"])
    gpu_result = metrics.evaluate_images(on_gpu, digits["x_test"], digits["x"])
    assert on_gpu.features(digits["x_test"]).device.type == "cuda"
    assert_close(torch.tensor(list(gpu_result.values())), torch.tensor(list(cpu_result.values())), rtol=1e-3, atol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(), reason="Fashion-MNIST IDX files missing")
def test_fashion_mnist_accuracy() -> None:
    """The default recipe (3 epochs) reaches >= 90 % test accuracy on Fashion-MNIST in a few CPU minutes."""

    def images(name: str) -> torch.Tensor:
        return torch.from_numpy(read_idx_gz(FASHION / name).copy()).float()[:, None] / 127.5 - 1.0

    def labels(name: str) -> torch.Tensor:
        return torch.from_numpy(read_idx_gz(FASHION / name).astype(np.int64))

    started = time.perf_counter()
    trained = metrics.train_evaluator(
        images("train-images-idx3-ubyte.gz"),
        labels("train-labels-idx1-ubyte.gz"),
        test_images=images("t10k-images-idx3-ubyte.gz"),
        test_labels=labels("t10k-labels-idx1-ubyte.gz"),
        seed=0,
    )
    print(f"Fashion-MNIST evaluator: test accuracy {trained.test_accuracy:.4f} in {time.perf_counter() - started:.0f}s")
    assert trained.test_accuracy >= 0.9


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 24), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_networks_accept_all_sizes(shape: tuple[int, int, int]) -> None:
    channels, height, width = shape
    images = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    classifier = metrics.Evaluator(
        metrics.EvaluatorSettings("classifier", channels, height, width, num_classes=4, widths=(8, 8, 16))
    )
    assert classifier.features(images).shape == (3, 128)
    assert classifier.class_probs(images).shape == (3, 4)
    autoencoder = metrics.Evaluator(
        metrics.EvaluatorSettings("autoencoder", channels, height, width, feature_dim=16, widths=(8, 8, 16))
    )
    assert autoencoder.features(images).shape == (3, 16)
    assert autoencoder.network(images).shape == images.shape
