"""Ablations: a grid (or named list) of config variants x seeds, trained in parallel, then aggregated.

Every run is an ordinary run directory `OUT/<variant>/seed<k>/` made by `ganstab.train.train` in a
spawned worker process. Re-running the same ablation skips finished runs (those with a
`generator.json`), resumes half-done runs from their newest valid checkpoint, and restarts runs
that have none. The aggregate (`summary.json`, `summary.csv`) holds, per variant, the mean and
standard error over seeds of every final metric and of the same metrics at fixed budgets of
images seen and of wall time, plus a ranking by the main metric (see `ranking_keys`).
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import json
import multiprocessing
import os
import re
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from ganstab.config import (config_diff, deep_merge, is_safe_change, known_keys, merge_sources, nest,
                            parse_override, read_yaml, smoothing_warnings, to_dict, validate)
from ganstab.errors import AblationError, ConfigError, GanstabError
from ganstab.pipeline import check_config, train
from ganstab.report.html import write_report
from ganstab.rundir import (PLAN_FILE, SUMMARY_CSV, SUMMARY_JSON, RunDir, acquire_lock, atomic_write, check_study_out,
                            holds_run)
from ganstab.summary import format_summary, run_name, summarize
from ganstab.training import checkpoint as ckpt

__all__ = ["AblationError", "Variant", "RunSpec", "AblationResult", "safe_name", "parse_vary", "grid_variants",
           "read_variants", "make_variants", "parse_seeds", "base_data", "plan_runs", "default_jobs", "write_plan",
           "run_ablation", "format_summary", "summarize", "PLAN_FILE", "SUMMARY_CSV", "SUMMARY_JSON", "MAX_SEEDS",
           "MAX_RUNS", "check_run_count"]

#: Most seeds per variant, and most runs (variants x seeds) in one ablation: checked before anything is listed
MAX_SEEDS = 1000
MAX_RUNS = 10_000

_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._,=+\-]")


# ------------------------------------------------------------------------------------------ variants
@dataclass
class Variant:
    """One point of the ablation: a name and the nested overrides merged over the base config."""

    name: str
    overrides: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)


@dataclass
class RunSpec:
    """One run to train: its variant, seed, directory, full config data and how to start it."""

    variant: str
    seed: int
    out: Path
    data: dict
    mode: str = "new"  # new | resume | restart | finished


@dataclass
class AblationResult:
    """What `run_ablation` did: runs started, skipped as finished, failed; invalid variants; the summary."""

    out: Path
    started: list[str] = field(default_factory=list)
    finished_before: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    report: Optional[Path] = None
    stop_signal: Optional[int] = None  # the signal that interrupted a run (its exit status is 128 + it)


def safe_name(text: str, limit: int = 120) -> str:
    """A filesystem-safe folder name: characters other than letters, digits and ._,=+- become '_'."""
    name = _SAFE_CHARS.sub("_", text).lstrip(".") or "_"
    if len(name) > limit:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name[:limit - 9]}-{digest}"
    return name


def _split_values(raw: str) -> list[str]:
    """Split on commas outside brackets and quotes, so 'optim.g_betas=[0,0.9],[0.5,0.999]' works."""
    parts, depth, quote, current = [], 0, "", []
    for char in raw:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _check_key(key: str, where: str) -> None:
    keys = known_keys()
    if key not in keys:
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise AblationError(f"{where}: unknown config key '{key}'{hint}; run 'ganstab keys' to list the keys")
    if key in ("seed", "out"):
        raise AblationError(f"{where}: '{key}' is set by the ablation itself; use --seeds and --out instead")


def parse_vary(text: str) -> tuple[str, list[tuple[str, dict]]]:
    """Parse '--vary key=v1,v2,...' into (key, [(value text, nested override)]); AblationError when malformed."""
    usage = "write it like --vary loss.kind=nonsaturating,hinge"
    if "=" not in text:
        raise AblationError(f"--vary {text!r} is not key=value1,value2,...; {usage}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")) or any(c.isspace() for c in key):
        raise AblationError(f"--vary {text!r} has no valid key; {usage}")
    _check_key(key, f"--vary {text!r}")
    values = _split_values(raw)
    if not raw.strip() or any(not v for v in values):
        raise AblationError(f"--vary {text!r} has an empty value; {usage}")
    if len(set(values)) != len(values):
        raise AblationError(f"--vary {text!r} lists a value twice; give each value once")
    return key, [(value, parse_override(f"{key}={value}")) for value in values]


def grid_variants(vary: Sequence[str]) -> list[Variant]:
    """The cross product of the --vary options, named 'key=value,key=value' (filesystem-safe)."""
    axes = [parse_vary(text) for text in vary]
    keys = [key for key, _ in axes]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise AblationError(f"--vary names '{dup}' twice; give all its values in one --vary {dup}=a,b")
    check_run_count(math.prod(len(values) for _, values in axes), 1)
    variants = []
    for combo in itertools.product(*(values for _, values in axes)):
        overrides: dict = {}
        labels = []
        for key, (text, nested) in zip(keys, combo):
            overrides = deep_merge(overrides, nested)
            labels.append(f"{key}={text}")
        variants.append(Variant(safe_name(",".join(labels)) if labels else "base", overrides, labels))
    return variants


def _nest(mapping: Mapping[str, Any], where: str) -> tuple[dict, list[str]]:
    """Nested overrides and 'key=value' labels from a nested or dotted mapping."""
    out: dict = {}
    labels: list[str] = []
    seen: set[str] = set()

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if not isinstance(key, str) or not key:
                raise AblationError(f"{where}: config keys must be non-empty strings, got {key!r}")
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping):
                walk(value, f"{dotted}.")
                continue
            _check_key(dotted, where)
            if dotted in seen:
                raise AblationError(f"{where}: sets '{dotted}' twice (as a dotted key and nested); keep one")
            seen.add(dotted)
            nonlocal out
            out = deep_merge(out, nest(dotted, value))
            labels.append(f"{dotted}={json.dumps(value)}")

    walk(mapping, "")
    return out, labels


def read_variants(path: str | Path) -> list[Variant]:
    """Named variants from a YAML mapping name -> overrides (nested or dotted keys; empty = the base)."""
    data = read_yaml(path)
    if not data:
        raise AblationError(f"--variants {str(path)!r} holds no variants; write a mapping name -> overrides")
    variants = []
    for name, overrides in data.items():
        where = f"--variants {str(path)!r}, variant {name!r}"
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, Mapping):
            raise AblationError(f"{where}: must map to a mapping of config keys, got {type(overrides).__name__}")
        nested, labels = _nest(overrides, where)
        variants.append(Variant(safe_name(str(name)), nested, labels))
    return variants


def make_variants(vary: Sequence[str] = (), variants_file: str | Path | None = None) -> list[Variant]:
    """Named variants crossed with the --vary grid (either alone works; neither gives one 'base' variant)."""
    grid = grid_variants(vary) if vary else [Variant("base")]
    if variants_file is None:
        out = grid
    else:
        named = read_variants(variants_file)
        if not vary:
            out = named
        else:
            varied = {label.split("=", 1)[0] for label in grid[0].labels}
            for variant in named:
                both = sorted(varied & {label.split("=", 1)[0] for label in variant.labels})
                if both:
                    raise AblationError(f"--variants {str(variants_file)!r}, variant {variant.name!r} sets '{both[0]}', "
                                        f"which --vary also varies; give that key in one of them")
            out = [Variant(safe_name(f"{n.name},{g.name}"), deep_merge(n.overrides, g.overrides), n.labels + g.labels)
                   for n in named for g in grid]
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise AblationError(f"two variants share the folder name {dup!r}; rename one")
    return out


def parse_seeds(text: str | int) -> list[int]:
    """'5' -> seeds 0..4; '0,3,7' -> exactly those seeds (run folders seed<k>)."""
    raw = str(text).strip()
    try:
        if "," in raw:
            seeds = [int(s) for s in raw.split(",")]
            if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
                raise ValueError
        else:
            seeds, count = [], int(raw)
    except ValueError:
        raise AblationError(f"--seeds {raw!r} must be a count like 5 or a list like 0,1,2 of distinct seeds") from None
    if seeds:
        if len(seeds) > MAX_SEEDS:
            raise AblationError(f"--seeds lists {len(seeds):,} seeds, more than an ablation runs (at most "
                                f"{MAX_SEEDS:,} per variant); give fewer")
        return seeds
    if count < 1:
        raise AblationError(f"--seeds must be at least 1, got {count}")
    if count > MAX_SEEDS:
        raise AblationError(f"--seeds {count} is more than an ablation runs (at most {MAX_SEEDS:,} seeds per variant); "
                            "give a smaller count")
    return list(range(count))


def check_run_count(variants: int, seeds: int) -> None:
    """Refuse an ablation of more than MAX_RUNS runs (variants x seeds) before any run is planned."""
    if variants * seeds > MAX_RUNS:
        raise AblationError(f"{variants:,} variants x {seeds:,} seeds = {variants * seeds:,} runs, more than an "
                            f"ablation plans (at most {MAX_RUNS:,}); vary fewer keys or values, or use fewer seeds")


def base_data(config: str | Path | None = None, overrides: Iterable[str] = (), preset: str | None = None) -> dict:
    """The base config as a nested dict: defaults <- preset <- file <- overrides (as `load_config`)."""
    data = merge_sources(config, overrides, preset)
    data.pop("out", None)
    return data


# ------------------------------------------------------------------------------------------ planning
def _run_state(run_dir: Path) -> str:
    """finished (generator.json), resume (a valid checkpoint), restart (a run without one) or new."""
    run = RunDir(run_dir)
    if run.generator_meta.is_file() and not _interrupted_export(run):
        return "finished"
    if ckpt.list_checkpoints(run.checkpoints):
        if ckpt.newest_valid_checkpoint(run.checkpoints, warn=lambda _msg: None) is not None:
            return "resume"
        return "restart"
    if holds_run(run_dir):
        return "restart"
    return "new"


def _interrupted_export(run: RunDir) -> bool:
    """Whether the run's generator.json is the export of a run stopped by a signal (not finished)."""
    try:
        return bool(json.loads(run.generator_meta.read_text(encoding="utf-8")).get("interrupted"))
    except (OSError, ValueError, AttributeError):
        return False


