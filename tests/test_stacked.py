"""Stacked Fashion-MNIST: the data set, the mode count of class triples, the stacked evaluator, a short run
and the benchmark's smoke mode."""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from ganstab.config import DataConfig
from ganstab.data import FASHION_MNIST_PATH, dataset_shape, make_dataset
from ganstab.data.stacked import STACKED_TEST_SIZE, STACKED_TRAIN_SIZE, stack_channels, triple_labels
from ganstab.metrics import RunEvaluator, StackedEvaluator, channel_class_probs, stacked_modes
from ganstab.metrics.evaluator import Evaluator, EvaluatorSettings
from ganstab.metrics.stats import class_histogram, class_kl, frechet_distance, inception_score
from ganstab.sampling import class_rows

HAVE_FASHION = (Path(FASHION_MNIST_PATH) / "train-images-idx3-ubyte.gz").is_file() or \
    (Path(FASHION_MNIST_PATH) / "train-images-idx3-ubyte").is_file()
needs_fashion = pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST IDX files not in {FASHION_MNIST_PATH} "
                                                              "(apt-get install dataset-fashion-mnist)")
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "stacked.py"


# ---------------------------------------------------------------- the mode count (pure)

def test_stacked_modes_counts_distinct_triples_and_kl_by_hand():
    predictions = torch.tensor([[0, 0, 0], [0, 0, 0], [1, 2, 3], [9, 9, 9]])
    scores = stacked_modes(predictions)
    assert scores["modes"] == 3
    # p = (1/2, 1/4, 1/4) on three of 1,000 modes: KL = 1/2 log(500) + 2 * 1/4 log(250)
    assert_close(scores["reverse_kl"], 0.5 * math.log(500) + 0.5 * math.log(250), rtol=1e-12, atol=1e-12)
    assert_close(scores["reverse_kl"], 5.868034508, rtol=0, atol=1e-9)


