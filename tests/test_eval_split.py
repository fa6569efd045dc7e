"""Selection and report share no split: validation references steer, the test reference only reports (issue #27)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from ganstab.config import DataConfig
from ganstab.data import DataSource, make_dataset, reference_rows, unreferenced_rows
from ganstab.diagnose import diagnose
from ganstab.diagnose.detectors import ends_with_final
from ganstab.metrics import run_eval
from ganstab.metrics.run_eval import RunEvaluator
from ganstab.metrics.stats import frechet_distance
from ganstab.metrics.shipped import shipped_paths
from ganstab.pipeline import load_config, make_trainer
from ganstab.rundir import BEST_EVAL_FILE, is_eval_record, is_test_record, metrics_problem, read_jsonl, read_records
from ganstab.tune import _last_eval

DIGITS = ["data.name=digits", "model.arch=dcgan", "model.width=8", "train.batch_size=32", "log.progress=false",
          "log.sample_every=100000", "train.threads=1", "eval.evaluator_epochs=1"]
PROVENANCE = ("eval_split", "eval_reference_n", "eval_n", "eval_features", "eval_resize")


def test_reference_rows_are_disjoint_and_sized_as_documented() -> None:
    # Fashion-MNIST's 10,000 test images, eval.n 2,500: test the first 2,500 rows, validation the last 2,500
    assert reference_rows(10_000, "test", 2500).tolist() == list(range(2500))
    assert reference_rows(10_000, "validation", 2500).tolist() == list(range(7500, 10_000))
    # eval.n 10,000 with eval.val_n 1,000: the test reference keeps the other 9,000
    assert len(reference_rows(10_000, "test", 10_000, 1000)) == 9000
    assert reference_rows(10_000, "validation", 10_000, 1000).tolist() == list(range(9000, 10_000))
    # a short split (digits' 360 test images): validation takes at most half, test the rest
    val, test = reference_rows(360, "validation", 2500), reference_rows(360, "test", 2500)
    assert (len(val), len(test)) == (180, 180) and set(val.tolist()).isdisjoint(test.tolist())
    with pytest.raises(ValueError, match="^reference split must be one of validation, test, got 'train'$"):
        reference_rows(10, "train", 5)


def test_digits_references_share_no_image_and_keep_their_labels() -> None:
    data = make_dataset(DataConfig(name="digits"), seed=0)
    total = len(data.test)
    val, test = data.reference("validation", 2500), data.reference("test", 2500)
    assert (len(val), len(test)) == (total // 2, total - total // 2)
    assert torch.equal(test, data.test[:len(test)]) and torch.equal(val, data.test[len(test):])
    torch.testing.assert_close(data.reference_labels("validation", 2500), data.test_labels[len(test):])
    # no real image of one reference is in the other (compared pixel for pixel)
    flat_val, flat_test = val.flatten(1), test.flatten(1)
    assert not (torch.cdist(flat_val, flat_test) == 0).any()


def test_data_without_a_test_split_splits_its_training_images() -> None:
    data = DataSource(name="npz", kind="image", shape=(1, 2, 2), train=torch.arange(40.0).view(10, 1, 2, 2))
    assert data.reference("test", 3).flatten(1)[:, 0].tolist() == [0.0, 4.0, 8.0]  # rows 0-2
    assert data.reference("validation", 3).flatten(1)[:, 0].tolist() == [28.0, 32.0, 36.0]  # rows 7-9
    assert len(data.reference("test", 100)) == 5 and len(data.reference("validation", 100)) == 5


class _FeatureSpy:
    """Stands in for the evaluator network: a sample's features are its pixels, and every batch it sees is kept."""

    def __init__(self) -> None:
        self.seen: list[Tensor] = []

    def features(self, images: Tensor, batch_size: int = 500) -> Tensor:
        self.seen.append(images.clone())
        return images.flatten(1).double()

    def features_and_probs(self, images: Tensor, batch_size: int = 500) -> tuple[Tensor, None]:
        return self.features(images), None