def _config_changes(run_dir: Path, planned: dict) -> list[str]:
    """Changes between a run's config.yaml and the plan, beyond the keys safe to change on resume
    (train.steps counts as a change here: a finished run is not extended)."""
    path = RunDir(run_dir).config
    if not path.is_file():
        return []
    try:
        old = to_dict(validate(read_yaml(path)))
    except ConfigError:
        return ["config.yaml: unreadable"]
    return [c for c in config_diff(old, planned) if not is_safe_change(c) or c.startswith("train.steps:")]


def plan_runs(out: Path, base: dict, variants: Sequence[Variant], seeds: Sequence[int], jobs: int,
              overwrite: bool = False, warn: Callable[[str], None] = print) -> tuple[list[RunSpec], list[tuple[str, str]]]:
    """Resolve and validate every (variant, seed) run; invalid variants come back as (name, reason)."""
    specs: list[RunSpec] = []
    invalid: list[tuple[str, str]] = []
    for variant in variants:
        merged = deep_merge(base, variant.overrides)
        variant_specs = []
        try:
            for seed in seeds:
                data = deep_merge(merged, {"seed": seed, "out": str(out / variant.name / f"seed{seed}"),
                                            "log": {"progress": False}})
                if jobs > 1:
                    data = deep_merge(data, {"train": {"threads": 1}})
                cfg = validate(data)
                check_config(cfg)
                if seed == seeds[0]:
                    for message in smoothing_warnings(cfg):
                        warn(f"ganstab: warning: variant {variant.name}: {message}")
                variant_specs.append(RunSpec(variant.name, seed, Path(cfg.out), to_dict(cfg)))
        except ConfigError as exc:
            invalid.append((variant.name, str(exc)))
            continue
        specs.extend(variant_specs)
    for spec in specs:
        state = _run_state(spec.out)
        if overwrite and state != "new":
            spec.mode = "restart"
            continue
        changes = _config_changes(spec.out, spec.data) if state != "new" else []
        if changes:
            raise AblationError(
                f"{spec.out} was trained with another config ({'; '.join(changes[:3])}); "
                "pass --overwrite to retrain it or choose another --out"
            )
        spec.mode = state
    return specs, invalid


