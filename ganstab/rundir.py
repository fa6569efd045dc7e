"""The run-folder contract: every file name of a run (and an ablation) folder, written and read here.

A run folder holds `config.yaml` (the resolved config), `metrics.jsonl` (training and evaluation
lines), `findings.jsonl`, `recoveries.jsonl`, `checkpoints/`, `samples/`, `plots/`, the exported
generator (`generator.safetensors` + `generator.json`), `best/` and `report.html`. Every file is
written atomically (`atomic_write`: temp file, fsync, rename) or appended one JSON line at a time,
so a crash at any moment leaves the previous version readable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import pickle
import re
import shutil
import socket
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import torch

from ganstab.config import Config, dump_yaml, read_yaml, validate
from ganstab.errors import CheckpointError, GanstabError, PathError, RunInUse, one_line

__all__ = [
    "CONFIG_FILE", "METRICS_FILE", "FINDINGS_FILE", "RECOVERIES_FILE", "CHECKPOINT_DIR", "SAMPLES_DIR", "PLOTS_DIR",
    "GENERATOR_WEIGHTS", "GENERATOR_META", "REPORT_FILE", "BEST_DIR", "BEST_EVAL_FILE", "TRAIN_LOG", "PLAN_FILE",
    "TENSORBOARD_DIR",
    "SUMMARY_JSON", "SUMMARY_CSV", "STUDY_DB", "TRIALS_DIR", "TRIALS_CSV", "BEST_CONFIG", "RERUN_DIR", "RERUN_CSV",
    "RUN_FILES", "TRAINING_KEYS", "RunDir", "pid_alive", "CHECKPOINT_FORMAT", "load_checkpoint", "atomic_write", "atomic_write_via", "csv_text", "keep_as_good", "newest_valid_before",
    "list_good_checkpoints", "append_jsonl",
    "read_jsonl", "rewrite_jsonl", "is_eval_record", "is_test_record", "is_metric_key", "EVAL_PROVENANCE_KEYS", "SkippedLine", "JsonLines", "read_json_lines", "metrics_problem",
    "read_metrics", "skipped_note", "user_path", "is_training_record", "read_records", "truncate_metrics",
    "truncate_findings", "checkpoint_name", "good_checkpoint_name", "checkpoint_step", "holds_run", "is_run_dir", "finished_export", "is_ablation_dir",
    "load_run_config", "write_config", "prepare_out_dir", "sha256_file", "list_checkpoints", "verify_checkpoint",
    "newest_valid_checkpoint", "LOCK_FILE", "RunLock", "acquire_lock", "NAME_MAX", "PATH_MAX", "check_output_path",
    "RUN_OWNED", "run_owned_part", "check_not_run_owned", "check_study_out",
]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
FINDINGS_FILE = "findings.jsonl"
RECOVERIES_FILE = "recoveries.jsonl"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
PLOTS_DIR = "plots"
GENERATOR_WEIGHTS = "generator.safetensors"
GENERATOR_META = "generator.json"
REPORT_FILE = "report.html"
BEST_DIR = "best"
BEST_EVAL_FILE = "eval.json"
TRAIN_LOG = "train.log"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = ".lock"
# an ablation folder
PLAN_FILE = "ablation.json"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
# a tuning folder (ganstab tune)
STUDY_DB = "study.db"
TRIALS_DIR = "trials"
TRIALS_CSV = "trials.csv"
BEST_CONFIG = "best.yaml"
RERUN_DIR = "rerun"
RERUN_CSV = "rerun.csv"

# what `--overwrite` clears from a folder that holds a run
RUN_FILES: tuple[str, ...] = (CONFIG_FILE, METRICS_FILE, FINDINGS_FILE, RECOVERIES_FILE, CHECKPOINT_DIR, SAMPLES_DIR,
                              PLOTS_DIR, GENERATOR_WEIGHTS, GENERATOR_META, REPORT_FILE, BEST_DIR, TENSORBOARD_DIR)
# every name a run owns in its folder: RUN_FILES, the lock and an ablation worker's log; `ganstab eval` adds eval-*.json
RUN_OWNED: tuple[str, ...] = RUN_FILES + (LOCK_FILE, TRAIN_LOG)
_EVAL_OUTPUT = re.compile(r"^eval-n\d+-seed\d+(-best)?\.json$")
NAME_MAX = 255  # the longest file name (bytes) of Linux and macOS file systems
PATH_MAX = 4096  # the longest path (bytes) Linux accepts
_CHECKPOINT = re.compile(r"^ckpt_(\d{7,})\.pt$")
_GOOD_CHECKPOINT = re.compile(r"^good_(\d{7,})\.pt$")  # the last known good state, outside the rotation

# keys that only training lines of metrics.jsonl carry (evaluation lines carry `eval_*` keys instead)
TRAINING_KEYS: frozenset[str] = frozenset({
    "d_steps", "loss_d", "loss_g", "d_real", "d_fake", "d_acc", "d_real_sign", "grad_norm_d", "grad_norm_g",
    "gp", "r1", "drift", "r2", "lecam", "lr_g", "lr_d",
})


@dataclass(frozen=True)
class RunDir:
    """The paths of one run folder."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    config = property(lambda self: self.root / CONFIG_FILE, doc="the resolved config")
    metrics = property(lambda self: self.root / METRICS_FILE, doc="training and evaluation lines")
    findings = property(lambda self: self.root / FINDINGS_FILE, doc="the doctor's findings")
    recoveries = property(lambda self: self.root / RECOVERIES_FILE, doc="automatic recoveries")
    checkpoints = property(lambda self: self.root / CHECKPOINT_DIR, doc="checkpoint folder")
    samples = property(lambda self: self.root / SAMPLES_DIR, doc="sample grids over time")
    plots = property(lambda self: self.root / PLOTS_DIR, doc="training and evaluation plots")
    generator_weights = property(lambda self: self.root / GENERATOR_WEIGHTS, doc="exported G weights")
    generator_meta = property(lambda self: self.root / GENERATOR_META, doc="exported G description")
    report = property(lambda self: self.root / REPORT_FILE, doc="the HTML report")
    best = property(lambda self: self.root / BEST_DIR, doc="export of the best evaluation")
    train_log = property(lambda self: self.root / TRAIN_LOG, doc="log of a run trained by an ablation worker")
    tensorboard = property(lambda self: self.root / TENSORBOARD_DIR, doc="TensorBoard events (log.tensorboard)")
    lock = property(lambda self: self.root / LOCK_FILE, doc="the owner's lock (PID and host) while a process uses it")

    def sample(self, step: int, suffix: str = "") -> Path:
        """The sample grid written after `step` G steps."""
        return self.samples / f"step_{step:07d}{suffix}.png"

    def checkpoint(self, step: int) -> Path:
        """The checkpoint written after `step` G steps."""
        return self.checkpoints / checkpoint_name(step)