def _rows(images: Tensor) -> list[int]:
    """Row numbers of images of `torch.arange(4.0 * rows).view(rows, 1, 2, 2)`: the first pixel over 4."""
    return [int(v) // 4 for v in images.flatten(1)[:, 0].tolist()]


def test_the_real_floor_without_a_test_split_avoids_both_references(monkeypatch) -> None:
    data = DataSource(name="npz", kind="image", shape=(1, 2, 2), train=torch.arange(160.0).view(40, 1, 2, 2))
    spy = _FeatureSpy()
    monkeypatch.setattr(run_eval, "load_or_train_evaluator", lambda *args, **kwargs: spy)
    scorer = RunEvaluator(data, 10, torch.device("cpu"), echo=lambda m: None, val_n=10)
    floor, validation = spy.seen  # the floor's second real sample first, then the validation reference
    assert _rows(validation) == list(range(30, 40))
    assert len(_rows(floor)) == 10 and set(_rows(floor)) <= set(range(10, 30))  # test: rows 0-9
    expected = frechet_distance(validation.flatten(1).double(), floor.flatten(1).double())
    torch.testing.assert_close(torch.tensor(scorer.fd_real), torch.tensor(expected), rtol=1e-9, atol=1e-9)
    assert _rows(scorer.split_reference("test").prepared.features.view(-1, 1, 2, 2)) == list(range(10))
    # no row is left outside the two references: no floor rather than one drawn from a reference
    spy.seen.clear()
    short = DataSource(name="npz", kind="image", shape=(1, 2, 2), train=torch.arange(80.0).view(20, 1, 2, 2))
    assert RunEvaluator(short, 10, torch.device("cpu"), echo=lambda m: None, val_n=10).fd_real is None
    assert [_rows(batch) for batch in spy.seen] == [list(range(10, 20))]  # the validation reference only


def test_unreferenced_rows_lie_between_the_test_and_the_validation_rows() -> None:
    assert unreferenced_rows(40, 10, 10).tolist() == list(range(10, 30))
    assert unreferenced_rows(10_000, 2500).tolist() == list(range(2500, 7500))
    assert unreferenced_rows(360, 2500).tolist() == []  # digits' test split: 180 test, 180 validation


class _Spy:
    """Wraps a run's scorer: records the split of every score and of every `is_better` argument, and (for the
    recovery) reports one mode from step `collapse_at` on."""

    def __init__(self, trainer: Any, collapse_at: int) -> None:
        self.trainer, self.inner, self.collapse_at = trainer, trainer.scorer, collapse_at
        self.calls: list[tuple[int, str]] = []
        self.compared: list[str] = []
        self.by_id: dict[int, str] = {}

    def evaluate(self, *args: Any, split: str = "validation", **kwargs: Any) -> dict[str, float]:
        scores = self.inner.evaluate(*args, split=split, **kwargs)
        if self.trainer.step >= self.collapse_at:
            scores["modes"] = 1.0
        self.calls.append((self.trainer.step, split))
        self.by_id[id(scores)] = split
        return scores

    def is_better(self, new: dict[str, float], best: Any) -> bool:
        self.compared.append(self.by_id[id(new)])
        return self.inner.is_better(new, best)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_best_recovery_and_the_doctor_never_read_the_test_reference(tmp_path: Path, monkeypatch) -> None:
    requested: list[tuple[int, str]] = []
    original = DataSource.reference
    cfg = load_config(overrides=["data.name=ring8", "model.arch=toy", "model.width=16", "train.batch_size=32",
                                 "log.progress=false", "log.every=5", "log.checkpoint_every=10", "eval.every=10",
                                 "eval.n=300", "eval.val_n=200", "doctor.eval_warmup_steps=0", "train.steps=80",
                                 "train.max_recoveries=1", f"out={tmp_path / 'run'}"])
    trainer = make_trainer(cfg, echo=lambda m: None)
    monkeypatch.setattr(DataSource, "reference", lambda self, split, n, val_n=None: (
        requested.append((trainer.step, split)), original(self, split, n, val_n))[1])
    spy = _Spy(trainer, collapse_at=40)
    trainer.scorer = spy
    result = trainer.run()
    assert result.steps == 80 and result.recoveries == 1
    # every score that steered (intermediate evaluations, the collapse, best/) was on validation; test came last
    assert [s for _, s in spy.calls[:-1]] == ["validation"] * (len(spy.calls) - 1)
    assert spy.calls[-1] == (80, "test")
    assert spy.compared == ["validation"] * len(spy.compared)  # best/ (a collapsed evaluation is not compared)
    assert 0 < len(spy.compared) < len(spy.calls)
    # the validation images are read at the first evaluation, the test images only for the final test line
    assert requested == [(10, "validation"), (80, "test")]
    recovery = read_jsonl(tmp_path / "run" / "recoveries.jsonl")[0]
    assert recovery["code"].startswith("mode_collapse.")  # raised by a validation line (the only ones observed)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    evals = [r for r in records if "eval_modes" in r]
    assert [r["eval_split"] for r in evals] == ["validation"] * (len(evals) - 1) + ["test"]
    assert all(r["eval_features"] == "points" and r["eval_resize"] == "none" and r["eval_n"] == 300
               for r in evals)
    assert [r["eval_reference_n"] for r in evals[-2:]] == [200, 300]
    assert evals[-1]["final"] is True and evals[-2]["final"] is True and evals[-1]["step"] == evals[-2]["step"]
    best = json.loads((tmp_path / "run" / "best" / BEST_EVAL_FILE).read_text())
    chosen = [r for r in evals if r["step"] == best["step"] and r["eval_split"] == "validation"][-1]
    assert best["diversity"] == chosen["eval_diversity"]  # best/ holds a validation line's scores
    assert best["diversity"] != evals[-1]["eval_diversity"]  # the test line's differ (another reference)
    assert all(r.get("eval_split") != "test" for r in trainer.tracker._evals)  # the doctor never saw the test line


def test_an_image_runs_evaluations_read_validation_and_only_the_final_line_reads_test(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    scored: list[tuple[str, int]] = []  # (split, evaluation lines written when it was read)
    original = RunEvaluator.split_reference
    metrics = tmp_path / "run" / "metrics.jsonl"

    def written() -> int:
        return sum(1 for r in read_jsonl(metrics) if "eval_split" in r) if metrics.is_file() else 0

    monkeypatch.setattr(RunEvaluator, "split_reference", lambda self, split: (
        scored.append((split, written())), original(self, split))[1])
    cfg = load_config(overrides=[*DIGITS, f"out={tmp_path / 'run'}", "train.steps=40", "log.every=5",
                                 "eval.every=20", "eval.n=300", f"eval.cache_dir={tmp_path / 'cache'}"])
    trainer = make_trainer(cfg, echo=lambda m: None)
    trainer.run()
    lines = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if any(k.startswith("eval_") for k in r)]
    assert [(r["step"], r["eval_split"], r.get("final", False)) for r in lines] == [
        (20, "validation", False), (40, "validation", True), (40, "test", True)]
    # the test reference is read only once both validation lines are written, for the final test line
    assert {count for split, count in scored if split == "test"} == {2}
    assert {count for split, count in scored if split == "validation"} == {0, 1}
    assert {r["eval_reference_n"] for r in lines} == {len(trainer.data.test) // 2,
                                                     len(trainer.data.test) - len(trainer.data.test) // 2}
    features = trainer.scorer.evaluator.evaluator.weights_sha256()[:12]  # digits: the shipped network's weights
    assert features == json.loads(shipped_paths("digits")[1].read_text())["weights_sha256"][:12]
    assert {r["eval_features"] for r in lines} == {f"ganstab-evaluator-v3-classifier-{features}"}
    assert [r.get("eval_split") for r in read_records(tmp_path / "run")][-2:] == ["validation", "test"]  # both kept
    line = trainer.quick_evaluate()
    assert (line["eval_split"], line["eval_n"]) == ("validation", 250)
    assert scored[-1][0] == "validation"


def test_tune_reads_only_validation_lines(tmp_path: Path) -> None:
    run = tmp_path / "trial"
    run.mkdir()
    lines = [{"step": 10, "eval_fd": 5.0, "eval_split": "validation"},
             {"step": 20, "eval_fd": 4.0, "eval_split": "validation", "final": True},
             {"step": 20, "eval_fd": 1.0, "eval_split": "test", "final": True}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert _last_eval(run, "eval_fd") == (20, 4.0)
    records = read_records(run)
    assert [is_eval_record(r) for r in records] == [True, True, False]
    assert [is_test_record(r) for r in records] == [False, False, True]
    assert ends_with_final(records)  # the doctor judges the validation final line
    assert diagnose(records) == diagnose(records[:2])


def test_the_metrics_reader_checks_the_provenance_keys() -> None:
    good = {"step": 5, "eval_fd": 1.0, "eval_split": "test", "eval_reference_n": 300, "eval_n": 300,
            "eval_features": "points", "eval_resize": "none"}
    assert metrics_problem(good) is None
    assert metrics_problem({**good, "eval_split": "train"}) == "'eval_split' must be validation or test, got \"train\""
    assert metrics_problem({**good, "eval_features": 3}) == (
        "'eval_features' must be a text of at most 200 characters, got 3")
    assert metrics_problem({**good, "eval_n": "300"}) == "'eval_n' must be a number or null, got str"


class _SmallImages(torch.nn.Module):
    """A generator of 4x4 images for 8x8 data (a progressive run mid-growth), from a linear map of z."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(z)).reshape(-1, 1, 4, 4)


@pytest.mark.parametrize("quick", [False, True])
def test_the_resize_is_recorded_for_full_and_quick_evaluations(tmp_path: Path, quick: bool) -> None:
    """Samples smaller than the data are brought to its size, and the line says so: the quick path recorded 'none'
    before, since it looked at the samples after resizing them."""
    data = make_dataset(DataConfig(name="digits"), 0)
    scorer = RunEvaluator(data, 100, torch.device("cpu"), cache_dir=tmp_path)
    g = _SmallImages()
    if quick:
        assert scorer.quick_evaluate(g, 4, {}) != {}
    else:
        scorer.evaluate(g, 4, {})
    assert scorer.provenance("validation")["resize"] == "nearest-pow2-crop"