# ------------------------------------------------------------------------------------------ running
def _run_one(spec: dict) -> dict:
    """Worker: train one run (fresh, resumed or restarted), logging its output to <run>/train.log."""
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(RunDir(out).train_log, "a", encoding="utf-8") as log:
        def echo(message: str) -> None:
            log.write(message + "\n")
            log.flush()

        try:
            cfg = validate(spec["data"])
            result = train(cfg, overwrite=spec["mode"] == "restart", resume=spec["mode"] == "resume", echo=echo)
        except GanstabError as exc:
            echo(f"error: {exc}")
            return {"run": spec["run"], "status": "failed", "message": str(exc).splitlines()[0],
                    "seconds": time.perf_counter() - started}
        except Exception as exc:  # one broken run must not stop the ablation
            log.write(traceback.format_exc())
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return {"run": spec["run"], "status": "failed", "message": message,
                    "seconds": time.perf_counter() - started}
    status = "interrupted" if result.interrupted else "done"
    return {"run": spec["run"], "status": status, "message": "", "seconds": time.perf_counter() - started,
            "steps": result.steps, "signal": result.stop_signal}


def default_jobs() -> int:
    """Worker processes the machine allows: os.cpu_count() (1 when unknown)."""
    return max(1, os.cpu_count() or 1)