def checkpoint_name(step: int) -> str:
    """The file name of the checkpoint taken after `step` G steps."""
    return f"ckpt_{step:07d}.pt"


def good_checkpoint_name(step: int) -> str:
    """The file name of the known-good copy (outside the rotation) of the checkpoint after `step` G steps."""
    return f"good_{step:07d}.pt"


def checkpoint_step(name: str) -> Optional[int]:
    """The step of a checkpoint file name, None for any other name."""
    match = _CHECKPOINT.match(name)
    return int(match.group(1)) if match else None




CHECKPOINT_FORMAT = "ganstab-checkpoint-1"  # the marker every checkpoint payload carries


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights_only=True; code-carrying pickles are refused with CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged or foreign
        raise CheckpointError(f"checkpoint {str(path)!r} is not a PyTorch checkpoint archive (damaged, truncated or "
                              "another kind of file); delete it and its .sha256 file to fall back to an older checkpoint, if any")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error below says it all
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):
            raise CheckpointError(
                f"checkpoint {str(path)!r} needs to unpickle code, which ganstab refuses for safety; "
                "only load checkpoints written by ganstab"
            ) from None
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read (its pickled data is damaged); "
                              "delete it and its .sha256 file to fall back to an older checkpoint, if any") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({one_line(exc, 160)}); "
                              "delete it and its .sha256 file to fall back to an older checkpoint, if any") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a ganstab checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return data


