"""The run-folder contract, second half: metrics lines and their reading, truncation on resume, run-folder checks,
output-path checks and the lock (fast: tmp_path files only, no training; exact contents, messages and counts)."""

from __future__ import annotations

import json
import locale
import os
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ganstab.config import dump_yaml, validate
from ganstab.errors import AblationError, CheckpointError, PathError, RunInUse
from ganstab.rundir import (
    CONFIG_FILE, GENERATOR_META, LOCK_FILE, METRICS_FILE, PLAN_FILE, RUN_FILES, JsonLines, RunLock, SkippedLine,
    _deduplicate, _read_lock, _step, acquire_lock, check_not_run_owned, check_output_path, check_study_out,
    finished_export, holds_run, is_ablation_dir, is_eval_record, is_metric_key, is_run_dir, is_test_record,
    is_training_record, load_run_config, metrics_problem, pid_alive, prepare_out_dir, read_metrics, read_records,
    rewrite_jsonl, run_owned_part, truncate_findings, truncate_metrics, write_config,
)

HOST = socket.gethostname()


def _lines(path: Path, *lines: str | bytes) -> Path:
    """Write raw lines (each followed by a newline) to path."""
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


@pytest.fixture(autouse=True)
def _probes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let os.kill send only signal 0 (the probe of pid_alive): any other signal fails the test instead of reaching
    the process, so that a broken pid_alive cannot signal pytest, its parent or init."""
    real_kill = os.kill

    def kill(pid: int, signal: int) -> None:
        if signal != 0:
            pytest.fail(f"signal {signal} sent to process {pid}")
        real_kill(pid, signal)

    monkeypatch.setattr(os, "kill", kill)


def _dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# ------------------------------------------------------------------------------------------ metrics_problem
@pytest.mark.parametrize("record, problem", [
    ([1], "a JSON list, not an object"),
    ("x", "a JSON str, not an object"),
    ({}, "'step' must be a non-negative integer, got null"),
    ({"step": True}, "'step' must be a non-negative integer, got true"),
    ({"step": -1}, "'step' must be a non-negative integer, got -1"),
    ({"step": 1.5}, "'step' must be a non-negative integer, got 1.5"),
    ({"step": "a" * 60}, "'step' must be a non-negative integer, got \"" + "a" * 39),
    ({"step": 0, "final": 1}, "'final' must be true or false, got 1"),
    ({"step": 0, "quick": "b" * 60}, "'quick' must be true or false, got \"" + "b" * 39),
    ({"step": 0, "nonfinite": "loss_d"}, "'nonfinite' must be a list of key names"),
    ({"step": 0, "nonfinite": ["loss_d", 3]}, "'nonfinite' must be a list of key names"),
    ({"step": 0, "eval_features": 5}, "'eval_features' must be a text of at most 200 characters, got 5"),
    ({"step": 0, "eval_resize": "r" * 201}, "'eval_resize' must be a text of at most 200 characters, got \""
     + "r" * 39),
    ({"step": 0, "eval_split": "train"}, "'eval_split' must be validation or test, got \"train\""),
    ({"step": 0, "eval_split": "t" * 60}, "'eval_split' must be validation or test, got \"" + "t" * 39),
    ({"step": 0, "loss_d": "1"}, "'loss_d' must be a number or null, got str"),
    ({"step": 0, "loss_d": True}, "'loss_d' must be a number or null, got bool"),
    ({"step": 0, "loss_d": [1]}, "'loss_d' must be a number or null, got list"),
    ({"step": 0, "loss_d": float("inf")}, "'loss_d' is inf (JSON has no such number; ganstab writes null)"),
    ({"step": 0, "loss_d": float("-inf")}, "'loss_d' is -inf (JSON has no such number; ganstab writes null)"),
    ({"step": 0, "loss_d": float("nan")}, "'loss_d' is nan (JSON has no such number; ganstab writes null)"),
    ({"step": 0, "a": "x", "b": "y"}, "'a' must be a number or null, got str"),  # the first problem in line order
    ({"step": 3, "final": False, "eval_fd": float("inf"), "final2": "x"},
     "'eval_fd' is inf (JSON has no such number; ganstab writes null)"),
])
def test_metrics_problem_names_the_first_broken_key(record: object, problem: str) -> None:
    assert metrics_problem(record) == problem


@pytest.mark.parametrize("record", [
    {"step": 0},
    {"step": 7, "final": True, "quick": False, "nonfinite": [], "loss_d": None, "loss_g": 1, "d_real": -0.5},
    {"step": 1, "nonfinite": ["loss_d", "loss_g"], "eval_split": "validation", "eval_features": "f" * 200,
     "eval_resize": "", "eval_n": 100, "eval_fd": 1e300},
    {"step": 2, "eval_split": "test", "final": True},
])
def test_metrics_problem_accepts_lines_that_keep_the_contract(record: dict) -> None:
    assert metrics_problem(record) is None


# ------------------------------------------------------------------------------------------ rewrite_jsonl
def test_rewrite_jsonl_keeps_accepted_and_damaged_lines_and_drops_a_torn_last_line(tmp_path: Path) -> None:
    path = _lines(tmp_path / "f.jsonl", '  {"a": 1}  ', "", '{"a": 2}', b"\xff\xfe", "not json", "[1, 2]",
                  '{"a": 3, "bad": 1}', '{"a": 4}', "   ", '{"a": 5, "tor')
    damaged = rewrite_jsonl(path, lambda r: r["a"] != 2, lambda r: "bad key" if "bad" in r else None)
    assert path.read_bytes() == (b'{"a": 1}\n\xff\xfe\nnot json\n[1, 2]\n{"a": 3, "bad": 1}\n{"a": 4}\n')
    assert damaged == [SkippedLine(path, 4, "not UTF-8 text"), SkippedLine(path, 5, "not JSON"),
                       SkippedLine(path, 6, "a JSON list, not an object"), SkippedLine(path, 7, "bad key"),
                       SkippedLine(path, 10, "not JSON")]


@pytest.mark.parametrize("last, reason", [(b"\xff", "not UTF-8 text"), (b"[3]", "a JSON list, not an object"),
                                          (b'{"a": 9, "bad": 1}', "bad key")])
def test_rewrite_jsonl_keeps_a_last_line_that_is_damaged_but_not_torn(tmp_path: Path, last: bytes,
                                                                      reason: str) -> None:
    path = _lines(tmp_path / "f.jsonl", '{"a": 1}', last)
    damaged = rewrite_jsonl(path, lambda r: True, lambda r: "bad key" if "bad" in r else None)
    assert path.read_bytes() == b'{"a": 1}\n' + last + b"\n"
    assert damaged == [SkippedLine(path, 2, reason)]


def test_rewrite_jsonl_of_a_single_torn_line_and_of_a_missing_or_blank_file(tmp_path: Path) -> None:
    torn = _lines(tmp_path / "torn.jsonl", '{"a"')
    assert rewrite_jsonl(torn, lambda r: True) == [SkippedLine(torn, 1, "not JSON")]
    assert torn.read_bytes() == b""
    one = _lines(tmp_path / "one.jsonl", '{"a": 1}')
    assert rewrite_jsonl(one, lambda r: True) == []
    assert one.read_bytes() == b'{"a": 1}\n'
    blank = _lines(tmp_path / "blank.jsonl", "", "  ")
    assert rewrite_jsonl(blank, lambda r: True) == []
    assert blank.read_bytes() == b""
    missing = tmp_path / "missing.jsonl"
    assert rewrite_jsonl(missing, lambda r: True) == []
    assert not missing.exists()


def test_rewrite_jsonl_checks_nothing_without_a_check(tmp_path: Path) -> None:
    path = _lines(tmp_path / "f.jsonl", '{"step": -1}', '{"step": 1}')
    assert rewrite_jsonl(path, lambda r: r["step"] < 0) == []
    assert path.read_bytes() == b'{"step": -1}\n'


# ------------------------------------------------------------------------------------------ kinds of lines
@pytest.mark.parametrize("record, evaluation, test, training", [
    ({"step": 1, "eval_fd": 3.0}, True, False, False),
    ({"step": 1, "eval_fd": 3.0, "eval_split": "validation"}, True, False, False),
    ({"step": 1, "eval_split": "validation"}, True, False, False),
    ({"step": 1, "eval_fd": 3.0, "eval_split": "test"}, False, True, False),
    ({"step": 1, "eval_split": "test"}, False, True, False),
    ({"step": 1, "loss_d": 0.5}, False, False, True),
    ({"step": 1, "lr_d": 0.5, "eval_fd": 1.0}, True, False, True),
    ({"step": 1, "evalfd": 1.0, "EVAL_fd": 2.0}, False, False, False),
    ({1: "x", "step": 2}, False, False, False),
    ({}, False, False, False),
])
def test_kinds_of_metrics_lines(record: dict, evaluation: bool, test: bool, training: bool) -> None:
    assert (is_eval_record(record), is_test_record(record), is_training_record(record)) == (evaluation, test,
                                                                                          training)


@pytest.mark.parametrize("key, metric", [("eval_fd", True), ("eval_", True), ("eval_split", False),
                                         ("eval_n", False), ("eval_reference_n", False), ("eval_features", False),
                                         ("eval_resize", False), ("fd", False), ("Eval_fd", False),
                                         ("xeval_fd", False), (3, False), (None, False)])
def test_is_metric_key(key: object, metric: bool) -> None:
    assert is_metric_key(key) is metric


@pytest.mark.parametrize("record, step", [({"step": 3}, 3.0), ({"step": 2.5}, 2.5), ({"step": 0}, 0.0),
                                          ({"step": True}, None), ({"step": False}, None), ({"step": "3"}, None),
                                          ({"step": None}, None), ({}, None), ({"step": [1]}, None)])
def test_step_of_a_record(record: dict, step: float | None) -> None:
    value = _step(record)
    assert value == step and type(value) is type(step)


# ------------------------------------------------------------------------------------------ resume deduplication
def test_deduplicate_drops_the_lines_a_resumed_run_logged_again_per_kind() -> None:
    records = [
        {"step": 0, "loss_d": 1},
        {"step": 10, "loss_d": 2},
        {"step": 10, "eval_fd": 5},
        {"step": 20, "loss_d": 3},
        {"step": 10, "loss_d": 4},  # training resumed at 10: the training lines at 10 and 20 go, the eval stays
        {"step": 10, "eval_fd": 6},  # an eval at the same step again: the earlier one goes
        {"step": 10, "eval_fd": 1, "eval_split": "test"},
        {"step": 10, "eval_fd": 2, "eval_split": "test"},  # a test line again: the earlier test line goes
        {"note": "no step"},
        {"step": 15, "loss_d": 5},
    ]
    assert _deduplicate(records) == [records[0], records[4], records[5], records[7], records[8], records[9]]


def test_deduplicate_keeps_increasing_steps_and_reads_a_missing_step_as_zero() -> None:
    increasing = [{"step": 0, "loss_d": 1}, {"step": 0, "eval_fd": 1}, {"step": 1, "loss_d": 2},
                  {"step": 1, "eval_fd": 2, "eval_split": "test"}, {"step": 2, "eval_fd": 3}]
    assert _deduplicate(increasing) == increasing
    no_step = [{"loss_d": 1}, {"step": 1, "loss_d": 2}, {"step": 1, "loss_d": 3}]
    assert _deduplicate(no_step) == [no_step[0], no_step[2]]
    at_zero = [{"loss_d": 1}, {"step": 0, "loss_d": 2}, {"step": 0, "loss_d": 3}]
    assert _deduplicate(at_zero) == [at_zero[2]]
    bool_step = [{"step": 5, "loss_d": 1}, {"step": True, "loss_d": 2}]
    assert _deduplicate(bool_step) == bool_step
    assert _deduplicate([]) == []


def test_deduplicate_a_line_of_two_kinds_counts_for_both() -> None:
    records = [{"step": 4, "loss_d": 1}, {"step": 4, "eval_fd": 1}, {"step": 4, "loss_d": 2, "eval_fd": 2}]
    assert _deduplicate(records) == [records[2]]


# ------------------------------------------------------------------------------------------ read_metrics
def test_read_metrics_of_a_run_folder_or_its_file(tmp_path: Path) -> None:
    path = _lines(tmp_path / METRICS_FILE, '{"step": 0, "loss_d": 1}', '{"step": -1, "loss_d": 1}',
                  '{"step": 5, "loss_d": 2}', "", '{"step": 5, "loss_d": 3}', '{"step": 7, "lo')
    expected = JsonLines([{"step": 0, "loss_d": 1}, {"step": 5, "loss_d": 3}],
                         [SkippedLine(path, 2, "'step' must be a non-negative integer, got -1"),
                          SkippedLine(path, 6, "not JSON")], 6)
    assert read_metrics(tmp_path) == expected
    assert read_metrics(str(path)) == expected
    assert read_records(tmp_path) == expected.records
    assert read_metrics(tmp_path / "elsewhere") == JsonLines([], [], 0)
    assert read_records(tmp_path / "elsewhere") == []


# ------------------------------------------------------------------------------------------ truncation on resume
def test_truncate_metrics_keeps_lines_up_to_the_resumed_step(tmp_path: Path) -> None:
    lines = ['{"step": 0, "loss_d": 1}', '{"step": 5, "loss_d": 2}', '{"step": 10, "eval_fd": 3}',
             '{"step": -2}', '{"step": 12, "loss_d": 4, "final": true}', '{"step": 15, "loss_d": 5}']
    path = _lines(tmp_path / METRICS_FILE, *lines, '{"step": 16, "lo')
    damaged = truncate_metrics(path, 12, every=5)  # 12 is off the interval of 5: its final line goes too
    assert path.read_text() == "\n".join(lines[:4]) + "\n"
    assert damaged == [SkippedLine(path, 4, "'step' must be a non-negative integer, got -2"),
                       SkippedLine(path, 7, "not JSON")]
    _lines(path, *lines)
    assert truncate_metrics(path, 12, every=4) == [SkippedLine(path, 4, "'step' must be a non-negative integer, "
                                                                        "got -2")]
    assert path.read_text() == "\n".join(lines[:5]) + "\n"
    _lines(path, *lines)
    truncate_metrics(path, 12)  # every step is on the default interval of 1
    assert path.read_text() == "\n".join(lines[:5]) + "\n"
    _lines(path, *lines)
    truncate_metrics(path, 15)
    assert path.read_text() == "\n".join(lines) + "\n"
    _lines(path, *lines)
    truncate_metrics(path, 10, every=5)
    assert path.read_text() == "\n".join(lines[:4]) + "\n"
    _lines(path, *lines)
    truncate_metrics(path, 0, every=7)
    assert path.read_text() == lines[0] + "\n" + lines[3] + "\n"


def test_truncate_findings_drops_findings_that_start_after_the_resumed_step(tmp_path: Path) -> None:
    lines = ['{"id": 1, "start_step": 0}', '{"id": 2}', '{"id": 3, "start_step": 3}', '{"id": 4, "start_step": 4}',
             '{"id": 5, "start_step": "2"}', '{"id": 6, "start_step": "x"}', '{"id": 7, "start_step": null}',
             '{"id": 8, "start_step": Infinity}', '{"id": 9, "start_step": [1]}', '{"id": 10, "start_step": 2.9}',
             "[1]"]
    path = _lines(tmp_path / "findings.jsonl", *lines, '{"id": 11, "sta')
    assert truncate_findings(path, 3) == [SkippedLine(path, 11, "a JSON list, not an object"),
                                          SkippedLine(path, 12, "not JSON")]
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()[:-1]] == [1, 2, 3, 5, 10]
    assert path.read_text().splitlines()[-1] == "[1]"
    _lines(path, *lines[:4])
    assert truncate_findings(path, 0) == []
    assert path.read_text() == lines[0] + "\n" + lines[1] + "\n"


# ------------------------------------------------------------------------------------------ what a folder holds
@pytest.mark.parametrize("name, is_folder", [(CONFIG_FILE, False), (METRICS_FILE, False), ("checkpoints", True)])
def test_holds_run_with_any_one_of_its_files(tmp_path: Path, name: str, is_folder: bool) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert not holds_run(run)
    (run / "findings.jsonl").write_text("")
    (run / "notes").mkdir()
    assert not holds_run(run)
    (run / name).mkdir() if is_folder else (run / name).write_text("")
    assert holds_run(run) and holds_run(str(run))
    assert not holds_run(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    assert not holds_run(tmp_path / "file")


def test_is_run_dir_is_ablation_dir_and_finished_export(tmp_path: Path) -> None:
    assert not is_run_dir(tmp_path) and not is_ablation_dir(tmp_path)
    (tmp_path / CONFIG_FILE).mkdir()
    (tmp_path / PLAN_FILE).mkdir()
    assert not is_run_dir(tmp_path) and not is_ablation_dir(tmp_path)
    run, study = tmp_path / "run", tmp_path / "study"
    run.mkdir()
    study.mkdir()
    (run / CONFIG_FILE).write_text("")
    (study / PLAN_FILE).write_text("")
    assert is_run_dir(run) and is_run_dir(str(run)) and not is_ablation_dir(run)
    assert is_ablation_dir(study) and is_ablation_dir(str(study)) and not is_run_dir(study)
    meta = run / GENERATOR_META
    assert not finished_export(run)
    for content, finished in [(b'{"interrupted": false}', True), (b"{}", True), (b'{"interrupted": true}', False),
                              (b'{"interrupted": 1}', False), (b"[]", False), (b"3", False), (b'{"a"', False),
                              (b'{"\xff": 1}', False)]:
        meta.write_bytes(content)
        assert finished_export(run) is finished, content
    assert finished_export(str(run)) is False
    meta.unlink()
    meta.mkdir()
    assert finished_export(run) is False


# ------------------------------------------------------------------------------------------ the config of a run
def test_write_config_and_load_run_config(tmp_path: Path) -> None:
    cfg = validate({"seed": 5, "train": {"steps": 30}})
    run = tmp_path / "run"
    run.mkdir()
    assert write_config(str(run), cfg) == run / CONFIG_FILE
    assert (run / CONFIG_FILE).read_text() == dump_yaml(cfg)
    assert load_run_config(str(run)) == cfg and load_run_config(run).seed == 5
    (run / CONFIG_FILE).write_text("seed: 9\n")
    assert load_run_config(run) == validate({"seed": 9})
    with pytest.raises(CheckpointError) as info:
        load_run_config(tmp_path / "other")
    assert str(info.value) == f"{str(tmp_path / 'other')!r} is not a ganstab run directory (no config.yaml)"
    (tmp_path / "odd" / CONFIG_FILE).mkdir(parents=True)
    with pytest.raises(CheckpointError, match=r"^'.*odd' is not a ganstab run directory \(no config.yaml\)$"):
        load_run_config(str(tmp_path / "odd"))


# ------------------------------------------------------------------------------------------ prepare_out_dir
def _full_run(run: Path) -> None:
    for name in RUN_FILES:
        if name in ("checkpoints", "samples", "best", METRICS_FILE):  # metrics.jsonl as a folder: removed too
            (run / name / "inner").mkdir(parents=True)
            (run / name / "inner" / "x").write_text("x")
        else:
            (run / name).write_text(name)
    for name in ("notes.txt", "train.log", LOCK_FILE):
        (run / name).write_text(name)


def test_prepare_out_dir_refuses_clears_or_leaves_a_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _full_run(run)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(CheckpointError) as info:
        prepare_out_dir(run, overwrite=False)
    assert str(info.value) == (f"output directory {str(run)!r} already holds a run; pass --overwrite to replace it, "
                               f"--resume {run} to continue it, or choose another out=DIR")
    with pytest.raises(CheckpointError):
        prepare_out_dir(run, overwrite=False, dry_run=True)
    prepare_out_dir(str(run), overwrite=True, dry_run=True)
    assert sorted(p.name for p in run.iterdir()) == before
    prepare_out_dir(run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "notes.txt", "train.log"]
    prepare_out_dir(run, overwrite=False)  # holds no run any more
    missing = tmp_path / "new"
    prepare_out_dir(missing, overwrite=False)
    prepare_out_dir(missing, overwrite=True)
    assert not missing.exists()
    file = tmp_path / "file"
    file.write_text("keep")
    for overwrite in (False, True):
        with pytest.raises(CheckpointError) as info:
            prepare_out_dir(file, overwrite=overwrite)
        assert str(info.value) == f"output path {str(file)!r} is a file; choose another out=DIR"
    assert file.read_text() == "keep"


# ------------------------------------------------------------------------------------------ check_output_path
def _path_of_bytes(root: Path, total: int) -> Path:
    """A path below root whose absolute form is exactly `total` bytes, in names of at most 200 bytes."""
    path = root
    while len(os.fsencode(os.path.abspath(path))) + 201 < total:
        path = path / ("d" * 200)
    rest = total - len(os.fsencode(os.path.abspath(path))) - 1
    return path / ("f" * rest)


def test_check_output_path_refuses_a_path_too_long_for_the_system(tmp_path: Path) -> None:
    check_output_path(_path_of_bytes(tmp_path, 4095), "out", "fix it")
    for total, size, label, fix in ((4096, "4,096", "out", "fix it"), (5000, "5,000", "--out", "choose")):
        long = _path_of_bytes(tmp_path, total)
        with pytest.raises(PathError) as info:
            check_output_path(long, label, fix)
        assert str(info.value) == (f"{label} '{str(long)[:40]}...' is {size} bytes long, more than the 4,096 the "
                                   f"system allows; {fix}")
    assert not any(tmp_path.iterdir())


def test_check_output_path_refuses_a_name_too_long_for_a_file_system(tmp_path: Path) -> None:
    check_output_path(tmp_path / ("n" * 255) / "x", "out", "fix")
    for name, size in (("é" * 128, "256"), ("n" * 1000, "1,000")):
        path = tmp_path / name / "x"
        with pytest.raises(PathError) as info:
            check_output_path(path, "out", "fix")
        assert str(info.value) == (f"out {str(path)!r} has a name of {size} bytes, more than the 255 a file system "
                                   "allows; fix")
    assert not any(tmp_path.iterdir())


def test_check_output_path_refuses_a_path_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    for path in (tmp_path / "f" / "run", tmp_path / "f" / "a" / "b"):
        with pytest.raises(PathError) as info:
            check_output_path(path, "out", "fix")
        assert str(info.value) == f"out {str(path)!r} lies below {str(tmp_path / 'f')!r}, which is a file; fix"
    check_output_path(tmp_path / "f", "out", "fix")  # the file itself may be replaced
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    check_output_path(tmp_path / "dangling", "out", "fix")
    with pytest.raises(PathError, match="lies below '.*dangling', which is a file; fix$"):
        check_output_path(tmp_path / "dangling" / "x", "out", "fix")


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path, allowed: int, read_only: bool = False) -> list[str]:
    """Let os.access see `folder` with only the `allowed` access bits (as a user who is not root would); every
    folder asked about is listed."""
    asked: list[str] = []
    real_access = os.access

    def access(path: object, mode: int) -> bool:
        asked.append(str(path))
        return mode & ~allowed == 0 if Path(str(path)) == folder else real_access(path, mode)

    real_statvfs = os.statvfs

    def statvfs(path: object) -> object:
        return SimpleNamespace(f_flag=os.ST_RDONLY | 2 if read_only else 2) if Path(str(path)) == folder \
            else real_statvfs(path)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "statvfs", statvfs)
    return asked


def test_check_output_path_refuses_an_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "file").write_text("")
    asked = _deny(monkeypatch, folder, os.R_OK | os.X_OK)
    for path in (folder / "new" / "run", folder / "file", folder, folder / "new"):
        with pytest.raises(PathError) as info:
            check_output_path(path, "out", "fix")
        assert str(info.value) == (f"out {str(path)!r} cannot be written: {str(folder)!r} is not writable "
                                   "(permission denied); fix")
    assert asked == [str(folder)] * 4
    check_output_path(tmp_path / "elsewhere", "out", "fix")
    assert not (tmp_path / "elsewhere").exists()


def test_check_output_path_names_a_read_only_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _deny(monkeypatch, tmp_path, os.R_OK | os.X_OK, read_only=True)
    with pytest.raises(PathError) as info:
        check_output_path(tmp_path / "run", "out", "fix")
    assert str(info.value) == (f"out {str(tmp_path / 'run')!r} cannot be written: {str(tmp_path)!r} is not writable "
                               "(a read-only file system); fix")


def test_check_output_path_needs_a_searchable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _deny(monkeypatch, tmp_path, os.R_OK | os.W_OK)
    with pytest.raises(PathError, match=r"is not writable \(permission denied\); fix$"):
        check_output_path(tmp_path / "run", "out", "fix")


def test_check_output_path_of_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    check_output_path("a/b", "out", "fix")
    Path("f").write_text("")
    with pytest.raises(PathError) as info:
        check_output_path("f/b", "out", "fix")
    assert str(info.value) == "out 'f/b' lies below 'f', which is a file; fix"


# ------------------------------------------------------------------------------------------ what a run owns
def test_run_owned_part(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert run_owned_part(run, run) == ""
    assert run_owned_part(str(run / "sub" / ".."), str(run)) == ""
    for name in (*RUN_FILES, LOCK_FILE, "train.log", "eval-n100-seed0.json", "eval-n5-seed12-best.json"):
        assert run_owned_part(run / name, run) == name
    assert run_owned_part(run / "checkpoints" / "ckpt_0000010.pt", run) == "checkpoints"
    assert run_owned_part(run / "plots" / "a" / "b.png", run) == "plots"
    for other in (run / "notes", run / "eval-n100.json", run / "notes" / "config.yaml", tmp_path, tmp_path / "x",
                  tmp_path / "runs" / "metrics.jsonl"):
        assert run_owned_part(other, run) is None
    os.symlink("loop", tmp_path / "loop")
    assert run_owned_part(tmp_path / "loop", run) is None
    assert run_owned_part(run, tmp_path / "loop") is None


def test_check_not_run_owned_names_the_part_and_the_run(tmp_path: Path) -> None:
    run, other = tmp_path / "run", tmp_path / "other"
    run.mkdir()
    other.mkdir()
    cases = [
        (run, [run], f"out {str(run)!r} is the run folder {str(run)!r} itself; fix"),
        (run / "plots", [other, run],
         f"out {str(run / 'plots')!r} is plots, which belongs to the run {str(run)!r}; fix"),
        (run / "plots" / "x.png", [run], f"out {str(run / 'plots' / 'x.png')!r} lies in plots, which belongs to the "
                                         f"run {str(run)!r}; fix"),
    ]
    for path, runs, message in cases:
        with pytest.raises(PathError) as info:
            check_not_run_owned(path, runs, "out", "fix")
        assert str(info.value) == message
    check_not_run_owned(run / "notes", [run, other], "out", "fix")
    check_not_run_owned(other / "plots", [run], "out", "fix")
    (run / CONFIG_FILE).write_text("")  # now found without being named
    with pytest.raises(PathError) as info:
        check_not_run_owned(run / "samples" / "a", [], "out", "fix")
    assert str(info.value) == (f"out {str(run / 'samples' / 'a')!r} lies in samples, which belongs to the run "
                               f"{str(run.resolve())!r}; fix")
    check_not_run_owned(run / "notes" / "a", [], "out", "fix")
    check_not_run_owned(run, [], "out", "fix")  # the folder itself is not among its parents
    os.symlink("loop", tmp_path / "loop")
    check_not_run_owned(tmp_path / "loop", [], "out", "fix")


def test_check_study_out(tmp_path: Path) -> None:
    check_study_out(tmp_path / "study", "an ablation", AblationError)
    assert not (tmp_path / "study").exists()
    (tmp_path / "f").write_text("")
    cases = [
        (tmp_path / "f", AblationError, f"--out {str(tmp_path / 'f')!r} is a file; choose a folder"),
        (tmp_path / "f" / "x", PathError, f"--out {str(tmp_path / 'f' / 'x')!r} lies below {str(tmp_path / 'f')!r}, "
                                          "which is a file; choose another folder"),
    ]
    run = tmp_path / "run"
    (run / "plots").mkdir(parents=True)
    (run / CONFIG_FILE).write_text("")
    cases += [(run, AblationError, f"--out {str(run)!r} holds a single run, not an ablation; choose another folder"),
              (run / "plots", PathError, f"--out {str(run / 'plots')!r} is plots, which belongs to the run "
                                         f"{str(run.resolve())!r}; choose a folder outside the run")]
    for out, error, message in cases:
        with pytest.raises(error) as info:
            check_study_out(str(out), "an ablation", AblationError)
        assert type(info.value) is error and str(info.value) == message
    check_study_out(run / "studies", "an ablation", AblationError)


# ------------------------------------------------------------------------------------------ pid_alive
def test_pid_alive_of_live_dead_zombie_and_unsignalable_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pid_alive(os.getpid()) is True
    assert pid_alive(_dead_pid()) is False
    child = subprocess.Popen(["true"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pid_alive(child.pid) is False  # a zombie: exited, not yet reaped
    finally:
        child.wait()

    def refuse(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refuse)
    assert pid_alive(_dead_pid()) is True  # a process we may not signal counts as alive


def test_pid_alive_without_proc_counts_a_signalable_process_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.read_text

    def no_proc(self: Path, *args: object, **kwargs: object) -> str:
        if str(self).startswith("/proc/"):
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_proc)
    assert pid_alive(os.getpid()) is True
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "12 (odd name")  # no ')' : IndexError
    assert pid_alive(os.getpid()) is True
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "12 (a) Z b) S 1 2")  # the name holds ") Z"
    assert pid_alive(os.getpid()) is True
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "12 (a) b) Z 1 2")
    assert pid_alive(os.getpid()) is False


# ------------------------------------------------------------------------------------------ _read_lock
def test_read_lock_reads_pid_and_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    lock = tmp_path / LOCK_FILE
    assert _read_lock(lock, "here") == (-1, "here")
    lock.write_text('{"pid": "12", "host": 5}')
    assert _read_lock(lock, "here") == (12, "5")
    assert sleeps == []
    for torn in ("", '{"pid": 3', '{"pid": 3}', '{"host": "h"}', "[1]", '{"pid": "x", "host": "h"}',
                 '{"pid": null, "host": "h"}'):
        lock.write_text(torn)
        assert _read_lock(lock, "here") == (-1, "here"), torn
        assert sleeps == [0.05] * 20
        sleeps.clear()
    lock.write_bytes(b"\xff")
    assert _read_lock(lock, "here") == (-1, "here") and len(sleeps) == 20


def test_read_lock_waits_for_an_owner_that_is_writing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / LOCK_FILE
    lock.write_text("")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 19:
            lock.write_text('{"pid": 77, "host": "there"}')

    monkeypatch.setattr(time, "sleep", sleep)
    assert _read_lock(lock, "here") == (77, "there")
    assert len(sleeps) == 19
    lock.write_text("")
    sleeps.clear()

    def vanish(seconds: float) -> None:
        sleeps.append(seconds)
        lock.unlink()

    monkeypatch.setattr(time, "sleep", vanish)
    assert _read_lock(lock, "here") == (-1, "here") and sleeps == [0.05]


# ------------------------------------------------------------------------------------------ RunLock
def test_run_lock_release_removes_only_its_own_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    lock = run / LOCK_FILE
    ours = json.dumps({"pid": os.getpid(), "host": HOST})
    for content, removed in [(ours, True), (json.dumps({"pid": os.getpid() + 1, "host": HOST}), False),
                             (json.dumps({"pid": os.getpid(), "host": HOST + "x"}), False),
                             (json.dumps({"pid": os.getpid()}), False), (json.dumps({"host": HOST}), False),
                             ("[1]", False), ("{", False), ("", False)]:
        lock.write_text(content)
        RunLock(lock).release()
        assert lock.exists() is not removed, content
        assert run.is_dir()
    lock.unlink()
    RunLock(lock).release()  # no lock: nothing to do
    assert run.is_dir()
    RunLock(lock, created_folder=True).release()  # we made the folder and nothing was written: it goes
    assert not run.exists()
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    lock.write_text(ours)
    with RunLock(lock, True) as held:
        assert held.path == lock and held.created_folder is True and lock.exists()
    assert not lock.exists() and (run / "metrics.jsonl").exists()


# ------------------------------------------------------------------------------------------ acquire_lock
def test_acquire_lock_creates_the_folder_and_writes_pid_and_host(tmp_path: Path) -> None:
    run = tmp_path / "a" / "run"
    old = os.umask(0o022)
    try:
        lock = acquire_lock(str(run), echo=pytest.fail)
    finally:
        os.umask(old)
    assert lock == RunLock(run / LOCK_FILE, True)
    assert (run / LOCK_FILE).read_text() == json.dumps({"pid": os.getpid(), "host": HOST})
    assert (run / LOCK_FILE).stat().st_mode & 0o777 == 0o644
    lock.release()
    assert not run.exists() and (tmp_path / "a").is_dir()
    (tmp_path / "b").mkdir()
    with acquire_lock(tmp_path / "b", echo=pytest.fail) as held:
        assert held == RunLock(tmp_path / "b" / LOCK_FILE, False)
    assert list((tmp_path / "b").iterdir()) == []


def test_acquire_lock_refuses_a_file_and_a_path_below_a_file(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("keep")
    with pytest.raises(CheckpointError) as info:
        acquire_lock(file, echo=pytest.fail)
    assert str(info.value) == f"output path {str(file)!r} is a file; choose another out=DIR"
    with pytest.raises(PathError) as info:
        acquire_lock(file / "run", echo=pytest.fail)
    assert str(info.value) == (f"output path {str(file / 'run')!r} lies below {str(file)!r}, which is a file; "
                               "choose another out=DIR")
    assert file.read_text() == "keep" and sorted(tmp_path.iterdir()) == [file]


@pytest.mark.parametrize("owner", ["parent", "self", "init", "other host"])
def test_acquire_lock_refuses_a_live_owner(tmp_path: Path, owner: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pid, host = {"parent": (os.getppid(), HOST), "self": (os.getpid(), HOST), "init": (1, HOST),
                 "other host": (_dead_pid(), "elsewhere")}[owner]
    content = json.dumps({"pid": pid, "host": host})
    (run / LOCK_FILE).write_text(content)
    with pytest.raises(RunInUse) as info:
        acquire_lock(run, echo=pytest.fail, what="ablation folder")
    assert str(info.value) == (f"ablation folder {str(run)!r} is in use by process {pid} on {host}; "
                               "wait for it to finish or stop it first")
    assert (run / LOCK_FILE).read_text() == content


@pytest.mark.parametrize("content, stale", [("dead", True), ('{"pid": 0, "host": "%s"}' % HOST, False),
                                            ('{"pid": -5, "host": "%s"}' % HOST, False), ("", False)])
def test_acquire_lock_takes_over_a_dead_or_unreadable_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           content: str, stale: bool) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    run = tmp_path / "run"
    run.mkdir()
    pid = _dead_pid()
    (run / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": HOST}) if content == "dead" else content)
    messages: list[str] = []
    lock = acquire_lock(run, echo=messages.append)
    assert messages == [f"taking over the stale lock of {str(run)!r} (process {pid} on {HOST} is gone)" if stale
                        else f"taking over the unreadable lock of {str(run)!r} (left by a process that died while "
                             "taking it)"]
    assert lock == RunLock(run / LOCK_FILE, False)
    assert (run / LOCK_FILE).read_text() == json.dumps({"pid": os.getpid(), "host": HOST})


def test_acquire_lock_gives_up_on_a_lock_that_keeps_changing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    dead = _dead_pid()
    real_open = os.open

    def contended(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(LOCK_FILE):  # another process writes a stale lock again before each try
            Path(str(path)).write_text(json.dumps({"pid": dead, "host": HOST}))
            raise FileExistsError(17, "File exists", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", contended)
    messages: list[str] = []
    with pytest.raises(RunInUse) as info:
        acquire_lock(run, echo=messages.append, what="tuning folder")
    assert str(info.value) == (f"tuning folder {str(run)!r} is in use (its lock keeps changing); wait for the other "
                               "process to finish or stop it first")
    assert messages == [f"taking over the stale lock of {str(run)!r} (process {dead} on {HOST} is gone)"] * 3


def test_acquire_lock_tolerates_a_lock_removed_while_taking_it_over(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    dead = _dead_pid()
    (run / LOCK_FILE).write_text(json.dumps({"pid": dead, "host": HOST}))
    messages: list[str] = []

    def echo(message: str) -> None:  # the other process removes its stale lock while we report it
        messages.append(message)
        (run / LOCK_FILE).unlink()

    lock = acquire_lock(run, echo=echo)
    assert len(messages) == 1 and lock == RunLock(run / LOCK_FILE, False)
    assert (run / LOCK_FILE).read_text() == json.dumps({"pid": os.getpid(), "host": HOST})


def test_acquire_lock_of_a_folder_it_made_removes_it_when_refused(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    real_open = os.open

    def raced(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(LOCK_FILE):  # a lock of this very process appears between mkdir and open
            Path(str(path)).write_text(json.dumps({"pid": os.getpid(), "host": HOST}))
            raise FileExistsError(17, "File exists", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", raced)
    with pytest.raises(RunInUse) as info:
        acquire_lock(run, echo=pytest.fail)
    assert str(info.value) == (f"run folder {str(run)!r} is in use by process {os.getpid()} on {HOST}; "
                               "wait for it to finish or stop it first")
    assert not run.exists()



def test_locks_are_read_as_utf8_whatever_the_locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    foreign, ours = tmp_path / "foreign", tmp_path / "ours"
    foreign.write_bytes(json.dumps({"pid": 12, "host": "h\u00f4te"}, ensure_ascii=False).encode())
    ours.write_bytes(json.dumps({"pid": os.getpid(), "host": HOST, "note": "\u00e9t\u00e9"},
                                ensure_ascii=False).encode())
    previous = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # an ASCII locale: these files read without an encoding would fail
    try:
        owner = _read_lock(foreign, "here")
        RunLock(ours).release()
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)
    assert owner == (12, "h\u00f4te")
    assert not ours.exists()
