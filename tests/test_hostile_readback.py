"""Files read back are untrusted input (issue #25, part B): a table of hostile run folders and requests.

Each case damages a copy of one tiny trained run (or asks for something that cannot work) and runs one
command: the exact first line it prints (stderr first, then stdout), its exit status, no traceback, and
every file that existed before left as it was (only the files the command exists to write may change).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Callable

import pytest
import torch

from ganstab import ablate as ablate_module
from ganstab import export, rundir, tune
from ganstab.cli import main
from ganstab.cli import train as cli_train
from ganstab.cli.common import friendly_os_error
from ganstab.errors import CheckpointError
from ganstab.rundir import LOCK_FILE, atomic_write

HOST = socket.gethostname()
TINY = ["data.name=digits", "train.steps=4", "train.batch_size=16", "model.width=8", "log.every=1",
        "log.progress=false", "eval.n=64", "train.device=cpu"]
TOY = ["--preset", "toy", "train.steps=2", "train.batch_size=8", "model.width=8", "log.progress=false",
       "train.device=cpu", "eval.final=false"]
FREE = 8 * 10**9  # the memory the checks see in these tests (export.available_memory is patched)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny digits run (4 steps, a final evaluation of 64 samples), trained once per module."""
    run = tmp_path_factory.mktemp("base") / "run"
    assert main(["train", *TINY, f"out={run}"]) == 0
    return run


# ------------------------------------------------------------------------------------------ damage
def _lines(run: Path) -> list[bytes]:
    return (run / "metrics.jsonl").read_bytes().splitlines(keepends=True)


def insert_line(raw: bytes, at: int = 2) -> Callable[[Path], None]:
    """Put one raw line into metrics.jsonl before line `at` (0-based)."""
    def damage(run: Path) -> None:
        lines = _lines(run)
        lines.insert(at, raw + b"\n")
        (run / "metrics.jsonl").write_bytes(b"".join(lines))
    return damage


def replace_last_line(raw: bytes) -> Callable[[Path], None]:
    """A crash while the final (validation) evaluation line was written: it becomes `raw`, the last line, and
    the test line that follows it was never written."""
    def damage(run: Path) -> None:
        lines = _lines(run)
        assert b'"eval_split": "test"' in lines[-1] and b'"eval_split": "validation"' in lines[-2]
        (run / "metrics.jsonl").write_bytes(b"".join(lines[:-2]) + raw)
    return damage


def write(name: str, data: bytes) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        (run / name).write_bytes(data)
    return damage


def first_line_then(name: str, data: bytes) -> Callable[[Path], None]:
    """Keep the first line of a run file and put raw lines after it (line numbers that do not depend on how many
    findings the run had)."""
    def damage(run: Path) -> None:
        first = (run / name).read_bytes().splitlines(keepends=True)[0]
        (run / name).write_bytes(first + data)
    return damage