def _numbered(folder: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    """(step, path) of the files in `folder` whose name matches `pattern` (the step its group 1), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name)))


def list_good_checkpoints(folder: Path) -> list[Path]:
    """The last-known-good checkpoint files kept outside the rotation, oldest first."""
    return [p for _, p in _numbered(folder, _GOOD_CHECKPOINT)]


GOOD_CHECKPOINTS_KEPT = 3  # a rollback must reach back past the doctor's detection window


def keep_as_good(path: Path, keep: int = GOOD_CHECKPOINTS_KEPT) -> Path:
    """Hard-link a written checkpoint (and its checksum) as a known good one; only the newest `keep` stay."""
    path = Path(path)
    step = checkpoint_step(path.name)
    if step is None:
        raise ValueError(f"{path.name} is not a checkpoint file name")
    good = path.with_name(good_checkpoint_name(step))
    for source, target in ((path, good), (path.with_name(path.name + ".sha256"), good.with_name(good.name + ".sha256"))):
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, target)
        tmp.unlink(missing_ok=True)  # rename() between two links of one file does nothing: the temp link stays
    for old in list_good_checkpoints(path.parent)[:-keep]:
        for victim in (old, old.with_name(old.name + ".sha256")):
            victim.unlink(missing_ok=True)
    return good


def newest_valid_before(folder: Path, step: int, warn: Callable[[str], None] = print) -> Optional[Path]:
    """The newest valid checkpoint (rotated or known good) taken strictly before `step`; when none is that
    old, the oldest valid one (a rollback as far back as the folder allows)."""
    candidates = sorted(_numbered(folder, _CHECKPOINT) + _numbered(folder, _GOOD_CHECKPOINT), reverse=True)
    valid = []
    for at, path in candidates:
        problem = verify_checkpoint(path)
        if problem is not None:
            warn(f"skipping checkpoint {path.name}: {problem}; using the previous one")
            continue
        if at < step:
            return path
        valid.append(path)
    return valid[-1] if valid else None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in `folder`, oldest first (validity not checked)."""
    return [p for _, p in _numbered(folder, _CHECKPOINT)]


def verify_checkpoint(path: Path) -> Optional[str]:
    """None when the checkpoint's checksum file exists and matches, else the reason it is invalid."""
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return "its checksum file is missing (the write did not finish)"
    try:
        expected = sidecar.read_text().split()[0]
    except (OSError, IndexError):
        return "its checksum file is unreadable"
    if sha256_file(path) != expected:
        return "its checksum does not match (truncated or corrupt)"
    return None


def newest_valid_checkpoint(folder: Path, warn: Callable[[str], None] = print) -> Optional[Path]:
    """The newest checkpoint whose checksum matches; invalid newer ones are reported via `warn`."""
    for path in reversed(list_checkpoints(folder)):
        problem = verify_checkpoint(path)
        if problem is None:
            return path
        warn(f"skipping checkpoint {path.name}: {problem}; using the previous one")
    return None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` via a temp file, fsync and rename (the old file stays valid on failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        _raise_for(path, exc)
        raise
    _fsync_dir(path.parent)
    return path


def _raise_for(path: Path, exc: BaseException) -> None:
    """Re-raise an OS error met while writing a temp file as one that names `path`, the file the user knows."""
    if isinstance(exc, OSError) and exc.errno is not None:
        raise type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None


_TEMP_NAME = re.compile(r"^\.(?P<stem>.+?)\.tmp-\d+(?P<suffix>\.[^.]*)?$")


def user_path(path: str | Path) -> str:
    """The file a temp file of `atomic_write`/`atomic_write_via` stands for (any other path as it is)."""
    path = Path(path)
    match = _TEMP_NAME.match(path.name)
    return str(path.with_name(match["stem"] + (match["suffix"] or ""))) if match else str(path)


def atomic_write_via(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Let `write(temp)` write a file (a PNG, an array) or a folder next to `path`, then rename it: complete or
    absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # keeps the suffix PIL reads
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        _raise_for(path, exc)
        raise
    return path


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text (csv module defaults) of a header and rows, ready for `atomic_write`."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def append_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]], sort_keys: bool = False) -> None:
    """Append records to a JSON-lines file, one complete line each, flushed."""
    with open(path, "a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, sort_keys=sort_keys) + "\n")
        fh.flush()


@dataclass(frozen=True)
class SkippedLine:
    """A line of a JSON-lines file that a reader skipped, and why (`number` counts from 1)."""

    path: Path
    number: int
    reason: str


@dataclass
class JsonLines:
    """What `read_json_lines` found: the usable records, the lines it skipped and the last non-empty line's number."""

    records: list[dict[str, Any]]
    skipped: list[SkippedLine]
    last_line: int = 0

    @property
    def last_line_skipped(self) -> bool:
        """Whether the file's last non-empty line was one of the skipped ones."""
        return bool(self.skipped) and self.skipped[-1].number == self.last_line


def _line_problem(raw: bytes, check: Optional[Callable[[Any], Optional[str]]]) -> tuple[Optional[dict], str]:
    """(record, "") for a usable line, else (None, the reason it is skipped)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        item = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None, "not JSON"
    if not isinstance(item, dict):
        return None, f"a JSON {type(item).__name__}, not an object"
    problem = check(item) if check is not None else None
    return (None, problem) if problem else (item, "")


def _parsed_lines(path: Path, check: Optional[Callable[[Any], Optional[str]]]
                  ) -> Iterator[tuple[int, bytes, Optional[dict], str]]:
    """(line number, the line's stripped bytes, record or None, reason) of every non-empty line of a file."""
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if raw.strip():
            yield (number, raw.strip(), *_line_problem(raw.strip(), check))


def read_json_lines(path: str | Path, check: Optional[Callable[[Any], Optional[str]]] = None) -> JsonLines:
    """Every usable JSON-object line of a .jsonl file; lines that are not UTF-8, not JSON objects, or that
    `check` refuses (it returns the reason) are skipped and listed. A missing file reads as empty."""
    path = Path(path)
    found = JsonLines([], [])
    if not path.is_file():
        return found
    for number, _, record, reason in _parsed_lines(path, check):
        found.last_line = number
        if record is None:
            found.skipped.append(SkippedLine(path, number, reason))
        else:
            found.records.append(record)
    return found


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every complete JSON object line of a .jsonl file (a torn, foreign or non-UTF-8 line is skipped)."""
    return read_json_lines(path).records


def skipped_note(skipped: Sequence[SkippedLine], after: str = "the rest was read") -> str:
    """One line saying how many lines of which file were skipped, why the first ones were, and what happened next."""
    if not skipped:
        return ""
    files = sorted({str(s.path) for s in skipped})
    reasons = "; ".join(f"line {s.number}: {s.reason}" for s in skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
    count = len(skipped)
    return f"skipped {count} damaged line{'s' if count != 1 else ''} of {', '.join(files)} ({reasons}); {after}"


# keys of a metrics line that are not numbers: the final/quick flags and the list of non-finite keys
_FLAG_KEYS = frozenset({"final", "quick"})
#: what an evaluation line was measured with (`RunEvaluator.provenance`): not metrics, never summarised or plotted
EVAL_PROVENANCE_KEYS = frozenset({"eval_split", "eval_reference_n", "eval_n", "eval_features", "eval_resize"})
# the provenance keys that are text (the rest of them are non-negative integers)
_TEXT_KEYS = frozenset({"eval_split", "eval_features", "eval_resize"})


def metrics_problem(record: Any) -> Optional[str]:
    """None for a line that keeps the metrics.jsonl contract, else the reason it breaks it: `step` a
    non-negative integer, every value a finite number or null (`final`/`quick` booleans, `nonfinite` a
    list of key names, `eval_split` validation or test, `eval_features`/`eval_resize` short texts)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"'step' must be a non-negative integer, got {json.dumps(step)[:40]}"
    for key, value in record.items():
        if key in _FLAG_KEYS:
            if not isinstance(value, bool):
                return f"{key!r} must be true or false, got {json.dumps(value)[:40]}"
        elif key == "nonfinite":
            if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
                return "'nonfinite' must be a list of key names"
        elif key in _TEXT_KEYS:
            if not isinstance(value, str) or len(value) > 200:
                return f"{key!r} must be a text of at most 200 characters, got {json.dumps(value)[:40]}"
            if key == "eval_split" and value not in ("validation", "test"):
                return f"'eval_split' must be validation or test, got {json.dumps(value)[:40]}"
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{key!r} must be a number or null, got {type(value).__name__}"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{key!r} is {value} (JSON has no such number; ganstab writes null)"
    return None


def rewrite_jsonl(path: str | Path, keep: Callable[[dict[str, Any]], bool],
                  check: Optional[Callable[[Any], Optional[str]]] = None) -> list[SkippedLine]:
    """Atomically rewrite a JSON-lines file with the records `keep` accepts (nothing when absent).

    A damaged line (not UTF-8, not a JSON object, refused by `check`) is kept as it is, so nothing a
    user may want to repair is lost, except a torn last line (a crash mid-write), which is dropped.
    Returns the damaged lines (the torn one included).
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = list(_parsed_lines(path, check))
    last = lines[-1][0] if lines else 0
    kept: list[bytes] = []
    damaged: list[SkippedLine] = []
    for number, raw, record, reason in lines:
        if record is None:
            damaged.append(SkippedLine(path, number, reason))
            if not (number == last and reason == "not JSON"):
                kept.append(raw)
        elif keep(record):
            kept.append(raw)
    atomic_write(path, b"".join(line + b"\n" for line in kept))
    return damaged


def is_eval_record(record: Mapping[str, Any]) -> bool:
    """True for an evaluation line that selection and the doctor may read: it carries `eval_*` keys and was not
    scored on the test reference (`is_test_record`; a line without `eval_split` predates the split)."""
    return record.get("eval_split") != "test" and any(isinstance(key, str) and key.startswith("eval_")
                                                       for key in record)


def is_test_record(record: Mapping[str, Any]) -> bool:
    """True for a final evaluation line scored on the test reference (`"eval_split": "test"`): for reports only."""
    return record.get("eval_split") == "test"


def is_metric_key(key: Any) -> bool:
    """True for an `eval_*` key that is a metric (not one of `EVAL_PROVENANCE_KEYS`)."""
    return isinstance(key, str) and key.startswith("eval_") and key not in EVAL_PROVENANCE_KEYS


def is_training_record(record: Mapping[str, Any]) -> bool:
    """True for a training line (it carries at least one training-only key)."""
    return not TRAINING_KEYS.isdisjoint(record)


def _step(record: Mapping[str, Any]) -> Optional[float]:
    value = record.get("step")
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def read_metrics(run_dir: str | Path) -> JsonLines:
    """A run's metrics.jsonl (a run directory or the file itself): resume-deduplicated records and the lines skipped.

    A resumed run may log steps again that an interrupted attempt had logged: a training (or eval)
    line whose step is not past the previous line of its kind drops the earlier lines of that kind
    at or after its step. A line that is not UTF-8, not a JSON object, or breaks the contract of
    `metrics_problem` (a torn last line after a crash too) is skipped and listed.
    """
    path = Path(run_dir)
    path = path if path.is_file() else path / METRICS_FILE
    found = read_json_lines(path, metrics_problem)
    found.records = _deduplicate(found.records)
    return found


def read_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The usable records of a run's metrics.jsonl, resume-deduplicated (`read_metrics` lists the skipped lines)."""
    return read_metrics(run_dir).records


def _deduplicate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    last: dict[str, Optional[float]] = {"train": None, "eval": None, "test": None}
    tests = {"train": is_training_record, "eval": is_eval_record, "test": is_test_record}
    for record in records:
        step = _step(record)
        if step is not None:
            for kind, test in tests.items():
                if not test(record):
                    continue
                if last[kind] is not None and step <= last[kind]:
                    kept = [r for r in kept if not (test(r) and (_step(r) or 0.0) >= step)]
                last[kind] = step
        kept.append(record)
    return kept


def truncate_metrics(path: str | Path, last_step: int, every: int = 1) -> list[SkippedLine]:
    """Drop lines logged after `last_step`, and an off-interval final line at it (resume continues it);
    returns the damaged lines met (kept as they are, except a torn last line)."""
    def keep(record: dict[str, Any]) -> bool:
        step = int(record["step"])
        return step < last_step or (step == last_step and step % every == 0)

    return rewrite_jsonl(path, keep, metrics_problem)


def truncate_findings(path: str | Path, last_step: int) -> list[SkippedLine]:
    """Drop findings that start after `last_step` (they belong to the discarded part of the run)."""
    def keep(record: dict[str, Any]) -> bool:
        try:
            return int(record.get("start_step", 0)) <= last_step
        except (TypeError, ValueError, OverflowError):
            return False

    return rewrite_jsonl(path, keep)


def holds_run(path: str | Path) -> bool:
    """Whether a folder already holds (part of) a run."""
    run = RunDir(path)
    return run.root.is_dir() and any(p.exists() for p in (run.config, run.metrics, run.checkpoints))


def is_run_dir(path: str | Path) -> bool:
    """A folder with a config.yaml (a run, finished or not)."""
    return RunDir(path).config.is_file()


def finished_export(run_dir: str | Path) -> bool:
    """Whether a run holds the export of a finished run: a readable generator.json not marked interrupted."""
    try:
        meta = json.loads(RunDir(run_dir).generator_meta.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and not meta.get("interrupted")


def is_ablation_dir(path: str | Path) -> bool:
    """A folder with an ablation.json (made by `ganstab ablate`)."""
    return (Path(path) / PLAN_FILE).is_file()


def load_run_config(run_dir: str | Path) -> Config:
    """The validated config of an existing run directory."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise CheckpointError(f"{str(run_dir)!r} is not a ganstab run directory (no {CONFIG_FILE})")
    return validate(read_yaml(path))


def write_config(run_dir: str | Path, cfg: Config) -> Path:
    """Write the resolved config as the run's config.yaml."""
    return atomic_write(RunDir(run_dir).config, dump_yaml(cfg))


def prepare_out_dir(out: str | Path, overwrite: bool, dry_run: bool = False) -> None:
    """Refuse an output folder that holds another run unless overwrite is set (then it is cleared)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"output path {str(out)!r} is a file; choose another out=DIR")
    if not holds_run(out):
        return
    if not overwrite:
        raise CheckpointError(
            f"output directory {str(out)!r} already holds a run; pass --overwrite to replace it, "
            f"--resume {out} to continue it, or choose another out=DIR"
        )
    if dry_run:
        return
    for name in RUN_FILES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def check_output_path(path: str | Path, label: str, fix: str) -> None:
    """Refuse, as PathError, an output path the system would refuse: too long, below a file, in an unwritable folder.

    The message is `{label} 'PATH' <problem>; {fix}`; nothing is created.
    """
    path = Path(path)
    absolute = os.fsencode(os.path.abspath(path))
    if len(absolute) >= PATH_MAX:
        raise PathError(f"{label} '{str(path)[:40]}...' is {len(absolute):,} bytes long, more than the {PATH_MAX:,} "
                        f"the system allows; {fix}")
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise PathError(f"{label} {str(path)!r} has a name of {len(os.fsencode(part)):,} bytes, more than the "
                            f"{NAME_MAX} a file system allows; {fix}")
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise PathError(f"{label} {str(path)!r} lies below {str(existing)!r}, which is a file; {fix}")
    folder = existing if existing.is_dir() and existing != path else (path if path.is_dir() else existing.parent)
    if not os.access(folder, os.W_OK | os.X_OK):
        reason = "a read-only file system" if os.statvfs(folder).f_flag & os.ST_RDONLY else "permission denied"
        raise PathError(f"{label} {str(path)!r} cannot be written: {str(folder)!r} is not writable ({reason}); {fix}")


def run_owned_part(path: str | Path, run_dir: str | Path) -> Optional[str]:
    """The name of what the run in `run_dir` owns that `path` is or lies in ('' for the run folder), else None."""
    try:
        root, target = Path(run_dir).resolve(), Path(path).resolve()
    except (OSError, RuntimeError):
        return None
    if target == root:
        return ""
    if root not in target.parents:
        return None
    first = target.relative_to(root).parts[0]
    return first if first in RUN_OWNED or _EVAL_OUTPUT.match(first) else None


def check_not_run_owned(path: str | Path, runs: Iterable[str | Path], label: str, fix: str) -> None:
    """Refuse (PathError) an output path that is a run folder or one of its own files, given runs or enclosing ones.

    Checked: each run in `runs` and every folder above `path` that holds a config.yaml.
    """
    path = Path(path)
    try:
        enclosing = [folder for folder in Path(path).resolve().parents if (folder / CONFIG_FILE).is_file()]
    except (OSError, RuntimeError):
        enclosing = []
    for run in [*runs, *enclosing]:
        owned = run_owned_part(path, run)
        if owned == "":
            raise PathError(f"{label} {str(path)!r} is the run folder {str(run)!r} itself; {fix}")
        if owned is not None:
            where = "is" if path.resolve() == (Path(run) / owned).resolve() else "lies in"
            raise PathError(f"{label} {str(path)!r} {where} {owned}, which belongs to the run {str(run)!r}; {fix}")


def check_study_out(out: str | Path, what: str, error: type[GanstabError]) -> None:
    """Refuse the output folder of many runs (`what`: an ablation, a tuning study) that the system would refuse
    (PathError), that is a file, holds a single run (as `error`) or is a run's own; one line with the fix."""
    out = Path(out)
    check_output_path(out, "--out", "choose another folder")
    if out.exists() and not out.is_dir():
        raise error(f"--out {str(out)!r} is a file; choose a folder")
    if RunDir(out).config.is_file():
        raise error(f"--out {str(out)!r} holds a single run, not {what}; choose another folder")
    check_not_run_owned(out, [], "--out", "choose a folder outside the run")


def pid_alive(pid: int) -> bool:
    """Whether a process of this host is running (one we may not signal counts as alive, a zombie as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_lock(path: Path, host: str) -> tuple[int, str]:
    """(pid, host) of a lock file; an empty one is re-read for a moment (its owner may be writing it), then stale."""
    for attempt in range(20):
        try:
            owner = json.loads(path.read_text(encoding="utf-8"))
            return int(owner["pid"]), str(owner["host"])
        except FileNotFoundError:
            return -1, host
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return -1, host  # still torn or foreign after a second: stale


@dataclass
class RunLock:
    """The lock of one run folder held by this process; `release` removes it (and the folder it created)."""

    path: Path
    created_folder: bool = False

    def release(self) -> None:
        """Remove the lock file if it is still ours; remove the run folder too if we made it and it is empty."""
        try:
            owner = json.loads(self.path.read_text(encoding="utf-8"))
            if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
                self.path.unlink()
        except (OSError, ValueError, AttributeError):
            pass
        if self.created_folder:
            try:
                self.path.parent.rmdir()  # only succeeds when nothing was written
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def acquire_lock(run_dir: str | Path, echo: Callable[[str], None] = print, what: str = "run folder") -> RunLock:
    """Take RUN/.lock (PID and host) for this process; a live owner is RunInUse, a dead one on this host is replaced.

    `what` names the folder in messages (an ablation or tuning folder is locked the same way).
    """
    root = Path(run_dir)
    check_output_path(root, "output path", "choose another out=DIR")
    if root.exists() and not root.is_dir():
        raise CheckpointError(f"output path {str(root)!r} is a file; choose another out=DIR")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    path = RunDir(root).lock
    host, payload = socket.gethostname(), json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid, owner_host = _read_lock(path, host)
            if owner_host != host or (pid > 0 and pid != os.getpid() and pid_alive(pid)) or pid == os.getpid():
                if created:
                    RunLock(path, created).release()
                raise RunInUse(f"{what} {str(root)!r} is in use by process {pid} on {owner_host}; "
                               "wait for it to finish or stop it first") from None
            if pid > 0:
                echo(f"taking over the stale lock of {str(root)!r} (process {pid} on {owner_host} is gone)")
            else:
                echo(f"taking over the unreadable lock of {str(root)!r} (left by a process that died while taking it)")
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
        return RunLock(path, created)
    raise RunInUse(f"{what} {str(root)!r} is in use (its lock keeps changing); wait for the other process "
                   "to finish or stop it first")