def test_stacked_modes_uniform_and_collapsed():
    every = torch.tensor([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    assert stacked_modes(every) == {"modes": 1000, "reverse_kl": 0.0}
    assert stacked_modes(torch.cat([every, every])) == {"modes": 1000, "reverse_kl": 0.0}
    collapsed = stacked_modes(torch.full((26, 3), 7))
    assert collapsed["modes"] == 1
    assert_close(collapsed["reverse_kl"], math.log(1000), rtol=1e-12, atol=1e-12)


def test_stacked_modes_other_class_and_channel_counts():
    # two channels of two classes: K = 4 modes, p = (0, 1/4, 1/2, 1/4) -> KL = 1/2 log 2
    scores = stacked_modes(torch.tensor([[0, 1], [1, 0], [1, 0], [1, 1]]), classes=2)
    assert scores["modes"] == 3
    assert_close(scores["reverse_kl"], 0.5 * math.log(2), rtol=1e-12, atol=1e-12)
    # the same triple in another channel order is another mode
    assert stacked_modes(torch.tensor([[1, 2, 3], [3, 2, 1], [2, 1, 3]]))["modes"] == 3


def test_stacked_modes_rejects_bad_predictions():
    with pytest.raises(ValueError) as info:
        stacked_modes(torch.tensor([[0, 10, 1]]))
    assert str(info.value) == "channel classes must be integers in [0, 10), got values 0..10"
    with pytest.raises(ValueError) as info:
        stacked_modes(torch.tensor([1, 2, 3]))
    assert str(info.value) == "channel classes must have shape (N, C) with N, C >= 1, got (3,)"
    with pytest.raises(ValueError):
        stacked_modes(torch.tensor([[0.0, 1.0, 2.0]]))


def test_triple_labels_read_the_first_channel_as_hundreds():
    assert triple_labels(torch.tensor([[1, 2, 3], [9, 0, 9], [0, 0, 0]]), 10).tolist() == [123, 909, 0]
    assert triple_labels(torch.tensor([[1, 0, 1]]), 2).tolist() == [5]


def test_channel_class_probs_put_the_channels_side_by_side():
    p0, p1 = torch.tensor([[0.2, 0.8]]), torch.tensor([[0.5, 0.5]])
    assert_close(channel_class_probs([p0, p1]), torch.tensor([[0.1, 0.4, 0.25, 0.25]]))
    gen = torch.Generator().manual_seed(0)
    fake = [torch.rand(40, 10, generator=gen).softmax(dim=1) for _ in range(3)]
    real = [torch.rand(40, 10, generator=gen).softmax(dim=1) for _ in range(3)]
    stacked_fake, stacked_real = channel_class_probs(fake), channel_class_probs(real)
    assert stacked_fake.shape == (40, 30)
    assert_close(stacked_fake.sum(dim=1), torch.ones(40))
    # class KL over (channel, class) pairs = the mean of the channels' class KLs
    per_channel = [class_kl(f, class_histogram(r, 10)) for f, r in zip(fake, real)]
    assert_close(class_kl(stacked_fake, class_histogram(stacked_real, 30)), sum(per_channel) / 3,
                 rtol=1e-6, atol=1e-12)
    # IS = the geometric mean of the channels' scores
    scores = [inception_score(f, splits=1)[0] for f in fake]
    assert_close(inception_score(stacked_fake, splits=1)[0], math.prod(scores) ** (1 / 3), rtol=1e-6, atol=0.0)


# ---------------------------------------------------------------- stacking and the data set

def test_stack_channels_draws_each_channel_from_the_images():
    images = torch.arange(12, dtype=torch.float32)[:, None, None, None].expand(12, 1, 4, 4).contiguous()
    labels = torch.arange(12) % 10
    stacked, stacked_labels = stack_channels(images, labels, 50, torch.Generator().manual_seed(3))
    assert stacked.shape == (50, 3, 4, 4)
    rows = stacked[:, :, 0, 0].long()  # each image is constant: its value is its row
    assert torch.equal(stacked, rows[:, :, None, None].float().expand(50, 3, 4, 4))
    assert torch.equal(stacked_labels, (rows[:, 0] % 10) * 100 + (rows[:, 1] % 10) * 10 + rows[:, 2] % 10)
    again, again_labels = stack_channels(images, labels, 50, torch.Generator().manual_seed(3))
    assert torch.equal(again, stacked) and torch.equal(again_labels, stacked_labels)
    other, _ = stack_channels(images, labels, 50, torch.Generator().manual_seed(4))
    assert not torch.equal(other, stacked)
    assert stack_channels(images, None, 5, torch.Generator().manual_seed(0))[1] is None
    with pytest.raises(ValueError):
        stack_channels(images.expand(12, 3, 4, 4), labels, 5, torch.Generator())


def _idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_idx(folder: Path, n: int, side: int, test: bool) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    stems = [("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)]
    if test:
        stems += [("t10k-images-idx3-ubyte", images[::-1].copy()), ("t10k-labels-idx1-ubyte", labels[::-1].copy())]
    for stem, array in stems:
        (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    return images, labels


def test_stacked_data_from_an_idx_folder(tmp_path):
    images, labels = _write_idx(tmp_path / "fm", n=20, side=8, test=True)
    source = make_dataset(DataConfig(name="stacked-fashion-mnist", path=str(tmp_path / "fm")), seed=5)
    assert source.name == "stacked-fashion-mnist" and source.kind == "image" and source.shape == (3, 8, 8)
    assert len(source) == STACKED_TRAIN_SIZE == 60_000  # no data.limit: 60,000 stacked training images
    assert source.test.shape == (STACKED_TEST_SIZE, 3, 8, 8) and STACKED_TEST_SIZE == 10_000
    assert source.channel_source.name == "fashion-mnist" and source.channel_source.shape == (1, 8, 8)
    assert source.num_classes == 1000
    # every channel is one of the 20 images, and the label is the triple of their classes
    unit = torch.from_numpy(images.astype(np.float32)) / 255 * 2 - 1
    first = source.train[:40].reshape(40 * 3, 1, 64)
    match = (first == unit.reshape(1, 20, 64)).all(dim=2)
    assert match.sum(dim=1).eq(1).all()
    rows = match.float().argmax(dim=1).reshape(40, 3)
    expected = torch.from_numpy(labels.astype(np.int64))[rows]
    assert torch.equal(source.labels[:40], expected[:, 0] * 100 + expected[:, 1] * 10 + expected[:, 2])
    # deterministic per seed; the test draw is one reference for every seed
    again = make_dataset(DataConfig(name="stacked-fashion-mnist", path=str(tmp_path / "fm")), seed=5)
    assert torch.equal(again.train, source.train) and torch.equal(again.labels, source.labels)
    other = make_dataset(DataConfig(name="stacked-fashion-mnist", path=str(tmp_path / "fm")), seed=6)
    assert not torch.equal(other.train, source.train) and torch.equal(other.test, source.test)


def test_stacked_data_without_a_test_split_and_with_a_limit(tmp_path):
    _write_idx(tmp_path / "fm", n=20, side=8, test=False)
    source = make_dataset(DataConfig(name="stacked-fashion-mnist", path=str(tmp_path / "fm"), limit=64), seed=0)
    assert source.train.shape == (64, 3, 8, 8) and source.test is None and source.test_labels is None
    assert len(source.channel_source) == 20  # data.limit sizes the stacked set, not the channel data
    assert torch.equal(source.reference("test", 10), source.train[:10])
    assert torch.equal(source.reference("validation", 10), source.train[-10:])  # disjoint: 64 rows


def test_stacked_shape_without_files():
    assert dataset_shape(DataConfig(name="stacked-fashion-mnist")) == (3, 28, 28)
    assert dataset_shape(DataConfig(name="stacked-fashion-mnist", image_size=32)) == (3, 32, 32)


@needs_fashion
def test_stacked_fashion_mnist_shape_range_labels_and_seeds():
    cfg = DataConfig(name="stacked-fashion-mnist", limit=300)
    source = make_dataset(cfg, seed=0)
    assert source.train.shape == (300, 3, 28, 28) and source.test.shape == (10_000, 3, 28, 28)
    assert source.train.dtype == torch.float32
    assert source.train.min().item() == -1.0 and source.train.max().item() == 1.0
    assert source.labels.dtype == torch.int64 and 0 <= int(source.labels.min()) and int(source.labels.max()) < 1000
    base = source.channel_source
    assert base.train.shape == (60_000, 1, 28, 28) and base.num_classes == 10
    for i in range(5):  # each channel is a Fashion-MNIST training image of the label's digit
        for c, digit in enumerate((int(source.labels[i]) // 100, int(source.labels[i]) // 10 % 10,
                                   int(source.labels[i]) % 10)):
            same = (base.train[:, 0] == source.train[i, c]).flatten(1).all(dim=1)
            assert same.any() and digit in set(base.labels[same].tolist())
    other = make_dataset(cfg, seed=1)
    assert not torch.equal(other.train, source.train)
    # one held-out reference whatever the run's seed
    assert torch.equal(other.test, source.test) and torch.equal(other.test_labels, source.test_labels)


# ---------------------------------------------------------------- the stacked evaluator

def _tiny_evaluator() -> Evaluator:
    settings = EvaluatorSettings(kind="classifier", in_channels=1, height=8, width=8, num_classes=10,
                                 feature_dim=6, widths=(4, 4, 4))
    return Evaluator(settings)


def test_stacked_evaluator_applies_the_channel_network_to_every_channel():
    base = _tiny_evaluator()
    stacked = StackedEvaluator(base, 3)
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert stacked.feature_dim == 18 and stacked.classes == 10 and stacked.is_classifier
    features = stacked.features(images)
    assert_close(features, torch.cat([base.features(images[:, c:c + 1]) for c in range(3)], dim=1))
    feats, probs = stacked.features_and_probs(images)
    assert_close(feats, features)
    channel_probs = [base.class_probs(images[:, c:c + 1]) for c in range(3)]
    assert_close(probs, torch.cat(channel_probs, dim=1) / 3)
    assert_close(stacked.class_probs(images), probs)
    classes = stacked.channel_classes(images)
    assert torch.equal(classes, torch.stack([p.argmax(dim=1) for p in channel_probs], dim=1))
    assert torch.equal(stacked.labels_from_probs(probs), classes[:, 0] * 100 + classes[:, 1] * 10 + classes[:, 2])
    assert stacked.mode_scores(images) == stacked_modes(classes)
    with pytest.raises(ValueError) as info:
        stacked.features(images[:, :1])
    assert str(info.value) == "stacked evaluator expects images of shape (N, 3, H, W), got (16, 1, 8, 8)"


def test_fd_over_stacked_features_is_the_sum_of_channel_fds_for_independent_channels():
    base = _tiny_evaluator()
    stacked = StackedEvaluator(base, 3)
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.rand(400, 3, 8, 8, generator=gen) * 2 - 1, torch.rand(400, 3, 8, 8, generator=gen) - 0.5
    joint = frechet_distance(stacked.features(real).double(), stacked.features(fake).double())
    per_channel = sum(frechet_distance(base.features(real[:, c:c + 1]).double(), base.features(fake[:, c:c + 1]).double())
                      for c in range(3))
    # the channels are drawn independently, so only the sampling noise of the cross-covariances separates them
    assert_close(joint, per_channel, rtol=0.05, atol=0.0)


def test_class_rows_show_at_most_a_hundred_classes():
    # a conditional run on stacked data has 1,000 classes and 64 fixed latents: its grid shows the first 100
    assert torch.equal(class_rows(1000, 64), torch.arange(100))
    assert torch.equal(class_rows(10, 64), torch.arange(10).repeat_interleave(6))
    assert torch.equal(class_rows(10, 5), torch.arange(10))


# ---------------------------------------------------------------- a real run and the benchmark

@needs_fashion
def test_short_stacked_run_logs_finite_modes_and_reverse_kl(tmp_path):
    from ganstab.pipeline import load_config
    from ganstab.train import train

    out = tmp_path / "run"
    cfg = load_config(overrides=[
        "data.name=stacked-fashion-mnist", "data.limit=256", "model.arch=dcgan", "model.width=8",
        "model.latent_dim=16", "train.steps=6", "train.batch_size=16", "train.threads=1", "train.device=cpu",
        "log.progress=false", "log.every=3", "log.sample_every=100", "log.checkpoint_every=100", "eval.every=0",
        "eval.n=300", f"eval.cache_dir={tmp_path / 'cache'}", "eval.evaluator_images=1000",
        "eval.evaluator_epochs=1", f"out={out}"])
    train(cfg, echo=lambda _m: None)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if r.get("final")][-1]
    assert final["step"] == 6
    assert 1 <= final["eval_modes"] <= 300 and final["eval_modes"] == int(final["eval_modes"])
    assert 0.0 <= final["eval_reverse_kl"] <= math.log(1000) + 1e-9
    assert math.isfinite(final["eval_fd"]) and final["eval_fd"] > 0 and math.isfinite(final["eval_class_kl"])
    generated = json.loads((out / "generator.json").read_text())
    assert generated["data"]["shape"] == [3, 28, 28]


@needs_fashion
def test_run_evaluator_on_real_stacked_images_counts_their_modes(tmp_path):
    source = make_dataset(DataConfig(name="stacked-fashion-mnist", limit=64), seed=0)
    scorer = RunEvaluator(source, 500, torch.device("cpu"), tmp_path, evaluator_epochs=1, echo=lambda _m: None,
                          evaluator_images=1000)
    assert isinstance(scorer.evaluator, StackedEvaluator) and scorer.evaluator.classes == 10
    real = source.test[:500]  # the test reference of eval.n 500
    scores = scorer.score_samples(real, split="test")
    assert scores == {**scores, **scorer.evaluator.mode_scores(real)}
    # the reference scored against itself
    assert abs(scores["fd"]) < 1e-3 and scores["precision"] == 1.0
    assert abs(scores["class_kl"]) < 1e-9
    # conditional accuracy compares predicted triples with the requested labels
    predicted = scorer.evaluator.labels_from_probs(scorer.evaluator.class_probs(real))
    assert scorer.class_scores(real, predicted)["class_accuracy"] == 1.0
    assert scorer.class_scores(real, (predicted + 1) % 1000)["class_accuracy"] == 0.0
    other = scorer.score_samples(source.train[:500])  # other real images: no collapse for the doctor to see
    assert 0.0 < other["class_kl"] < 0.1 and 0.0 < other["reverse_kl"] < math.log(1000)


@pytest.mark.slow
@needs_fashion
def test_benchmark_smoke_mode_writes_floor_and_rows(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("stacked_benchmark", BENCHMARK)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    import common  # the benchmark's helper module, on sys.path once the benchmark is loaded

    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    code = bench.main(["--quick", "--presets", "dcgan", "--budget", "1", "--n", "300", "--out", str(tmp_path / "runs"),
                       "--tag", "test", "--set", "model.width=8", "train.batch_size=16", "data.limit=256", "eval.n=200",
                       f"eval.cache_dir={tmp_path / 'cache'}", "eval.evaluator_images=1000", "eval.evaluator_epochs=1"])
    assert code == 0
    payload = json.loads((tmp_path / "results" / "stacked-test.json").read_text())
    assert payload["n"] == 300 and payload["floor"]["n"] == 300
    assert 1 <= payload["floor"]["labels"]["modes"] <= 300
    assert list(payload["arms"]) == ["dcgan"] and payload["eval_features"].startswith("stacked-ganstab-evaluator-")
    row = payload["arms"]["dcgan"]["runs"]["seed0"]
    assert 1 <= row["modes"] <= 300 and 0 <= row["reverse_kl"] <= math.log(1000) + 1e-9
    assert payload["arms"]["dcgan"]["summary"]["modes"] == {"mean": row["modes"], "se": 0.0, "n": 1}
    assert "| dcgan |" in (tmp_path / "results" / "stacked-test.md").read_text()