def write_plan(out: Path, base: dict, variants: Sequence[Variant], seeds: Sequence[int],
               invalid: Sequence[tuple[str, str]]) -> Path:
    """Write OUT/ablation.json: the base config, variants, seeds and invalid variants."""
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "format": "ganstab-ablation-1",
        "base": base,
        "seeds": list(seeds),
        "variants": [{"name": v.name, "overrides": v.overrides, "labels": v.labels} for v in variants],
        "invalid": [{"variant": name, "reason": reason} for name, reason in invalid],
    }
    return atomic_write(out / PLAN_FILE, json.dumps(plan, indent=2))


def run_ablation(out: str | Path, base: dict, variants: Sequence[Variant], seeds: Sequence[int],
                 jobs: Optional[int] = None, overwrite: bool = False, report: bool = True,
                 echo: Callable[[str], None] = print) -> AblationResult:
    """Train every valid (variant, seed) run not yet finished, in `jobs` spawned workers (in this process
    when jobs == 1); then write summary.json/csv and the reports."""
    out = Path(out)
    check_study_out(out, "an ablation", AblationError)
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise AblationError(f"--jobs must be at least 1, got {jobs}")
    lock = acquire_lock(out, echo, what="ablation folder")  # one process per ablation folder, as per run folder
    try:
        return _run_locked(out, base, variants, seeds, jobs, overwrite, report, echo)
    finally:
        lock.release()


def _run_locked(out: Path, base: dict, variants: Sequence[Variant], seeds: Sequence[int], jobs: int,
                overwrite: bool, report: bool, echo: Callable[[str], None]) -> AblationResult:
    """`run_ablation` once this process holds the ablation folder's lock."""
    specs, invalid = plan_runs(out, base, variants, seeds, jobs, overwrite, warn=echo)
    result = AblationResult(out, invalid=list(invalid))
    for name, reason in invalid:
        echo(f"skipping variant {name}: {reason}")
    valid_names = {s.variant for s in specs}
    write_plan(out, base, [v for v in variants], seeds, invalid)
    todo = [s for s in specs if s.mode != "finished"]
    result.finished_before = [run_name(out, s.out) for s in specs if s.mode == "finished"]
    workers = min(jobs, len(todo))
    plan = (f"{len(todo)} to train with {workers} worker{'s' if workers != 1 else ''}" if todo else "nothing to train")
    echo(f"ablation {out}: {len(valid_names)} variant{'s' if len(valid_names) != 1 else ''} x {len(seeds)} "
         f"seed{'s' if len(seeds) != 1 else ''} = {len(specs)} runs; {len(result.finished_before)} finished before, "
         f"{plan}")
    if todo:
        payloads = [{"run": run_name(out, s.out), "out": str(s.out), "data": s.data, "mode": s.mode} for s in todo]
        result.started = [p["run"] for p in payloads]
        for done, (payload, info) in enumerate(_execute(payloads, workers), start=1):
            how = {"resume": " (resumed)", "restart": " (restarted)"}.get(payload["mode"], "")
            if info["status"] == "done":
                echo(f"[{done}/{len(todo)}] {info['run']}: done{how} in {info['seconds']:.1f} s")
            elif info["status"] == "interrupted":
                result.interrupted.append(info["run"])
                result.stop_signal = result.stop_signal or info.get("signal")
                echo(f"[{done}/{len(todo)}] {info['run']}: interrupted; checkpoint saved")
            else:
                result.failed.append((info["run"], info["message"]))
                echo(f"[{done}/{len(todo)}] {info['run']}: failed: {info['message']} "
                     f"(log: {RunDir(payload['out']).train_log})")
            if info["status"] == "interrupted" and workers == 1:
                break
    result.summary = summarize(out)
    if report:
        for spec in specs:
            run = RunDir(spec.out)
            if run.generator_meta.is_file() and not run.report.is_file():
                write_report(spec.out)
        result.report = write_report(out, summary=result.summary)
    return result


def _execute(payloads: Sequence[dict], workers: int) -> Iterable[tuple[dict, dict]]:
    """(payload, outcome) per run as they finish: in this process when workers == 1, else spawned workers."""
    if workers == 1:
        for payload in payloads:
            yield payload, _run_one(payload)
        return
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {executor.submit(_run_one, p): p for p in payloads}
        for future in as_completed(futures):
            try:
                info = future.result()
            except BrokenProcessPool:
                info = {"run": futures[future]["run"], "status": "failed",
                        "message": "worker process died (out of memory or killed?)", "seconds": 0.0}
            yield futures[future], info
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
