"""Stability by default: a cheap evaluator trained on first use, quick evaluations between full ones, the
real-vs-real FD baseline and its failed-evaluation rule, and collapse recovery to the best evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest
import torch

from ganstab.config import DoctorConfig
from ganstab.diagnose.detectors import detect_failed_evaluation
from ganstab.metrics.evaluator import (EVALUATOR_VERSION, EvaluatorSettings, capped_training_set,
                                      load_or_train_evaluator)
from ganstab.metrics.run_eval import QUICK_MIN_SAMPLES, RunEvaluator, other_real_images
from ganstab.metrics.stats import frechet_distance
from ganstab.pipeline import load_config, make_trainer
from ganstab.rundir import read_jsonl
from ganstab.train import train
from ganstab.training.eval_schedule import QUICK_SHARE

DIGITS = ["data.name=digits", "model.arch=dcgan", "model.width=8", "train.batch_size=32", "log.progress=false",
          "log.sample_every=100000", "train.threads=1"]


def _images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=gen) * 2 - 1, torch.arange(n) % 4


def test_the_evaluator_cap_shows_at_most_max_images_in_whole_epochs() -> None:
    images, labels = _images(300)
    same = capped_training_set(images, labels, 3, 900, seed=0)  # 3 x 300 = 900: the cap does not bind
    assert same[0] is images and same[1] is labels and same[2] == 3
    sub, sub_labels, epochs = capped_training_set(images, labels, 3, 500, seed=0)  # all 300 fit once (500 // 300)
    assert (sub.shape[0], epochs) == (300, 1)
    sub, sub_labels, epochs = capped_training_set(images, labels, 3, 120, seed=0)  # a subset of 120, one epoch
    assert (sub.shape[0], epochs) == (120, 1)
    rows = torch.randperm(300, generator=torch.Generator().manual_seed(0))[:120].sort().values
    torch.testing.assert_close(sub, images[rows])
    torch.testing.assert_close(sub_labels, labels[rows])
    with pytest.raises(ValueError, match="max_images must be at least 2, got 1"):
        capped_training_set(images, labels, 1, 1, seed=0)


def test_a_cap_that_does_not_bind_keeps_the_cache_entry(tmp_path: Path) -> None:
    images, labels = _images(300)
    first = load_or_train_evaluator(tmp_path, "toy", images, labels, epochs=1)
    same = load_or_train_evaluator(tmp_path, "toy", images, labels, epochs=1, max_images=300)  # 1 x 300 <= 300
    assert same.data_hash == first.data_hash
    assert len(list(tmp_path.glob("evaluator-toy-*.json"))) == 1
    capped = load_or_train_evaluator(tmp_path, "toy", images, labels, epochs=1, max_images=200)  # binds: another net
    assert capped.data_hash != first.data_hash
    assert len(list(tmp_path.glob("evaluator-toy-*.json"))) == 2
    assert capped.settings.epochs == 1


def test_the_evaluator_trained_on_first_use_is_the_small_one_of_version_3() -> None:
    settings = EvaluatorSettings(kind="classifier", in_channels=1, height=28, width=28, num_classes=10)
    assert (settings.widths, settings.feature_dim, settings.epochs, settings.shift, settings.version) == (
        (16, 32, 64), 128, 3, 0, 3)
    assert EVALUATOR_VERSION == 3  # 1: widths (32, 64, 128); 2: no shipped networks, no shift setting


def test_fd_real_is_the_evaluators_own_real_vs_real_fd(tmp_path: Path) -> None:
    cfg = load_config(overrides=[*DIGITS, f"out={tmp_path / 'run'}", f"eval.cache_dir={tmp_path / 'cache'}"])
    trainer = make_trainer(cfg, echo=lambda m: None)
    data = trainer.data
    scorer = RunEvaluator(data, 300, torch.device("cpu"), tmp_path / "cache", 1, echo=lambda m: None)
    train_images = data.evaluator_data()[0]
    other = other_real_images(train_images, 300)
    assert other is not None and other.shape[0] == 300
    expected = frechet_distance(scorer.reference.features, scorer.evaluator.features(other))
    assert scorer.fd_real == pytest.approx(expected)
    assert 0 < scorer.fd_real < 5
    real_as_fake = scorer.score_samples(data.test[:300])
    assert real_as_fake["fd_real"] == scorer.fd_real


def test_an_fd_far_above_the_real_baseline_is_a_failed_evaluation() -> None:
    cfg = DoctorConfig()
    ok = {"step": 100, "eval_fd": 19.0, "eval_fd_real": 0.02, "eval_precision": 0.4, "eval_coverage": 0.2,
          "final": True}
    assert detect_failed_evaluation([ok], cfg) == []  # 950 x the baseline: below 1000 x
    bad = dict(ok, eval_fd=25.0)
    [finding] = detect_failed_evaluation([bad], cfg)
    assert finding.code == "evaluation.failed" and finding.severity == "error"
    assert finding.message == ("The evaluation at step 100 is far from the data: eval_fd 25 is above 1000 x the "
                               "evaluator's real-vs-real FD 0.02 (20) (1 failing evaluation over steps 100-100).")
    assert finding.evidence == {"fd": 25.0, "fd_real": 0.02, "multiple": 1000.0, "threshold": pytest.approx(20.0)}
    assert detect_failed_evaluation([dict(bad, eval_fd_real=None)], cfg) == []  # no baseline: no FD rule


def test_quick_evaluations_fill_log_steps_within_their_share_of_the_budget(tmp_path: Path) -> None:
    cfg = load_config(overrides=[*DIGITS, f"out={tmp_path / 'run'}", "train.steps=300", "log.every=5",
                                 "eval.n=600", f"eval.cache_dir={tmp_path / 'cache'}"])
    trainer = make_trainer(cfg, echo=lambda m: None)
    trainer.scorer.prepare()
    trainer.step, trainer.elapsed = 100, 100.0  # budget: 0.05 x 100 = 5 s, of which quick ones 1 s
    assert trainer._quick_eval_due(True) is False  # the first full evaluation comes first
    trainer.eval_cost, trainer.eval_seconds = 1.0, 2.0
    assert trainer._quick_eval_due(True) is True  # guess 0.1 x 1 s: 0 + 0.1 <= 1 and 2 + 0.1 + 2 x 1 (final) <= 5
    assert trainer._quick_eval_due(False) is False  # only on log steps
    trainer.quick_cost, trainer.quick_seconds = 0.1, 0.95
    assert trainer._quick_eval_due(True) is False  # 0.95 + 0.1 > QUICK_SHARE x 5
    trainer.quick_seconds, trainer.eval_seconds = 0.5, 3.95
    assert trainer._quick_eval_due(True) is False  # within its share, but 3.95 + 0.1 + 2 x 1 > 5
    trainer.eval_seconds = 2.8
    assert trainer._quick_eval_due(True) is True  # 2.8 + 0.1 + 2 x 1 (the final validation and test) <= 5
    trainer.step = 300
    assert trainer._quick_eval_due(True) is False  # the final evaluation follows anyway
    assert QUICK_SHARE == 0.2
    fixed = make_trainer(load_config(overrides=[*DIGITS, f"out={tmp_path / 'fixed'}", "eval.every=20"]),
                         echo=lambda m: None)
    fixed.step, fixed.elapsed, fixed.eval_cost = 100, 100.0, 0.1
    assert fixed._quick_eval_due(True) is False  # quick evaluations only under eval.every=auto


def test_a_quick_evaluation_is_a_cheap_eval_line(tmp_path: Path) -> None:
    cfg = load_config(overrides=[*DIGITS, f"out={tmp_path / 'run'}", "train.steps=20", "log.every=5",
                                 "eval.n=600", "eval.every=0", f"eval.cache_dir={tmp_path / 'cache'}"])
    trainer = make_trainer(cfg, echo=lambda m: None)
    trainer.run()
    line = trainer.quick_evaluate()
    assert set(line) == {"step", "images_seen", "time", "eval_class_kl", "eval_diversity", "eval_time", "quick",
                         "eval_split", "eval_reference_n", "eval_n", "eval_features", "eval_resize"}
    assert (line["eval_split"], line["eval_n"], line["eval_resize"]) == ("validation", 250, "none")
    assert line["step"] == 20 and line["quick"] is True and line["eval_class_kl"] >= 0
    full = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r.get("final")][0]
    assert line["eval_diversity"] == pytest.approx(full["eval_diversity"])  # the same fixed batch
    assert trainer.quick_seconds == pytest.approx(line["eval_time"], abs=1e-3)
    assert QUICK_MIN_SAMPLES == 250


class _CollapsingScorer:
    """All 8 modes until `collapse_at`, then one: an evaluation series that collapses."""

    def __init__(self, trainer: Any, collapse_at: int) -> None:
        self.trainer, self.collapse_at = trainer, collapse_at

    def evaluate(self, generator: Any, latent_dim: int, g_kwargs: dict, fixed_z: Optional[torch.Tensor] = None,
                 seed: int = 0, split: str = "validation") -> dict[str, float]:
        modes = 8.0 if self.trainer.step < self.collapse_at else 1.0
        return {"modes": modes, "hq_fraction": 0.9, "reverse_kl": 0.0}

    def provenance(self, split: str) -> dict[str, Any]:
        return {"split": split, "reference_n": 10, "n": 10, "features": "points", "resize": "none"}

    def quick_evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        return {}

    def is_better(self, new: dict[str, float], best: Optional[dict[str, float]]) -> bool:
        return best is None or new["modes"] > best["modes"]

    def main_metric_name(self) -> str:
        return "modes"

    def prepare(self) -> None:
        pass

    def supports_quick(self) -> bool:
        return False

    def first_cost_guess(self) -> float:
        return 0.05


def test_a_collapse_rolls_back_to_the_best_evaluation_and_slows_g(tmp_path: Path) -> None:
    cfg = load_config(overrides=["data.name=ring8", "model.arch=toy", "model.width=16", "train.batch_size=32",
                                 "log.progress=false", "log.every=5", "log.checkpoint_every=10", "eval.every=10",
                                 "doctor.eval_warmup_steps=0", "train.steps=80", "train.max_recoveries=1",
                                 f"out={tmp_path / 'run'}"])
    trainer = make_trainer(cfg, echo=lambda m: None)
    trainer.scorer = _CollapsingScorer(trainer, collapse_at=40)
    lr_g, lr_d = cfg.optim.g_lr, cfg.optim.d_lr
    result = trainer.run()
    assert result.steps == 80 and result.recoveries == 1
    assert sorted(p.name for p in (tmp_path / "run" / "best").glob("ckpt_*.pt")) == ["ckpt_0000010.pt"]
    lines = read_jsonl(tmp_path / "run" / "recoveries.jsonl")
    first = lines[0]
    assert {k: first[k] for k in ("recovery", "step", "code", "remedy", "from_checkpoint")} == {
        "recovery": 1, "step": 10, "code": "mode_collapse.modes", "remedy": "scaled G's learning rate",
        "from_checkpoint": "ckpt_0000010.pt"}
    assert first["failed_at"] == 50 and first["lr_g"] == pytest.approx(0.5 * lr_g) and first["lr_d"] == lr_d
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if "loss_d" in r] == list(range(5, 85, 5))  # one line per step kept
    last = [r for r in records if "loss_d" in r][-1]
    assert last["lr_g"] == pytest.approx(0.5 * lr_g) and last["lr_d"] == pytest.approx(lr_d)
    findings = [json.loads(x) for x in (tmp_path / "run" / "findings.jsonl").read_text().splitlines()]
    assert {f["code"] for f in findings if f["severity"] == "error"} == {"mode_collapse.modes", "evaluation.failed"}


def test_the_evaluator_trains_on_first_use_without_touching_the_runs_randomness(tmp_path: Path) -> None:
    args = [*DIGITS, "train.steps=120", "log.every=10", "eval.n=300", "eval.evaluator_epochs=1",
            "eval.evaluator=train"]  # digits' shipped network would need no training
    cold = load_config(overrides=[*args, f"out={tmp_path / 'cold'}", f"eval.cache_dir={tmp_path / 'cache'}"])
    messages: list[str] = []
    train(cold, echo=messages.append)
    assert sum(m.startswith("evaluator: epoch 1/1: loss ") for m in messages) == 1, messages  # once, one prefix
    assert len(list((tmp_path / "cache").glob("evaluator-digits-*.safetensors"))) == 1
    warm = load_config(overrides=[*args, f"out={tmp_path / 'warm'}", f"eval.cache_dir={tmp_path / 'cache'}"])
    messages.clear()
    train(warm, echo=messages.append)
    assert not any(m.startswith("evaluator: epoch") for m in messages)
    loss = [{k: r[k] for k in ("step", "loss_d", "loss_g")} for r in read_jsonl(tmp_path / "cold" / "metrics.jsonl")
            if "loss_d" in r]
    again = [{k: r[k] for k in ("step", "loss_d", "loss_g")} for r in read_jsonl(tmp_path / "warm" / "metrics.jsonl")
             if "loss_d" in r]
    assert loss == again and len(loss) == 12
    final = [r for r in read_jsonl(tmp_path / "cold" / "metrics.jsonl") if r.get("final")]
    assert [r["eval_split"] for r in final] == ["validation", "test"] and final[0]["eval_fd"] > 0


def test_quick_lines_do_not_feed_the_class_kl_detector() -> None:
    from ganstab.diagnose.detectors import detect_class_kl

    cfg = DoctorConfig(eval_warmup_steps=0)
    quick = [{"step": s, "eval_class_kl": 0.11, "eval_diversity": 0.8, "quick": True} for s in (100, 200, 300)]
    full = [{"step": s, "eval_class_kl": 0.05, "eval_fd": 1.0} for s in (150, 250)]
    records = sorted(quick + full, key=lambda r: r["step"])
    assert detect_class_kl(records, cfg) == []  # 0.11 > class_kl_warn on the quick lines only
    [finding] = detect_class_kl([dict(r, quick=False) for r in quick], cfg)  # the same values as full lines
    assert (finding.code, finding.severity) == ("mode_collapse.class_kl", "warning")
    assert DoctorConfig().diversity_warn == 0.65


def test_low_diversity_still_rising_is_learning_not_collapse() -> None:
    from ganstab.diagnose.detectors import detect_diversity

    cfg = DoctorConfig(eval_warmup_steps=2000)
    rising = [(1000, 0.21), (1500, 0.6), (2000, 0.62), (2050, 0.64), (2100, 0.7), (3000, 0.8)]
    records = [{"step": s, "eval_diversity": v} for s, v in rising]
    assert detect_diversity(records, cfg) == []  # a small-data run's measured climb
    falling = rising[:-1] + [(2200, 0.6), (2300, 0.55), (2400, 0.5)]
    [finding] = detect_diversity([{"step": s, "eval_diversity": v} for s, v in falling], cfg)
    assert (finding.code, finding.severity, finding.start_step, finding.end_step) == (
        "mode_collapse.diversity", "warning", 2200, 2400)
    assert finding.evidence["diversity"] == 0.5
