"""The unattended long benchmarks (issues #26 and #27): arms of benchmarks/stacked.py, the runners' resume and
read-back (only the final TEST line, its evaluator recorded), tune_fashion.py's rows, recovery.py's, first_run.py's, long_runs.py's, conditional.py's and progressive.py's read-back. No training here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
V3 = "ganstab-evaluator-v3-classifier-aeefde1b663f"
V2 = "ganstab-evaluator-v2-classifier-0123456789ab"


def _load(name: str):
    """A benchmark script as a module (its `common` helper lands on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stacked = _load("stacked")
tune_fashion = _load("tune_fashion")
recovery = _load("recovery")
first_run = _load("first_run")
long_runs = _load("long_runs")
conditional = _load("conditional")
progressive = _load("progressive")
common = sys.modules["common"]


def _fake_run(folder: Path, features: str = V3, test_line: bool = True, steps: int = 40) -> Path:
    """A run folder as `ganstab train` leaves it: training lines, the final validation and test lines, the
    exported generator's meta file (weights not needed by the read-back)."""
    folder.mkdir(parents=True)
    lines = [{"step": 20, "loss_d": 1.0, "loss_g": 0.5}, {"step": steps, "loss_d": 0.9, "loss_g": 0.6},
             {"step": steps, "final": True, "eval_split": "validation", "eval_features": features, "eval_n": 500,
              "eval_fd": 7.0, "eval_kid": 0.7, "eval_precision": 0.1, "eval_recall": 0.2, "eval_coverage": 0.3,
              "eval_modes": 70, "eval_reverse_kl": 0.07}]
    if test_line:
        lines.append({"step": steps, "final": True, "eval_split": "test", "eval_features": features, "eval_n": 500,
                      "eval_fd": 5.0, "eval_kid": 0.5, "eval_precision": 0.6, "eval_recall": 0.4,
                      "eval_coverage": 0.8, "eval_modes": 50, "eval_reverse_kl": 0.05})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (folder / "findings.jsonl").write_text(json.dumps({"code": "d_overfit", "severity": "warning", "start_step": 20,
                                                       "end_step": 40,
                                                       "message": "m", "advice": "a"}) + "\n")
    (folder / "generator.json").write_text("{}")
    return folder


# ---------------------------------------------------------------- arms

def test_parse_arm_splits_name_preset_and_overrides():
    assert stacked.parse_arm("dcgan") == ("dcgan", "dcgan", ())
    assert stacked.parse_arm("r3gan+lecam=r3gan,penalty.lecam=0.3") == ("r3gan+lecam", "r3gan", ("penalty.lecam=0.3",))
    # a comma inside a value (a list) stays in the value
    assert stacked.parse_arm("b=dcgan,optim.g_betas=[0.0,0.9],train.batch_size=32") == (
        "b", "dcgan", ("optim.g_betas=[0.0,0.9]", "train.batch_size=32"))


@pytest.mark.parametrize("text, message", [
    ("x=nope", "--arms x=nope: 'nope' is not a preset; use one of "),
    ("a/b=dcgan", "--arms a/b=dcgan: the name 'a/b' must be letters, digits and _.+- (it names a folder); "
                  "write NAME=PRESET[,KEY=VALUE...]"),
    ("x=dcgan,penalty.lecam", "--arms x=dcgan,penalty.lecam: 'penalty.lecam' is not KEY=VALUE; "
                              "write NAME=PRESET,KEY=VALUE,..."),
    ("x=dcgan,penalty.lecam=-1", "--arms x=dcgan,penalty.lecam=-1: config key 'penalty.lecam': "),
])
def test_parse_arm_names_the_problem_and_the_fix(text, message):
    with pytest.raises(ValueError) as info:
        stacked.parse_arm(text)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_parse_arms_keeps_order_and_refuses_a_repeated_name():
    arms = stacked.parse_arms(["hinge-sn", "a=dcgan,train.batch_size=32", "dcgan"])
    assert list(arms) == ["hinge-sn", "a", "dcgan"]
    assert arms["a"] == {"preset": "dcgan", "overrides": ["train.batch_size=32"]}
    with pytest.raises(ValueError) as info:
        stacked.parse_arms(["dcgan", "dcgan=hinge-sn"])
    assert str(info.value) == "--arms: the name 'dcgan' is given twice; give each arm its own name"


def test_default_arms_are_the_four_presets_of_issue_26():
    assert stacked.PRESETS == ("dcgan", "hinge-sn", "fashion-10min", "r3gan")


def test_best_arm_most_modes_then_lower_reverse_kl():
    def arm(modes, kl):
        return {"modes": {"mean": modes, "se": 0.0, "n": 3}, "reverse_kl": {"mean": kl, "se": 0.0, "n": 3}}
    summary = {"dcgan": arm(600, 0.5), "r3gan": arm(800, 0.3), "hinge-sn": arm(800, 0.2), "none": {"modes": None}}
    assert stacked.best_arm(summary) == "hinge-sn"
    assert stacked.best_arm({"none": {"modes": None, "reverse_kl": None}}) is None


def test_regulariser_arms_add_the_papers_weights_to_the_best_arm():
    arms = stacked.regulariser_arms("r3gan", {"preset": "r3gan", "overrides": ["train.batch_size=32"]})
    assert arms == {
        "r3gan+lecam": {"preset": "r3gan", "overrides": ["train.batch_size=32", "penalty.lecam=0.3"]},
        "r3gan+bcr-zcr": {"preset": "r3gan", "overrides": ["train.batch_size=32", "penalty.bcr_real=10",
                                                           "penalty.bcr_fake=10", "penalty.zcr=5",
                                                           "penalty.zcr_gen=0.5"]}}
    for name, arm in arms.items():  # each is a valid arm
        text = ",".join([f"{name}={arm['preset']}", *arm["overrides"]])
        assert stacked.parse_arm(text) == (name, arm["preset"], tuple(arm["overrides"]))


def test_train_command_one_thread_and_the_arm_then_set_overrides_last(tmp_path):
    command = stacked.train_command({"preset": "r3gan", "overrides": ["penalty.lecam=0.3"]}, 2, 600.0,
                                    tmp_path / "r", ["eval.n=500"])
    assert command[:7] == [sys.executable, "-m", "ganstab", "train", "--overwrite", "--preset", "r3gan"]
    assert command[7:] == ["data.name=stacked-fashion-mnist", "seed=2", f"out={tmp_path / 'r'}",
                           "train.steps=100000000", "train.time_budget=600", "train.threads=1", "eval.every=0",
                           "log.progress=false", "log.sample_every=100000000", "log.checkpoint_every=100000",
                           "penalty.lecam=0.3", "eval.n=500"]


def test_stacked_main_refuses_a_bad_arm_in_one_line_before_any_work(capsys):
    assert stacked.main(["--arms", "x=nope", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stacked.py: --arms x=nope: 'nope' is not a preset") and err.count("\n") == 1
    assert stacked.main(["--jobs", "0"]) == 2


# ---------------------------------------------------------------- read-back and resume

def test_final_record_reads_the_test_line_never_the_validation_one(tmp_path):
    run = _fake_run(tmp_path / "run")
    assert common.final_record(run) == {"step": 40, "fd": 5.0, "kid": 0.5, "precision": 0.6, "recall": 0.4,
                                        "coverage": 0.8, "eval_features": V3, "eval_n": 500,
                                        "verdict": "warnings", "errors": []}


def test_a_run_without_its_final_test_line_is_not_finished(tmp_path):
    run = _fake_run(tmp_path / "run", test_line=False)
    assert not common.finished(run) and common.final_record(run) is None
    assert not common.finished(tmp_path / "nothing")
    assert common.finished(_fake_run(tmp_path / "done"))


class _Counter:
    """Stands in for count_modes: counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, run_dir, evaluator, n):
        self.calls += 1
        return {"modes": 123 + self.calls, "reverse_kl": 0.25}


def test_read_run_counts_modes_once_then_reads_the_cache(tmp_path, monkeypatch):
    counter = _Counter()
    monkeypatch.setattr(stacked, "count_modes", counter)
    run = _fake_run(tmp_path / "dcgan" / "seed0")
    row = stacked.read_run(run, None, V3, 300)
    assert row == {"step": 40, "modes": 124, "reverse_kl": 0.25, "fd": 5.0, "eval_modes": 50,
                   "run_eval_features": V3, "verdict": "warnings", "errors": []}
    assert json.loads((tmp_path / "dcgan" / "seed0.modes.json").read_text()) == {
        "n": 300, "sample_seed": stacked.SAMPLE_SEED, "eval_features": V3, "modes": 124, "reverse_kl": 0.25}
    assert stacked.read_run(run, None, V3, 300) == row and counter.calls == 1  # read back
    assert stacked.read_run(run, None, V3, 600)["modes"] == 125 and counter.calls == 2  # another n: recounted
    assert stacked.read_run(run, None, V2, 600)["modes"] == 126 and counter.calls == 3  # another evaluator
    assert stacked.read_run(_fake_run(tmp_path / "x" / "seed0", test_line=False), None, V3, 300) is None
    assert counter.calls == 3


def test_run_arms_trains_only_unfinished_runs_and_collect_keys_by_arm_and_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(stacked, "count_modes", _Counter())
    started = []
    monkeypatch.setattr(stacked, "run_jobs", lambda jobs, width, done: started.append(
        ([key for key, _command, _log in jobs], width)))
    _fake_run(tmp_path / "dcgan" / "seed0")
    _fake_run(tmp_path / "dcgan" / "seed1", steps=60)
    _fake_run(tmp_path / "r3gan" / "seed1", test_line=False)  # killed after its validation line
    arms = stacked.parse_arms(["dcgan", "r3gan"])
    assert stacked.run_arms(arms, 2, 5.0, tmp_path, [], 2) == 2
    assert started == [([("r3gan", 0), ("r3gan", 1)], 2)]
    result = stacked.collect(arms, 2, tmp_path, None, V3, 300)
    assert list(result) == ["dcgan", "r3gan"] and result["r3gan"]["runs"] == {}
    assert list(result["dcgan"]["runs"]) == ["seed0", "seed1"]
    assert result["dcgan"]["summary"]["step"] == {"mean": 50.0, "se": 10.0, "n": 2}
    assert result["dcgan"]["summary"]["modes"] == {"mean": 124.5, "se": 0.5, "n": 2}
    assert result["r3gan"]["summary"]["modes"] is None


# ---------------------------------------------------------------- tune_fashion.py

def test_tune_fashion_rows_include_r3gan_and_every_image_preset():
    assert tune_fashion.IMAGE_PRESETS == ["blog", "dcgan", "wgan-gp", "wgan-clip", "lsgan", "hinge-sn", "small-data",
                                          "fashion-10min", "progan", "r3gan"]


def test_tune_fashion_collects_test_lines_of_the_current_evaluator_only(tmp_path):
    _fake_run(tmp_path / "tuned" / "seed2000")
    _fake_run(tmp_path / "tuned" / "seed2001", features=V2)  # an older evaluator: re-trained, never averaged
    _fake_run(tmp_path / "dcgan" / "seed2000", test_line=False)
    assert tune_fashion.current(tmp_path / "tuned" / "seed2000", V3)
    assert not tune_fashion.current(tmp_path / "tuned" / "seed2001", V3)
    assert not tune_fashion.current(tmp_path / "dcgan" / "seed2000", V3)
    results = tune_fashion.collect(["tuned", "dcgan"], [2000, 2001], tmp_path, V3)
    assert list(results) == ["tuned"] and list(results["tuned"]) == ["seed2000"]
    assert results["tuned"]["seed2000"]["fd"] == 5.0 and results["tuned"]["seed2000"]["eval_features"] == V3
    summary = tune_fashion.summarise({"runs": results})
    assert summary["tuned"]["fd"] == {"mean": 5.0, "se": 0.0, "n": 1}
    assert summary["tuned"]["verdicts"] == {"warnings": 1}
    # files written before runs were keyed by seed: a list per configuration
    assert tune_fashion.summarise({"runs": {"tuned": list(results["tuned"].values())}}) == summary


def test_tune_fashion_command_one_thread_test_evaluation_and_set_overrides_last(tmp_path):
    best = tmp_path / "best.yaml"
    command = tune_fashion.command("tuned", best, 2000, 600.0, tmp_path / "r", ("model.width=8",))
    assert command[:7] == [sys.executable, "-m", "ganstab", "train", "--overwrite", "--config", str(best)]
    assert command[7:] == ["data.name=fashion-mnist", "seed=2000", f"out={tmp_path / 'r'}", "train.steps=1000000000",
                           "train.time_budget=600.0", "eval.n=5000", "eval.every=0", "train.threads=1",
                           "log.progress=false", "log.sample_every=1000000000", "log.checkpoint_every=5000",
                           "model.width=8"]
    assert tune_fashion.command("r3gan", best, 2001, 5.0, tmp_path / "s")[5:7] == ["--preset", "r3gan"]


def test_recovery_summary_reads_the_final_test_line_and_records_its_evaluator(tmp_path):
    run = _fake_run(tmp_path / "lr0.5-recover1" / "seed0")
    (run / "recoveries.jsonl").write_text(json.dumps({"recovery": 1, "remedy": "scale d_lr", "step": 30}) + "\n")
    row = recovery.summary(run, "lr0.5")
    assert row == {"step": 40, "fd": 5.0, "precision": 0.6, "recall": 0.4, "coverage": 0.8, "verdict": "warnings",
                   "recoveries": 1, "codes": [], "features": V3, "split": "test"}
    assert recovery.summary(run, "blog-ring8")["modes"] == 50  # 2-D keys from the same test line


def test_recovery_tag_names_the_run_folder_and_results(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["recovery.py", "--seeds", "0", "--jobs", "1", "--tag", "t"])
    monkeypatch.setattr(recovery, "HERE", tmp_path)
    written = {}
    monkeypatch.setattr(recovery, "write_results", lambda stem, text, payload: written.update(stem=stem, text=text))
    monkeypatch.setattr(recovery, "add_summary", lambda stem, build: written.update(summary=stem))
    recovery.main()
    assert (tmp_path / "runs" / "recovery-t").is_dir()
    assert written["stem"] == written["summary"] == "recovery-t"
    assert "`python benchmarks/recovery.py --seeds 0 --jobs 1 --tag t`" in written["text"]


def test_first_run_counts_the_final_test_evaluation_in_the_overhead(tmp_path, monkeypatch):
    run = tmp_path / "run"
    lines = [{"step": 50, "time": 1.0, "loss_d": 1.0}, {"step": 50, "time": 1.0, "eval_fd": 3.0, "eval_time": 0.5},
             {"step": 60, "time": 1.2, "quick": True, "eval_class_kl": 0.1, "eval_time": 0.01},
             {"step": 100, "time": 2.0, "loss_d": 0.9},
             {"step": 100, "time": 2.0, "final": True, "eval_split": "validation", "eval_fd": 2.0, "eval_time": 0.4},
             {"step": 100, "time": 2.0, "final": True, "eval_split": "test", "eval_fd": 2.5, "eval_time": 0.3}]

    def fake_train(command, **kwargs):
        run.mkdir()
        (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(first_run.subprocess, "run", fake_train)
    row = first_run.timed_run("digits", run, tmp_path / "cache")
    assert row["eval_time"] == pytest.approx(0.5 + 0.01 + 0.4 + 0.3)  # the test line's 0.3 s is an evaluation too
    assert (row["full"], row["quick"], row["test"], row["first_eval_step"], row["train_time"]) == (2, 1, 1, 50, 2.0)


def test_long_runs_summary_reads_the_test_line_and_counts_its_cost(tmp_path):
    run = _fake_run(tmp_path / "default-digits" / "seed0")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lines[1]["time"] = 10.0
    lines[2]["eval_time"], lines[3]["eval_time"] = 0.2, 0.3  # the final validation and test scores
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    row = long_runs.summary(run)
    assert (row["fd"], row["precision"], row["coverage"], row["split"], row["features"]) == (5.0, 0.6, 0.8, "test", V3)
    assert (row["evaluations"], row["tests"], row["step"], row["train_time"]) == (1, 1, 40, 10.0)
    assert row["eval_time"] == pytest.approx(0.5) and row["eval_overhead"] == pytest.approx(0.05)


def test_conditional_reads_the_final_test_line(tmp_path):
    run = _fake_run(tmp_path / "conditional" / "seed0")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lines[2].update(images_seen=2560, eval_class_accuracy=0.5, eval_intra_fd=9.0)   # final validation line
    lines[3].update(images_seen=2560, eval_class_accuracy=0.9, eval_intra_fd=4.0)   # final test line
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    row = conditional.read_final(run)
    assert row == {"step": 40, "images_seen": 2560, "split": "test", "features": V3, "fd": 5.0, "kid": 0.5,
                   "precision": 0.6, "recall": 0.4, "coverage": 0.8, "class_accuracy": 0.9, "intra_fd": 4.0}


def test_progressive_reports_the_test_line_and_keeps_it_off_the_curve():
    records = [{"step": 10, "time": 1.0, "loss_d": 1.0, "resolution": 8},
               {"step": 10, "time": 1.0, "eval_fd": 9.0, "eval_split": "validation"},
               {"step": 20, "time": 2.0, "loss_d": 0.9, "resolution": 32},
               {"step": 20, "time": 2.0, "final": True, "eval_fd": 7.0, "eval_kid": 0.2, "eval_split": "validation"},
               {"step": 20, "time": 2.0, "final": True, "eval_fd": 6.0, "eval_kid": 0.1, "eval_split": "test"}]
    assert progressive.read_back(records) == {"seconds": 2.0, "final_resolution": 32, "eval_fd": 6.0, "eval_kid": 0.1,
                                              "eval_split": "test", "curve": [(1.0, 9.0), (2.0, 7.0)]}
