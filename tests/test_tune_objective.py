"""`ganstab tune --objective/--constraint`: parsing and its one-line errors, a tiny real study in which a constraint
makes the trial with the best objective infeasible, the CSV columns, best.yaml's header and the trade-off figure."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install 'ganstab[tune]')")

from ganstab import tune  # noqa: E402
from ganstab.cli.main import main  # noqa: E402
from ganstab.errors import ConfigError  # noqa: E402
from ganstab.pipeline import load_config  # noqa: E402
from ganstab.report.tune import TUNE_SECTIONS, TuneView, tradeoff_points, tune_report_html  # noqa: E402

CHOICES = ("fd, kid, kid_std, precision, recall, density, coverage, class_kl, is, diversity, modes, hq_fraction, "
           "reverse_kl, class_accuracy, intra_fd")


# ------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize("name, expected", [("fd", ("fd", False)), ("eval_recall", ("recall", True)),
                                            ("density", ("density", True)), ("kid", ("kid", False))])
def test_objective_names_give_their_direction(name: str, expected: tuple[str, bool]) -> None:
    assert tune.parse_objective(name) == expected


@pytest.mark.parametrize("name", ["fid", "time", "eval_time", ""])
def test_unknown_objective_lists_the_choices(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        tune.parse_objective(name)
    assert str(err.value) == f"--objective {name!r} is not a metric with a direction; use one of: {CHOICES}"


@pytest.mark.parametrize("text, metric, op, bound", [
    ("recall>=0.3", "recall", ">=", 0.3), (" coverage >= .5 ", "coverage", ">=", 0.5),
    ("eval_fd<=2e-1", "fd", "<=", 0.2), ("class_kl<=-1", "class_kl", "<=", -1.0),
])
def test_constraints_parse(text: str, metric: str, op: str, bound: float) -> None:
    constraint = tune.parse_constraint(text)
    assert (constraint.metric, constraint.op, constraint.bound) == (metric, op, bound)


@pytest.mark.parametrize("text", ["recall=0.3", "recall>0.3", "recall>=", "recall>=nan", "recall>=inf", ">=0.3",
                                  "recall>=0.3,coverage>=0.5", "recall >= 0.3x"])
def test_malformed_constraint_is_one_line(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        tune.parse_constraint(text)
    assert str(err.value) == (f"--constraint {text!r} is not METRIC>=NUMBER or METRIC<=NUMBER; write e.g. "
                              "--constraint 'recall>=0.3'")


def test_constraint_on_an_unknown_metric_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as err:
        tune.parse_constraint("recal>=0.3")
    assert str(err.value) == f"--constraint 'recal>=0.3': 'recal' is not a metric with a direction; use one of: {CHOICES}"


def test_violation_is_the_distance_outside_the_bound() -> None:
    floor, ceiling = tune.parse_constraint("recall>=0.3"), tune.parse_constraint("fd<=2")
    assert floor.violation(0.25) == pytest.approx(0.05, abs=1e-12)
    assert floor.violation(0.3) == 0.0 and floor.violation(0.5) == pytest.approx(-0.2, abs=1e-12)
    assert ceiling.violation(2.5) == 0.5 and ceiling.violation(1.0) == -1.0
    assert floor.violation(None) == math.inf and ceiling.violation(float("nan")) == math.inf
    assert floor.text == "recall>=0.3" and tune.constraints_text([floor, ceiling]) == "recall>=0.3, fd<=2"
    assert tune.constraints_text([]) == "none"


@pytest.mark.parametrize("extra, message", [
    (["--objective", "fid"], f"--objective 'fid' is not a metric with a direction; use one of: {CHOICES}"),
    (["--constraint", "recall>0.3"], "--constraint 'recall>0.3' is not METRIC>=NUMBER or METRIC<=NUMBER; write e.g. "
                                     "--constraint 'recall>=0.3'"),
    (["--constraint", "recall>=0.3", "--constraint", "covrage>=0.5"],
     f"--constraint 'covrage>=0.5': 'covrage' is not a metric with a direction; use one of: {CHOICES}"),
])
def test_bad_objective_or_constraint_is_exit_2_before_any_trial(tmp_path: Path, extra: list[str], message: str,
                                                                  capsys: pytest.CaptureFixture) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("data: {name: grid25}\n")
    out = tmp_path / "o"
    assert main(["tune", "--config", str(base), "--trials", "1", "--out", str(out), *extra]) == 2
    assert capsys.readouterr().err == f"ganstab: error: {message}\n"
    assert not out.exists()


def test_search_lines_skip_the_test_split() -> None:
    lines = [{"step": 1, "eval_fd": 3.0}, {"step": 2, "eval_fd": 2.0, "eval_split": "validation"},
             {"step": 2, "eval_fd": 1.0, "eval_split": "test"}]
    assert tune.search_lines(lines) == lines[:2]


def test_final_scores_read_the_newest_validation_line(tmp_path: Path) -> None:
    lines = [{"step": 10, "eval_fd": 3.0, "eval_recall": 0.1}, {"step": 20, "eval_fd": 2.0, "eval_recall": 0.2,
                                                                 "final": True},
             {"step": 20, "eval_fd": 1.0, "eval_recall": 0.9, "eval_split": "test"}, {"step": 21, "loss_d": 1.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert tune.final_scores(tmp_path, "fd") == {"fd": 2.0, "recall": 0.2}
    assert tune.final_scores(tmp_path, "modes") == {}


def test_reruns_that_meet_the_constraints_rank_first_then_by_the_objective() -> None:
    rows = [{"trial": 1, "mean": 0.9, "feasible": False}, {"trial": 2, "mean": 0.5, "feasible": True},
            {"trial": 3, "mean": 0.7, "feasible": True}, {"trial": 4, "mean": None, "feasible": True}]
    ranked = tune.order_by_ranking(rows, ["trial1", "trial3", "trial2", "trial4"], higher=True)
    assert [(r["rank"], r["trial"]) for r in ranked] == [(1, 3), (2, 2), (3, 4), (4, 1)]
    lower = tune.order_by_ranking([dict(r) for r in rows], [], higher=False)
    assert [r["trial"] for r in lower] == [2, 3, 4, 1]


# ------------------------------------------------------------------------------------------ a real study
@pytest.fixture(scope="module")
def study_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """3 trials of 40 steps on a 2-D Gaussian blob, objective precision, constraint recall>=0.09; the trials are
    enqueued so that trial 0 has the best precision but breaks the floor, trial 1 meets it, trial 2 breaks it
    (measured on the validation reference: precision 0.998 / 0.99 / 0.942, recall 0.074 / 0.118 / 0.032).
    Pruning is off (Optuna's NopPruner) so all three complete; the feasible one is re-run with one fresh seed."""
    folder = tmp_path_factory.mktemp("tune-objective")
    points = 0.5 * np.random.default_rng(0).standard_normal((2000, 2))
    np.savez(folder / "blob.npz", x=points.astype("float32"))
    base = {"data": {"name": "npz", "path": str(folder / "blob.npz")},
            "model": {"arch": "toy", "latent_dim": 2, "width": 16, "depth": 2, "g_norm": "none", "d_norm": "none"},
            "loss": {"kind": "nonsaturating"}, "train": {"batch_size": 64, "device": "cpu", "threads": 1},
            "log": {"progress": False, "sample_every": 1000, "checkpoint_every": 1000}, "eval": {"n": 500}}
    lrs = [1e-7, 0.01, 0.05]
    space = tune.parse_space({"optim.g_lr": {"choices": lrs}, "optim.d_lr": {"choices": lrs}})
    out = folder / "study"
    settings = tune.TuneSettings(out=out, base=base, space=space, storage=tune.default_storage(out), trials=3,
                                 steps=40, top=3, rerun_seeds=1, rerun_steps=60, metric="precision", higher=True,
                                 constraints=(tune.parse_constraint("recall>=0.09"),))
    patch = pytest.MonkeyPatch()
    patch.setattr(tune.optuna.pruners, "SuccessiveHalvingPruner", optuna.pruners.NopPruner)
    try:
        out.mkdir(parents=True)
        study = tune.open_study(settings)
        for lr in (0.05, 0.01, 1e-7):
            study.enqueue_trial({"optim.g_lr": lr, "optim.d_lr": lr})
        lines: list[str] = []
        tune.run_tune(settings, echo=lines.append)
    finally:
        patch.undo()
    return out, lines


def test_the_best_objective_breaking_a_constraint_is_never_chosen(study_out: tuple[Path, list[str]]) -> None:
    out, lines = study_out
    trials = optuna.load_study(study_name=tune.STUDY_NAME, storage=tune.default_storage(out)).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert [t.user_attrs.get("feasible") for t in trials] == [False, True, False]
    assert trials[0].value > trials[1].value > trials[2].value  # trial 0: better precision, yet infeasible
    assert set(trials[1].user_attrs["scores"]) - {"time"} == set(tune.POINT_METRICS["points"])  # the table is true
    assert trials[0].user_attrs["infeasible"] == (f"infeasible: recall={trials[0].user_attrs['scores']['recall']:.4g} "
                                                  "breaks recall>=0.09")
    if hasattr(optuna.trial.Trial, "set_constraint"):  # Optuna >= 5: Optuna's own best honours the constraint too
        assert trials[0].constraints["recall>=0.09"] > 0 and trials[1].constraints["recall>=0.09"] <= 0
    assert any(line.startswith("trial 1 complete precision=") and line.endswith("; best " +
               f"{trials[1].value:.4g} (trial 1)") for line in lines)
    cfg = load_config(out / "best.yaml", [f"out={out / 'unused'}"])
    assert cfg.optim.g_lr == pytest.approx(0.01, rel=1e-12, abs=0)
    assert sorted(p.name for p in (out / "rerun").iterdir() if p.is_dir()) == ["trial1"]


def test_reruns_and_best_yaml_train_the_rerun_budget_the_trials_their_own(study_out: tuple[Path, list[str]]) -> None:
    out, _ = study_out
    trial = optuna.load_study(study_name=tune.STUDY_NAME, storage=tune.default_storage(out)).trials[1]
    searched = load_config(Path(trial.user_attrs["run"]) / "config.yaml", [f"out={out / 'unused'}"])
    rerun = load_config(out / "rerun" / "trial1" / "seed1000" / "config.yaml", [f"out={out / 'unused'}"])
    best = load_config(out / "best.yaml", [f"out={out / 'unused'}"])
    assert (searched.train.steps, rerun.train.steps, best.train.steps) == (40, 60, 60)
    assert (searched.eval.every, rerun.eval.every, best.eval.every) == (8, 12, 12)  # steps / 5 evaluations each


@pytest.mark.parametrize("rerun, expected", [
    ({}, {"train": {"steps": 40, "time_budget": 0.0}, "eval": {"every": 8, "final": True}, "log": {"every": 8}}),
    ({"rerun_steps": 500}, {"train": {"steps": 500, "time_budget": 0.0}, "eval": {"every": 100, "final": True},
                            "log": {"every": 50}}),
    ({"rerun_seconds": 600.0}, {"train": {"steps": tune.TIME_BUDGET_STEPS, "time_budget": 600.0},
                                "eval": {"every": "auto"}}),
])
def test_rerun_budget_is_the_trials_unless_given(rerun: dict, expected: dict) -> None:
    base = {"data": {"name": "grid25"}, "model": {"arch": "toy"}, "log": {"every": 50}}
    settings = tune.TuneSettings(out=Path("unused"), base=base, space={}, storage="sqlite:///unused.db", steps=40,
                                 **rerun)
    assert tune.budget_overrides(settings)["train"] == {"steps": 40, "time_budget": 0.0}  # the trials never change
    assert tune.rerun_budget_overrides(settings) == expected


def test_trials_csv_carries_objective_constraint_and_feasible(study_out: tuple[Path, list[str]]) -> None:
    out, _ = study_out
    trials = optuna.load_study(study_name=tune.STUDY_NAME, storage=tune.default_storage(out)).trials
    with (out / "trials.csv").open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ["number", "state", "value", "objective", "recall", "feasible", "params", "duration_s",
                                 "run", "note"]
    assert [r["feasible"] for r in rows] == ["false", "true", "false"]
    assert [r["objective"] for r in rows] == ["precision"] * 3
    for row, trial in zip(rows, trials):
        assert float(row["value"]) == pytest.approx(trial.value, rel=1e-12, abs=0)
        assert float(row["recall"]) == pytest.approx(trial.user_attrs["scores"]["recall"], rel=1e-12, abs=0)
        assert (float(row["recall"]) >= 0.09) == (row["feasible"] == "true")


def test_rerun_csv_applies_the_constraints_to_the_means(study_out: tuple[Path, list[str]]) -> None:
    out, lines = study_out
    with (out / "rerun.csv").open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ["rank", "trial", "search_value", "objective", "mean", "se", "n", "recall_mean",
                                 "feasible", "params"]
    assert [(r["rank"], r["trial"], r["n"], r["objective"]) for r in rows] == [("1", "1", "1", "precision")]
    meets = float(rows[0]["recall_mean"]) >= 0.09
    assert rows[0]["feasible"] == str(meets).lower()
    header = (out / "best.yaml").read_text().splitlines()
    assert header[0] == "# ganstab tune winner: objective precision (max), constraints: recall>=0.09"
    said = ("no re-run configuration meets the constraints (recall>=0.09) on its mean over the fresh seeds; best.yaml "
            "holds the best of them by precision, trial 1, which met them in the search")
    assert (said in lines) == (not meets) and (header[1] == f"# {said}") == (not meets)


def test_report_shows_fd_against_recall_of_all_trials(study_out: tuple[Path, list[str]]) -> None:
    out, _ = study_out
    html = (out / "report.html").read_text()
    for section_id in TUNE_SECTIONS:
        assert f'<section id="{section_id}">' in html
    tradeoff = html.split('<section id="tradeoff">')[1].split("</section>")[0]
    assert 'alt="fd against recall of all trials"' in tradeoff and "data:image/png;base64," in tradeoff
    assert "Constraints: recall&gt;=0.09." in tradeoff


def test_tradeoff_points_mark_feasibility_and_the_winner(tmp_path: Path) -> None:
    rows = [{"number": 0, "state": "COMPLETE", "feasible": False, "scores": {"fd": 1.0, "recall": 0.1}},
            {"number": 1, "state": "COMPLETE", "feasible": True, "scores": {"fd": 2.0, "recall": 0.5}},
            {"number": 2, "state": "PRUNED", "feasible": None, "scores": {"fd": 4.0, "recall": 0.2}},
            {"number": 3, "state": "FAIL", "feasible": None, "scores": {}},
            {"number": 4, "state": "COMPLETE", "feasible": True, "scores": {"modes": 3.0}}]
    view = TuneView(tmp_path, "fd", False, rows, constraints=["recall>=0.3"], winner_trial=1)
    points, chosen = tradeoff_points(view)
    assert points == [(0.1, 1.0, "infeasible"), (0.5, 2.0, "feasible"), (0.2, 4.0, "stopped")]
    assert chosen == (0.5, 2.0)
    view.constraints, view.winner_trial = [], None
    assert tradeoff_points(view)[1] is None


def test_an_unconstrained_study_reports_completed_trials_not_feasible_ones(tmp_path: Path) -> None:
    # without constraints the study marks every completed trial feasible: the report says completed instead
    rows = [{"number": 0, "state": "COMPLETE", "feasible": True, "value": 1.0, "duration": 2.0, "params": {},
             "scores": {"fd": 1.0, "recall": 0.1}},
            {"number": 1, "state": "PRUNED", "feasible": None, "value": None, "duration": 1.0, "params": {},
             "scores": {"fd": 4.0, "recall": 0.2}}]
    view = TuneView(tmp_path, "fd", False, rows, constraints=[])
    assert tradeoff_points(view)[0] == [(0.1, 1.0, "completed"), (0.2, 4.0, "stopped")]
    trials = tune_report_html(view).split('<section id="trials">')[1].split("</section>")[0]
    assert "<th>feasible</th>" not in trials and "<th>seconds</th>" in trials
    view.constraints = ["recall>=0.3"]
    assert tradeoff_points(view)[0] == [(0.1, 1.0, "feasible"), (0.2, 4.0, "stopped")]
    trials = tune_report_html(view).split('<section id="trials">')[1].split("</section>")[0]
    assert "<th>feasible</th>" in trials and '<td>yes</td>' in trials


@pytest.mark.parametrize("extra, message", [
    (["--objective", "recall"], "--objective 'recall' is never logged for this data; this data logs modes, "
                                "hq_fraction, reverse_kl, diversity"),
    (["--constraint", "coverage>=0.5"], "--constraint 'coverage>=0.5': 'coverage' is never logged for this data; "
                                        "this data logs modes, hq_fraction, reverse_kl, diversity"),
])
def test_a_metric_the_2d_data_never_logs_is_refused_before_any_trial(tmp_path: Path, extra: list[str], message: str,
                                                                      capsys: pytest.CaptureFixture) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("data: {name: grid25}\nmodel: {arch: toy}\n")
    space = tmp_path / "space.yaml"
    space.write_text("optim.g_lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n")
    out = tmp_path / "o"
    assert main(["tune", "--config", str(base), "--space", str(space), "--trials", "1", "--out", str(out),
                 *extra]) == 2
    assert capsys.readouterr().err == f"ganstab: error: {message}\n"
    assert not out.exists()


def test_logged_metrics_of_2d_data(tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", x=np.zeros((50, 2), dtype="float32"))
    assert tune.logged_metrics({"data": {"name": "ring8"}}) == ("modes", "hq_fraction", "reverse_kl", "diversity")
    assert tune.logged_metrics({"data": {"name": "npz", "path": str(tmp_path / "p.npz")}}) == (
        "fd", "precision", "recall", "density", "coverage", "diversity")
    assert tune.logged_metrics({"data": {"name": "digits"}}) is None
