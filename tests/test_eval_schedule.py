"""eval.every=auto: evaluations on log steps while their total time stays within eval.budget of training time."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganstab.errors import ConfigError
from ganstab.pipeline import load_config, make_trainer
from ganstab.rundir import is_eval_record, is_test_record, read_jsonl
from ganstab.training.eval_schedule import FIRST_POINTS_EVAL_GUESS_SECONDS
from ganstab.training.loop import FIRST_EVAL_GUESS_SECONDS

BASE = ["log.progress=false", "data.name=grid25", "model.arch=toy", "model.width=16", "model.depth=2",
        "train.batch_size=64", "log.every=10", "eval.n=300"]


def _trainer(tmp_path: Path, *extra: str):
    return make_trainer(load_config(overrides=[*BASE, f"out={tmp_path / 'run'}", *extra]), echo=lambda m: None)


def test_auto_is_the_default_and_bad_values_are_one_line(tmp_path: Path) -> None:
    assert load_config(overrides=[f"out={tmp_path}"]).eval.every == "auto"
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[f"out={tmp_path}", "eval.every=often"])
    assert str(err.value) == "config key 'eval.every' must be auto or a number of G steps >= 0, got 'often'"


def test_auto_schedule_keeps_evaluations_within_the_budget(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "train.steps=1000")
    trainer.step, trainer.elapsed = 100, 100.0
    assert trainer.eval_cost is None
    assert trainer._eval_due(True) is True          # 3 x the points guess (0.15 s) <= 0.05 x 100
    trainer.eval_seconds, trainer.eval_cost = 3.5, 0.5
    assert trainer._eval_due(True) is True          # 3.5 + 0.5 + 2 x 0.5 (the final validation and test) <= 0.05 x 100
    assert trainer._eval_due(False) is False        # only on log steps
    trainer.eval_seconds = 3.6
    assert trainer._eval_due(True) is False         # 3.6 + 0.5 + 2 x 0.5 > 5 (one reserved score would fit: 4.6)
    no_final = _trainer(tmp_path / "no-final", "train.steps=1000", "eval.final=false")
    no_final.step, no_final.elapsed, no_final.eval_seconds, no_final.eval_cost = 100, 100.0, 4.5, 0.5
    assert no_final._eval_due(True) is True         # nothing to reserve: 4.5 + 0.5 <= 5
    trainer.step = 1000
    assert trainer._eval_due(True) is False         # the final evaluation follows anyway
    fixed = _trainer(tmp_path / "fixed", "train.steps=1000", "eval.every=30")
    assert [s for s in range(1, 100) if (setattr(fixed, "step", s) or fixed._eval_due(s % 10 == 0))] == [30, 60, 90]


def test_the_first_evaluation_of_a_fast_2d_run_comes_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2-D run that trains in 12 s gets evaluations before its end: the first one is assumed to cost the points
    guess (0.05 s), not the image one (0.25 s, which waited for 15 s of training and so for no evaluation at all)."""
    trainer = _trainer(tmp_path, "train.steps=5000")
    assert (trainer.scorer.first_cost_guess(), FIRST_POINTS_EVAL_GUESS_SECONDS, FIRST_EVAL_GUESS_SECONDS) == (
        0.05, 0.05, 0.25)
    trainer.step = 1000
    trainer.elapsed = 2.9
    assert trainer._eval_due(True) is False         # 0.05 + 2 x 0.05 = 0.15 > 0.05 x 2.9
    trainer.elapsed = 3.0
    assert trainer._eval_due(True) is True          # 0.15 <= 0.05 x 3.0
    monkeypatch.setattr(trainer.scorer.data, "kind", "image")  # the same run on images waits for 15 s
    assert trainer.scorer.first_cost_guess() == FIRST_EVAL_GUESS_SECONDS
    assert trainer._eval_due(True) is False         # 3 x 0.25 > 0.15
    trainer.elapsed = 15.0
    assert trainer._eval_due(True) is True          # 0.75 <= 0.05 x 15


def test_quick_evaluations_reserve_both_final_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer(tmp_path, "train.steps=1000")
    monkeypatch.setattr(trainer.scorer, "supports_quick", lambda: True)  # as on images
    trainer.step, trainer.elapsed, trainer.eval_cost, trainer.quick_cost = 100, 100.0, 0.5, 0.1
    trainer.quick_seconds, trainer.eval_seconds = 0.0, 3.9
    assert trainer._quick_eval_due(True) is True    # 3.9 + 0.1 + 2 x 0.5 <= 0.05 x 100
    trainer.eval_seconds = 4.0
    assert trainer._quick_eval_due(True) is False   # 4.0 + 0.1 + 2 x 0.5 > 5 (one reserved score would fit: 4.6)


def test_evaluation_cost_is_logged_and_accounted(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "train.steps=40", "eval.every=20")
    trainer.run()
    lines = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if is_eval_record(r)]
    assert [r["step"] for r in lines] == [20, 40]
    assert all(r["eval_time"] > 0 for r in lines)
    test = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if is_test_record(r)]
    assert [r["step"] for r in test] == [40] and test[0]["eval_time"] > 0  # the final test line costs time too
    assert trainer.eval_seconds == pytest.approx(sum(r["eval_time"] for r in lines + test), abs=1e-3)
    assert trainer.state()["eval_seconds"] == trainer.eval_seconds
