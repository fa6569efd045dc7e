"""What every benchmark script shares: the machine description, where its outputs go, a runner of
training commands side by side, the final record of a finished run, and the re-scoring of a stored run's final
test line with the current code.

Importing it checks that `ganstab` comes from this checkout: a script in a second worktree would
otherwise measure the editable install's code while its `python -m ganstab` runs measure its own."""

from __future__ import annotations

import datetime
import json
import math
import os
import shlex
import statistics
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

import torch

import ganstab
from ganstab.diagnose import verdict
from ganstab.diagnose.findings import Finding
from ganstab.export import load_generator
from ganstab.pipeline import score_export
from ganstab.rundir import RunDir, is_eval_record, is_test_record, load_run_config, read_jsonl

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
EVAL_KEYS = ("fd", "kid", "precision", "recall", "coverage")

if Path(ganstab.__file__).resolve().parents[1] != HERE.parent:
    raise SystemExit(f"benchmarks: ganstab is imported from {Path(ganstab.__file__).parent}, not from this checkout "
                     f"{HERE.parent}: run `pip install -e {HERE.parent}` or set PYTHONPATH={HERE.parent}")


def final_test_line(out: Path) -> dict[str, Any] | None:
    """A run's last evaluation line scored on the test reference (`eval_split` "test"); None if it has none."""
    run = RunDir(out)
    if not run.metrics.is_file():
        return None
    lines = [r for r in read_jsonl(run.metrics) if is_test_record(r)]
    return lines[-1] if lines else None


def report_line(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The evaluation line a table reports: the run's last final TEST line; only a run without one (older code)
    falls back to its last final validation line, else its last evaluation line; {} when it has none."""
    tests = [r for r in records if is_test_record(r) and r.get("final")]
    if tests:
        return tests[-1]
    evals = [r for r in records if is_eval_record(r)]
    return next((r for r in reversed(evals) if r.get("final")), evals[-1] if evals else {})


def finished(out: Path) -> bool:
    """Whether a run folder holds a finished run: its generator was exported and its final test line written."""
    return RunDir(out).generator_meta.is_file() and final_test_line(out) is not None


def final_record(out: Path, keys: Sequence[str] = EVAL_KEYS) -> dict[str, Any] | None:
    """A finished run's G steps, final TEST evaluation (`keys`, its `eval_features`), doctor's verdict and error
    codes; None if unfinished. Validation lines are never read: they are for selection, not for tables."""
    if not finished(out):
        return None
    run = RunDir(out)
    records = read_jsonl(run.metrics)
    final = final_test_line(out)
    findings = read_jsonl(run.findings) if run.findings.is_file() else []
    return {"step": max(r["step"] for r in records if "loss_d" in r), **{k: final.get(f"eval_{k}") for k in keys},
            "eval_features": final.get("eval_features"), "eval_n": final.get("eval_n"),
            "verdict": verdict([Finding.from_dict(f) for f in findings]),
            "errors": sorted({f["code"] for f in findings if f["severity"] == "error"})}


#: How a re-scored test line chose its latent samples (recorded in a result file's `test_rescored`).
TEST_SEED_RULE = ("the final test evaluation of the current code, as `ganstab eval --run` computes it "
                  "(ganstab.pipeline.score_export): latent seed training_eval_seed(seed, 'test') = the run's seed + 7 "
                  "(the validation lines keep seed + 3), the run's own eval.n, the run's exported generator; no "
                  "training")


class RescoreMismatch(ValueError):
    """A stored run cannot be re-scored: its exported generator is not the network of its final validation line."""


def rescore_final_test(out: Path, validation: Mapping[str, Any]) -> dict[str, Any]:
    """A finished run's final test line as the current code scores it (`TEST_SEED_RULE`; nothing is written), after
    checking that the run folder's exported generator is the run's final network: scored on the validation reference
    with the validation seed it must give `validation`, the run's stored final validation line, score for score.
    Returns {"line": the test line's `eval_` keys (scores and provenance), "seed", "n", "step"}."""
    cfg = load_run_config(out)
    generator, meta = load_generator(out, device="cpu")
    if meta.get("step") != validation.get("step"):
        raise RescoreMismatch(f"{out}: the exported generator is of step {meta.get('step')}, the final validation "
                              f"line of step {validation.get('step')}; re-score only finished runs")
    cpu = torch.device("cpu")
    check = score_export(cfg, generator, meta, cpu, split="validation", echo=lambda message: None)
    differ = sorted(k for k, v in check.scores.items() if validation.get(f"eval_{k}") != v)
    if differ:
        raise RescoreMismatch(f"{out}: the exported generator does not reproduce the stored final validation line "
                              f"({', '.join(differ)} differ); it is not the run's final network")
    test = score_export(cfg, generator, meta, cpu, echo=lambda message: None)
    return {"line": {f"eval_{k}": v for k, v in {**test.scores, **test.provenance}.items()}, "seed": test.seed,
            "n": test.n, "step": meta["step"]}


def rescore_provenance(seconds: float, **counts: Any) -> dict[str, Any]:
    """A result file's `test_rescored` record: commit, UTC date, this command, the seed rule, its time and counts."""
    return {"commit": git_commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(shlex.quote(a) for a in ["python", *sys.argv]), "seed_rule": TEST_SEED_RULE,
            "seconds": round(seconds, 1), **counts}


def git_commit() -> str:
    """The checkout's commit (with '+dirty' when tracked files differ from it); 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """CPU model, logical cores and library versions of this machine."""
    import torch

    cpu = platform.processor() or platform.machine() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def output_stem(name: str, tag: str = "") -> str:
    """'name' or 'name-tag': the file stem of a benchmark's outputs."""
    return f"{name}-{tag}" if tag else name


def write_results(stem: str, text: str, payload: Any) -> Path:
    """Write results/<stem>.md and results/<stem>.json; return the path for the plot, <stem>.png."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return HERE / f"{stem}.png"


def mean_se_text(values: list) -> str:
    """'mean ± s.e.' of the values that exist ('n/a' for none, the value alone for one)."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values) / math.sqrt(len(values)):.2g}"


def summary_stats(values: Sequence[Any]) -> dict[str, float] | None:
    """{'mean', 'se', 'n'} of the values that are finite numbers (se 0.0 for one value); None for none."""
    values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not values:
        return None
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "se": se, "n": len(values)}


def add_summary(stem: str, build: Callable[[dict], dict]) -> dict:
    """Recompute results/<stem>.json's `summary` key from its stored rows with `build` (no re-training); rewrite it."""
    path = RESULTS / f"{stem}.json"
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["summary"] = build(payload)
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return payload["summary"]


def run_jobs(jobs: Sequence[tuple[Hashable, list[str], Path]], width: int,
             done: Callable[[Hashable, int], None], poll_seconds: float = 1.0) -> None:
    """Run (key, command, log path) jobs `width` at a time, output to the log; done(key, exit code) as each ends."""
    pending = list(jobs)
    running: list[tuple[Hashable, subprocess.Popen, Any]] = []
    while pending or running:
        while pending and len(running) < width:
            key, command, log_path = pending.pop(0)
            log = open(log_path, "w")
            running.append((key, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(poll_seconds)
        for item in list(running):
            key, proc, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            done(key, proc.returncode)
