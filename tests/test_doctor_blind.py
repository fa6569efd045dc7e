"""benchmarks/doctor_blind.py: the Wilson interval, the truth rule, the frozen defaults, the published table
recomputed from the stored per-run records, and the re-scoring of a stored final test line (`--rescore-test`)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from ganstab.cli import main
from ganstab.rundir import read_jsonl

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "doctor_blind.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("doctor_blind_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("k, n, low, high", [
    # p = 0.8, z^2 = 3.8416: centre 0.99208 / 1.38416, half 1.96 / 1.38416 * sqrt(0.016 + 0.009604)
    (8, 10, 0.490157, 0.943319),
    # p = 0: centre = half = 0.38416 / 1.76832; the low end is 0
    (0, 5, 0.0, 0.434491),
    # p = 1/2 over 100: centre 0.5, half 1.96 / 1.038416 * sqrt(0.0025 + 0.00009604)
    (50, 100, 0.403830, 0.596170),
    # p = 1 over 3: centre 1.64027 / 2.28053, half 1.96 / 2.28053 * sqrt(3.8416 / 36); the high end is 1
    (3, 3, 0.438494, 1.0),
])
def test_wilson_interval_matches_hand_computed_values(bench, k: int, n: int, low: float, high: float) -> None:
    torch.testing.assert_close(torch.tensor(bench.wilson(k, n)), torch.tensor((low, high)), atol=1e-6, rtol=0)


def test_wilson_interval_of_no_trials_is_none(bench) -> None:
    assert bench.wilson(0, 0) is None
    assert bench.rate(0, 0) == {"k": 0, "n": 0, "value": None, "low": None, "high": None}


def _test_line(modes: float, hq: float, rkl: float, split: str = "test") -> dict:
    return {"step": 4000, "eval_modes": modes, "eval_hq_fraction": hq, "eval_reverse_kl": rkl,
            "eval_split": split, "final": True}


@pytest.mark.parametrize("modes, hq, rkl, total, failed", [
    (20, 0.5, 0.3, 25, False),      # every threshold met exactly: 80 % of 25 modes, HQ 0.5, rKL 0.3
    (19, 0.9, 0.01, 25, True),      # fewer than 80 % of the grid's modes
    (25, 0.499, 0.01, 25, True),    # under half the samples high quality
    (25, 0.9, 0.301, 25, True),     # an uneven mode histogram
    (7, 0.9, 0.1, 8, False),        # ring: 7 >= 6.4
    (6, 0.9, 0.1, 8, True),         # ring: 6 < 6.4
    (22, 0.2, 0.1, 25, True),       # the doctor's evaluation.failed passes it (22 >= 12.5 modes, HQ 0.2 >= 0.1)
])
def test_truth_rule_on_the_test_evaluation(bench, modes, hq, rkl, total, failed) -> None:
    metrics = [_test_line(0, 0, 3.2, split="validation"), _test_line(modes, hq, rkl)]
    assert bench.truth(metrics, total) == (failed, f"{modes:.0f}/{total} modes, HQ {hq:.3f}, rKL {rkl:.3f}")


def test_truth_rule_ignores_the_validation_line_and_fails_a_run_without_a_test_line(bench) -> None:
    assert bench.truth([_test_line(25, 0.95, 0.01, split="validation")], 25) == (True, "no final test evaluation")
    assert bench.truth([], 8) == (True, "no final test evaluation")


def test_scoring_refuses_changed_doctor_defaults(bench, capsys) -> None:
    frozen = bench.doctor_defaults()
    frozen["doctor"]["failed_hq_fraction"] = 0.2
    with pytest.raises(SystemExit) as info:
        bench.check_frozen(frozen)
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "doctor_blind: the doctor's defaults changed since they were frozen (failed_hq_fraction); run the benchmark "
        "again (a table of new thresholds on these runs would not be blind)\n")
    bench.check_frozen(bench.doctor_defaults())  # unchanged: no refusal


def test_a_record_survives_its_gzip_round_trip(bench, tmp_path: Path) -> None:
    record = {"run": "run-007", "index": 7, "recipe": {"seed": 123}, "config": {"doctor": {}}, "error": None,
              "metrics": [{"step": 100, "loss_d": 1.5}, {"step": 100, "eval_modes": 3.0}],
              "findings": [{"code": "stall", "severity": "info", "start_step": 100, "end_step": 100}]}
    path = bench.save_record(record, tmp_path)
    assert path.name == "run-007.jsonl.gz"
    assert bench.load_records(tmp_path) == [record]


@pytest.fixture(scope="module")
def published(bench):
    path = bench.RESULTS / f"{bench.STEM}.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def records(bench):
    return bench.load_records()


def test_the_published_table_is_recomputed_from_the_stored_records(bench, published, records) -> None:
    bench.check_frozen(published["frozen"])
    assert len(records) == published["table"]["runs"] == published["runs_done"]
    assert json.loads(json.dumps(bench.table(records))) == published["table"]


def test_every_stored_run_is_its_declared_draw_with_the_frozen_doctor(bench, published, records) -> None:
    assert [r["index"] for r in records] == list(range(len(records)))  # runs in order, none left out
    for record in records:
        assert record["recipe"] == bench.draw_recipe(record["index"], record["refused_draws"])
        assert record["recipe"]["seed"] >= 100  # none of modes2d.py's seeds
        assert record["config"]["doctor"] == published["frozen"]["doctor"]
        assert record["config"]["train"]["steps"] == bench.BUDGET


def test_offline_verdict_at_the_end_equals_the_live_one(published) -> None:
    end = published["table"]["at_100"]
    assert end["live_agrees"] == published["table"]["runs"]


def test_stored_records_stay_small(bench) -> None:
    assert sum(path.stat().st_size for path in bench.RECORDS.glob("*")) < 3_000_000


# ------------------------------------------------------------------ re-scoring a stored run's final test line
TINY = ["--preset", "toy", "data.name=grid25", "seed=11", "train.steps=200", "train.batch_size=64", "model.width=16",
        "log.every=50", "log.progress=false", "log.sample_every=100000", "log.checkpoint_every=100000",
        "eval.every=100", "eval.final=true", "eval.n=400", "train.device=cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 200-step grid25 run (seed 11) whose final lines score 400 samples, in workdir/run-000."""
    run = tmp_path_factory.mktemp("blind") / "run-000"
    assert main(["train", *TINY, f"out={run}"]) == 0
    return run