def edit_meta(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """Change generator.json (a parsed copy) and write it back."""
    def damage(run: Path) -> None:
        meta = json.loads((run / "generator.json").read_text())
        change(meta)
        (run / "generator.json").write_text(json.dumps(meta))
    return damage


def random_checkpoints(drop_export: bool) -> Callable[[Path], None]:
    """Every checkpoint replaced by random bytes with a matching checksum (so only loading finds the damage)."""
    def damage(run: Path) -> None:
        for path in (run / "checkpoints").glob("*.pt"):
            data = hashlib.sha256(path.name.encode()).digest() * 64
            path.write_bytes(data)
            path.with_name(path.name + ".sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
        if drop_export:
            (run / "generator.json").unlink()
            (run / "generator.safetensors").unlink()
    return damage


def checkpoint_config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """No export; every checkpoint's config changed (its checksum kept matching): only the checkpoint is sampled."""
    def damage(run: Path) -> None:
        (run / "generator.json").unlink()
        (run / "generator.safetensors").unlink()
        for path in (run / "checkpoints").glob("*.pt"):
            state = torch.load(path, weights_only=True)
            change(state["config"])
            torch.save(state, path)
            path.with_name(path.name + ".sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  "
                                                             f"{path.name}\n")
    return damage


def nothing(run: Path) -> None:
    """No damage (the request itself is hostile)."""


def lock_by_live_process(run: Path) -> None:
    """OUT/.lock held by a live process of this host, as a first ablate or tune process holds it."""
    run.mkdir(parents=True, exist_ok=True)
    (run / LOCK_FILE).write_text(json.dumps({"pid": os.getppid(), "host": HOST}))


def files(tmp: Path, **texts: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        for name, text in texts.items():
            (tmp / name).write_text(text)
    return damage


META_HINT = ("restore it, or delete generator.json and generator.safetensors to sample from the newest checkpoint")
SAMPLE = ["sample", "--run", "{run}", "--out", "{tmp}/s.png", "--n", "4"]
RESUME = ["train", "--resume", "{run}", "train.steps=5"]
SKIP = "ganstab: warning: skipped 1 damaged line of {run}/metrics.jsonl"
VARIANTS_DUP = "a:\n  loss.kind: hinge\n  loss:\n    kind: lsgan\n"
VARIANTS_ONE = "a:\n  loss.kind: hinge\n"
SPACE_BAD = "loss.kind:\n  choices: [hinge, bogus]\n"
SPACE_OK = "loss.kind:\n  choices: [hinge, nonsaturating]\n"

# name, damage, argv, exit status, exact first line, files the command may change (others must stay as they were)
CASES: list[tuple[str, Callable[[Path], None], list[str], int, str, tuple[str, ...]]] = [
    # --- metrics.jsonl lines the doctor skips and counts
    ("doctor_not_utf8", insert_line(b"\xff\xfe{}"), ["doctor", "{run}"], 0,
     SKIP + " (line 3: not UTF-8 text); the rest was read", ()),
    ("doctor_not_json", insert_line(b"hello"), ["doctor", "{run}"], 0, SKIP + " (line 3: not JSON); the rest was read", ()),
    ("doctor_json_list", insert_line(b"[1, 2]"), ["doctor", "{run}"], 0,
     SKIP + " (line 3: a JSON list, not an object); the rest was read", ()),
    ("doctor_step_text", insert_line(b'{"step": "abc", "loss_d": 1.0}'), ["doctor", "{run}"], 0,
     SKIP + " (line 3: 'step' must be a non-negative integer, got \"abc\"); the rest was read", ()),
    ("doctor_step_negative", insert_line(b'{"step": -3, "loss_d": 1.0}'), ["doctor", "{run}"], 0,
     SKIP + " (line 3: 'step' must be a non-negative integer, got -3); the rest was read", ()),
    ("doctor_nan_literal", insert_line(b'{"step": 3, "loss_d": NaN, "d_steps": 3}'), ["doctor", "{run}"], 0,
     SKIP + " (line 3: 'loss_d' is nan (JSON has no such number; ganstab writes null)); the rest was read", ()),
    ("doctor_infinity_literal", insert_line(b'{"step": 3, "loss_g": -Infinity, "d_steps": 3}'), ["doctor", "{run}"], 0,
     SKIP + " (line 3: 'loss_g' is -inf (JSON has no such number; ganstab writes null)); the rest was read", ()),
    ("doctor_overflowing_number", insert_line(b'{"step": 3, "grad_norm_d": 1e400, "d_steps": 3}'), ["doctor", "{run}"], 0,
     SKIP + " (line 3: 'grad_norm_d' is inf (JSON has no such number; ganstab writes null)); the rest was read", ()),
    ("doctor_value_text", insert_line(b'{"step": 3, "eval_fd": "low"}'), ["doctor", "{run}"], 0,
     SKIP + " (line 3: 'eval_fd' must be a number or null, got str); the rest was read", ()),
    ("doctor_final_not_bool", insert_line(b'{"step": 3, "eval_fd": 2.0, "final": "yes"}'), ["doctor", "{run}"], 0,
     SKIP + " (line 3: 'final' must be true or false, got \"yes\"); the rest was read", ()),
    ("doctor_no_records", write("metrics.jsonl", b""), ["doctor", "{run}"], 0, "{run}: 0 logged lines up to step 0", ()),
    ("doctor_only_damaged", write("metrics.jsonl", b"\xff\n[1]\n"), ["doctor", "{run}"], 0,
     "ganstab: warning: skipped 2 damaged lines of {run}/metrics.jsonl (line 1: not UTF-8 text; line 2: a JSON list, "
     "not an object); the rest was read", ()),
    ("doctor_final_eval_torn", replace_last_line(b'{"step": 4, "images_seen": 64, "eval_fd": 2'), ["doctor", "{run}"],
     0, SKIP + " (line 5: not JSON); the rest was read", ()),
    ("doctor_final_eval_torn_strict", replace_last_line(b'{"step": 4, "eval_fd": 2'), ["doctor", "--strict", "{run}"],
     1, SKIP + " (line 5: not JSON); the rest was read", ()),
    ("doctor_config_yaml_tag", write("config.yaml", b"seed: !!python/object/apply:os.system [true]\n"),
     ["doctor", "{run}"], 2,
     "ganstab: error: config file '{run}/config.yaml' uses the YAML tag '!!python/object/apply:os.system' at line 1, "
     "which ganstab does not load (plain values only); remove the tag", ()),
    # --- the report goes on past damaged metrics and findings lines
    ("report_metrics_not_utf8", insert_line(b"\x80abc"), ["report", "{run}"], 0,
     SKIP + " (line 3: not UTF-8 text); the rest was read", ("report.html",)),
    ("report_findings_damaged", first_line_then("findings.jsonl", b"\xff\n[1]\n{\"code\": 3}\n"), ["report", "{run}"], 0,
     "ganstab: warning: skipped 3 damaged lines of {run}/findings.jsonl (line 2: not UTF-8 text; line 3: a JSON list, "
     "not an object; line 4: 'code' must be a name and 'evidence' an object); the rest was read", ("report.html",)),
    # --- generator.json: every field checked, and the memory check of the config before anything is built
    ("sample_meta_not_utf8", write("generator.json", b"\xff\xfe{"), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description (not UTF-8 text); " + META_HINT,
     ()),
    ("sample_meta_json_list", write("generator.json", b"[1]"), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description (a JSON list, not an "
     "object); " + META_HINT, ()),
    ("sample_meta_format", edit_meta(lambda m: m.update(format="other-1")), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description ('format' is 'other-1', "
     "not 'ganstab-generator-1'); " + META_HINT, ()),
    ("sample_meta_hidden_too_large", edit_meta(lambda m: m["model"].update(hidden=[10**6, 10**6])), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' describes G and D of 2,000,201,000,065 parameters (about 32003.2 GB, the "
     "memory check of training) but 8.0 GB of cpu memory is available; load it on a larger machine, or check that "
     "generator.json is the one its training wrote", ()),
    ("sample_meta_shape_too_large", edit_meta(lambda m: m["data"].update(shape=[1, 100000, 100000])), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' describes G and D of 5,130,000,149,761 parameters (about 82080.0 GB, the "
     "memory check of training) but 8.0 GB of cpu memory is available; load it on a larger machine, or check that "
     "generator.json is the one its training wrote", ()),
    ("sample_meta_negative_shape", edit_meta(lambda m: m["data"].update(shape=[1, -8, 8])), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description ('data.shape' must be 1 or "
     "3 positive integers, got [1, -8, 8]); " + META_HINT, ()),
    ("sample_meta_kind_contradicts_shape", edit_meta(lambda m: m["data"].update(kind="points")), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description ('data.kind' is 'points' "
     "but the shape [1, 8, 8] holds images); " + META_HINT, ()),
    ("sample_meta_classes_on_unconditional", edit_meta(lambda m: m.update(num_classes=10)), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description ('num_classes' is 10 but "
     "model.conditional is false; a class-conditional G has 1 or more classes, an unconditional one 0); " + META_HINT,
     ()),
    ("sample_meta_classes_text", edit_meta(lambda m: m.update(num_classes="ten")), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description ('num_classes' must be a "
     "non-negative integer, got \"ten\"); " + META_HINT, ()),
    ("sample_meta_foreign_g_kwargs", edit_meta(lambda m: m.update(g_kwargs={"bogus": 1})), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description ('g_kwargs' must be empty "
     "({}) for model.arch=mlp, got {\"bogus\": 1}); " + META_HINT, ()),
    ("sample_meta_step_text", edit_meta(lambda m: m.update(step="4")), SAMPLE, 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description ('step' must be a "
     "non-negative integer, got \"4\"); " + META_HINT, ()),
    ("eval_meta_classes_on_unconditional", edit_meta(lambda m: m.update(num_classes=3)),
     ["eval", "--run", "{run}", "--n", "64"], 2,
     "ganstab: error: '{run}/generator.json' is not a valid ganstab generator description ('num_classes' is 3 but "
     "model.conditional is false; a class-conditional G has 1 or more classes, an unconditional one 0); " + META_HINT,
     ()),
    ("eval_config_yaml_tag", write("config.yaml", b"seed: 0\nloss: !!python/name:os.system\n"),
     ["eval", "--run", "{run}"], 2,
     "ganstab: error: config file '{run}/config.yaml' uses the YAML tag '!!python/name:os.system' at line 2, which "
     "ganstab does not load (plain values only); remove the tag", ()),
    # --- checkpoints of random bytes are damaged files, not code
    ("sample_checkpoint_random_bytes", random_checkpoints(drop_export=True), SAMPLE, 2,
     "ganstab: error: checkpoint '{run}/checkpoints/ckpt_0000004.pt' is not a PyTorch checkpoint archive (damaged, "
     "truncated or another kind of file); delete it and its .sha256 file to fall back to an older checkpoint, if any", ()),
    ("sample_checkpoint_config_too_large", checkpoint_config(lambda c: c["model"].update(hidden=[10**6, 10**6])),
     SAMPLE, 2,
     "ganstab: error: checkpoint '{run}/checkpoints/ckpt_0000004.pt' holds a config whose G and D have "
     "2,000,201,000,065 parameters (about 32003.2 GB, the memory check of training) but 8.0 GB is available; load it "
     "on a larger machine", ()),
    ("resume_checkpoint_random_bytes", random_checkpoints(drop_export=False), RESUME, 2,
     "ganstab: error: checkpoint '{run}/checkpoints/ckpt_0000004.pt' is not a PyTorch checkpoint archive (damaged, "
     "truncated or another kind of file); delete it and its .sha256 file to fall back to an older checkpoint, if any", ()),
    ("resume_config_yaml_tag", write("config.yaml", b"seed: !!python/object:os.system {}\n"), RESUME, 2,
     "ganstab: error: config file '{run}/config.yaml' uses the YAML tag '!!python/object:os.system' at line 1, which "
     "ganstab does not load (plain values only); remove the tag", ()),
    # --- one folder, one owner
    ("ablate_folder_in_use", lock_by_live_process,
     ["ablate", *TOY, "--vary", "loss.kind=hinge,lsgan", "--seeds", "1", "--jobs", "1", "--out", "{run}"], 2,
     "ganstab: error: ablation folder '{run}' is in use by process {ppid} on {host}; wait for it to finish or stop "
     "it first", ()),
    # --- everything checked before the first trial or run
    ("ablate_variant_key_twice", nothing,
     ["ablate", *TOY, "--variants", "{tmp}/dup.yaml", "--seeds", "1", "--jobs", "1", "--out", "{run}"], 2,
     "ganstab: error: --variants '{tmp}/dup.yaml', variant 'a': sets 'loss.kind' twice (as a dotted key and nested); "
     "keep one", ()),
    ("ablate_variant_key_also_varied", nothing,
     ["ablate", *TOY, "--variants", "{tmp}/one.yaml", "--vary", "loss.kind=lsgan,hinge", "--seeds", "1", "--jobs", "1",
      "--out", "{run}"], 2,
     "ganstab: error: --variants '{tmp}/one.yaml', variant 'a' sets 'loss.kind', which --vary also varies; give that "
     "key in one of them", ()),
    ("tune_space_bad_choice", nothing,
     ["tune", *TOY, "--space", "{tmp}/space_bad.yaml", "--trials", "1", "--rerun-seeds", "0", "--out", "{run}"], 2,
     "ganstab: error: search space key 'loss.kind': the choice \"bogus\" is refused (config key 'loss.kind': Input "
     "should be 'minimax', 'nonsaturating', 'wasserstein', 'lsgan', 'hinge', 'relativistic' or "
     "'relativistic_average', got 'bogus'); remove or fix it", ()),
    ("tune_storage_in_memory", nothing,
     ["tune", *TOY, "--space", "{tmp}/space_ok.yaml", "--trials", "1", "--rerun-seeds", "0", "--out", "{run}",
      "--storage", "sqlite://"], 2,
     "ganstab: error: --storage 'sqlite://' is an in-memory database, which cannot hold a study across the processes "
     "and connections of a search (workers, re-runs, resume); use sqlite:///FILE", ()),
    ("tune_storage_memory_file", nothing,
     ["tune", *TOY, "--space", "{tmp}/space_ok.yaml", "--trials", "1", "--rerun-seeds", "0", "--out", "{run}",
      "--storage", "sqlite:///:memory:"], 2,
     "ganstab: error: --storage 'sqlite:///:memory:' is an in-memory database, which cannot hold a study across the "
     "processes and connections of a search (workers, re-runs, resume); use sqlite:///FILE", ()),
]
# cases whose folder is made by the command itself (no trained run is copied in)
FRESH = {"ablate_folder_in_use", "ablate_variant_key_twice", "ablate_variant_key_also_varied",
         "tune_space_bad_choice", "tune_storage_in_memory", "tune_storage_memory_file"}


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _prepare(tmp_path: Path, base_run: Path, name: str) -> Path:
    (tmp_path / "dup.yaml").write_text(VARIANTS_DUP)
    (tmp_path / "one.yaml").write_text(VARIANTS_ONE)
    (tmp_path / "space_bad.yaml").write_text(SPACE_BAD)
    (tmp_path / "space_ok.yaml").write_text(SPACE_OK)
    run = tmp_path / "run"
    if name not in FRESH:
        shutil.copytree(base_run, run)
    return run


@pytest.mark.parametrize("name,damage,argv,status,first,changes", CASES, ids=[c[0] for c in CASES])
def test_hostile_readback(tmp_path: Path, base_run: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                          name: str, damage: Callable[[Path], None], argv: list[str], status: int, first: str,
                          changes: tuple[str, ...]) -> None:
    monkeypatch.setattr(export, "available_memory", lambda device: FREE)
    run = _prepare(tmp_path, base_run, name)
    damage(run)
    before = _snapshot(run)

    def fill(text: str) -> str:
        return (text.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)).replace("{ppid}", str(os.getppid()))
                .replace("{host}", HOST))

    assert main([fill(a) for a in argv]) == status
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() + captured.out.splitlines() if line.strip()]
    assert "Traceback" not in captured.err + captured.out
    assert lines[0] == fill(first)
    if status == 2:
        assert len([line for line in captured.err.splitlines() if line.strip()]) == 1
    after = _snapshot(run)
    assert sorted(after) == sorted(before)  # nothing lost, nothing left behind (a refused ablate or tune makes no folder)
    for path, data in before.items():  # and nothing changed but what the command exists to write
        if path not in changes:
            assert after[path] == data, path


def test_tune_commands_sharing_a_folder_wait_for_the_other_ones_reruns(tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "study"
    (tmp_path / "space_ok.yaml").write_text(SPACE_OK)
    holder = subprocess.Popen(["sleep", "60"])  # holds OUT/rerun as another tune command re-running the top trials
    (out / "rerun").mkdir(parents=True)
    (out / "rerun" / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": HOST}))
    real_sleep = tune.time.sleep

    def other_finishes(seconds: float) -> None:  # the first wait: the other command ends (its lock is then stale)
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        real_sleep(min(seconds, 0.01))

    monkeypatch.setattr(tune.time, "sleep", other_finishes)
    try:
        status = main(["tune", *TOY, "--space", str(tmp_path / "space_ok.yaml"), "--trials", "1", "--steps", "2",
                       "--top", "1", "--rerun-seeds", "1", "--out", str(out)])
    finally:
        holder.wait()
    text = capsys.readouterr().out
    assert status == 0, text
    assert (f"waiting: ablation folder '{out}/rerun' is in use by process {holder.pid} on {HOST} (another tune "
            "command on this folder re-runs the top trials)") in text.splitlines()
    assert (f"taking over the stale lock of '{out}/rerun' (process {holder.pid} on {HOST} is gone)"
            in text.splitlines())
    assert (out / "best.yaml").is_file() and not (out / "rerun" / LOCK_FILE).exists()


# ------------------------------------------------------------------------------------------ verdicts
def test_doctor_gives_no_verdict_without_records(tmp_path: Path, base_run: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    (run / "metrics.jsonl").write_bytes(b"")
    assert main(["doctor", str(run)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "verdict: unknown (metrics.jsonl holds no readable line; nothing to judge)")
    assert main(["doctor", "--strict", str(run)]) == 1


def test_doctor_gives_no_verdict_when_the_final_evaluation_is_damaged(tmp_path: Path, base_run: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    replace_last_line(b'{"step": 4, "eval_fd": 2')(run)
    assert main(["doctor", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{run}: 4 logged lines up to step 4"
    assert out[-1] == ("verdict: unknown (the last line of metrics.jsonl (line 5, the final evaluation) is damaged "
                       "(not JSON); score the generator again with 'ganstab eval')")


def test_read_metrics_counts_what_it_skips(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_bytes(
        b'{"step": 1, "loss_d": 1.0}\n\xff\n{"step": 2, "loss_d": NaN}\n"text"\n{"step": 2, "loss_d": 0.5, '
        b'"nonfinite": ["loss_g"], "loss_g": null}\n{"step": 3')
    found = rundir.read_metrics(tmp_path)
    assert [r["step"] for r in found.records] == [1, 2]
    assert [(s.number, s.reason) for s in found.skipped] == [
        (2, "not UTF-8 text"), (3, "'loss_d' is nan (JSON has no such number; ganstab writes null)"),
        (4, "a JSON str, not an object"), (6, "not JSON")]
    assert found.last_line == 6 and found.last_line_skipped
    assert rundir.skipped_note(found.skipped) == (
        f"skipped 4 damaged lines of {tmp_path / 'metrics.jsonl'} (line 2: not UTF-8 text; line 3: 'loss_d' is nan "
        "(JSON has no such number; ganstab writes null); line 4: a JSON str, not an object; ...); the rest was read")


def test_resume_goes_on_past_damaged_lines_and_keeps_them(tmp_path: Path, base_run: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    insert_line(b"\xff\xfe garbage")(run)
    insert_line(b'{"step": "x"}', at=4)(run)
    assert main(["train", "--resume", str(run), "train.steps=5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"skipped 2 damaged lines of {run / 'metrics.jsonl'} (line 3: not UTF-8 text; line 5: 'step' "
                      "must be a non-negative integer, got \"x\"); kept as they are")
    text = (run / "metrics.jsonl").read_bytes()
    assert b"\xff\xfe garbage\n" in text and b'{"step": "x"}\n' in text  # a user may still repair them
    assert max(r["step"] for r in rundir.read_metrics(run).records) == 5


# ------------------------------------------------------------------------------------------ true messages
def test_state_dict_mismatch_names_the_keys(tmp_path: Path, base_run: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(export, "available_memory", lambda device: FREE)
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    edit_meta(lambda m: m["model"].update(hidden=[32]))(run)
    assert main(["sample", "--run", str(run), "--out", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ganstab: error: '{run}/generator.safetensors' does not match the architecture in "
                          "generator.json (Error(s) in loading state_dict for MLPGenerator: ")
    assert "Unexpected key(s) in state_dict:" in err or "size mismatch for" in err  # the text after the colon
    assert "\n" not in err


def test_sigterm_exits_143(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"

    def stop_at_two(trainer) -> None:
        if trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    real = cli_train.train
    monkeypatch.setattr(cli_train, "train", lambda cfg, **kw: real(cfg, **kw, hooks={"after_step": stop_at_two}))
    assert main(["train", *TOY, "train.steps=20", f"out={run}"]) == 128 + signal.SIGTERM == 143


def test_sigterm_stops_an_ablation_with_143(tmp_path: Path, monkeypatch) -> None:
    def stop_at_one(trainer) -> None:
        if trainer.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    real = ablate_module.train
    monkeypatch.setattr(ablate_module, "train", lambda cfg, **kw: real(cfg, **kw, hooks={"after_step": stop_at_one}))
    assert main(["ablate", *TOY, "train.steps=20", "--seeds", "1", "--jobs", "1", "--out", str(tmp_path / "ab")]) == 143


def test_disk_full_says_whether_a_checkpoint_exists(tmp_path: Path, base_run: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    full = OSError(errno.ENOSPC, "No space left on device", str(run / "checkpoints" / ".ckpt_0000008.pt.tmp-77"))
    assert friendly_os_error(full) == (
        f"disk full while writing '{run}/checkpoints/ckpt_0000008.pt'; free space, then resume with --resume {run} "
        "(its last checkpoint, ckpt_0000004.pt, is intact)")
    shutil.rmtree(run / "checkpoints")
    full = OSError(errno.ENOSPC, "No space left on device", str(run / ".metrics.jsonl.tmp-77"))
    assert friendly_os_error(full) == (
        f"disk full while writing '{run}/metrics.jsonl'; free space, then start the run again (no checkpoint of "
        f"'{run}' was written yet)")


def test_disk_full_during_a_new_run_names_the_file_and_no_checkpoint(tmp_path: Path, capsys, monkeypatch) -> None:
    run = tmp_path / "run"

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    assert main(["train", *TOY, f"out={run}"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"ganstab: error: disk full while writing '{run}/config.yaml'; free space, then start the run again "
                   f"(no checkpoint of '{run}' was written yet)"]


def test_atomic_write_error_names_the_target_not_the_temp_file(tmp_path: Path, monkeypatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "a.txt", "new")
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(tmp_path / "a.txt"))
    assert (tmp_path / "a.txt").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_code_carrying_checkpoint_is_still_refused_as_code(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (subprocess.call, (["true"],))

    torch.save({"format": "ganstab-checkpoint-1", "x": Payload()}, tmp_path / "ckpt_0000001.pt")
    with pytest.raises(CheckpointError) as caught:
        rundir.load_checkpoint(tmp_path / "ckpt_0000001.pt")
    assert str(caught.value) == (f"checkpoint '{tmp_path}/ckpt_0000001.pt' needs to unpickle code, which ganstab "
                                 "refuses for safety; only load checkpoints written by ganstab")


def test_case_count() -> None:
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)