def _stale_record(run: Path) -> dict:
    """The run as doctor_blind stored it before commit eaab9b5: its final test line scored the validation samples."""
    metrics = read_jsonl(run / "metrics.jsonl")
    validation = [r for r in metrics if r.get("final") and r.get("eval_split") == "validation"][-1]
    test_at = max(i for i, r in enumerate(metrics) if r.get("final") and r.get("eval_split") == "test")
    metrics[test_at] = {**validation, "eval_split": "test"}
    return {"run": run.name, "metrics": metrics, "findings": []}


def test_rescored_test_line_is_what_eval_run_prints_and_not_the_validation_samples(bench, tiny_run: Path,
                                                                                   capsys) -> None:
    record = _stale_record(tiny_run)
    validation = dict(record["metrics"][bench.final_line_index(record["metrics"], "validation")])
    assert bench.rescore_record(record, tiny_run.parent) is True
    line = record["metrics"][bench.final_line_index(record["metrics"], "test")]
    assert (line["step"], line["final"], line["eval_split"], line["rescored_seed"]) == (200, True, "test", 11 + 7)
    assert "eval_time" not in line  # the stale line's cost is not the new score's
    # the validation line's own samples (seed 11 + 3) are not the test line's: the scores differ
    assert line["eval_hq_fraction"] != validation["eval_hq_fraction"]
    assert line["eval_reverse_kl"] != validation["eval_reverse_kl"]
    capsys.readouterr()
    assert main(["eval", "--run", str(tiny_run)]) == 0
    printed = {row.split()[0]: row.split()[1] for row in capsys.readouterr().out.splitlines() if row.startswith("  ")}
    written = json.loads((tiny_run / "eval-n400-seed18.json").read_text())
    assert written["seed"] == 18 and written["step"] == 200
    scores = {k[len("eval_"):]: v for k, v in line.items() if k.startswith("eval_")}
    assert set(printed) == {"modes", "hq_fraction", "reverse_kl", "diversity"}
    for key in printed:
        assert scores[key] == written[key], key
        assert printed[key] == f"{scores[key]:.6g}", key
    assert {k: scores[k] for k in ("split", "n", "reference_n", "features")} == {
        "split": "test", "n": 400, "reference_n": written["reference_n"], "features": "points"}


def test_rescoring_refuses_an_export_that_is_not_the_final_network(bench, tiny_run: Path) -> None:
    common = sys.modules["common"]
    record = _stale_record(tiny_run)
    validation = dict(record["metrics"][bench.final_line_index(record["metrics"], "validation")])
    with pytest.raises(common.RescoreMismatch) as info:
        common.rescore_final_test(tiny_run, {**validation, "eval_modes": validation["eval_modes"] + 1})
    assert str(info.value) == (f"{tiny_run}: the exported generator does not reproduce the stored final validation "
                               "line (modes differ); it is not the run's final network")
    with pytest.raises(common.RescoreMismatch) as info:
        common.rescore_final_test(tiny_run, {**validation, "step": 100})
    assert str(info.value) == (f"{tiny_run}: the exported generator is of step 200, the final validation line of step "
                               "100; re-score only finished runs")


def test_a_run_without_a_final_test_line_is_left_as_stored(bench, tmp_path: Path) -> None:
    record = {"run": "run-001", "metrics": [{"step": 100, "loss_d": 1.0}], "findings": []}
    assert bench.rescore_record(record, tmp_path) is False
    assert record == {"run": "run-001", "metrics": [{"step": 100, "loss_d": 1.0}], "findings": []}
