"""Ablations: a grid (or named list) of config variants x seeds, trained in parallel, then aggregated.

Every run is an ordinary run directory `OUT/<variant>/seed<k>/` made by `ganstab.train.train` in a
spawned worker process. Re-running the same ablation skips finished runs (those with a
`generator.json`), resumes half-done runs from their newest valid checkpoint, and restarts runs
that have none. The aggregate (`summary.json`, `summary.csv`) holds, per variant, the mean and
standard error over seeds of every final metric and of the same metrics at fixed budgets of
images seen and of wall time, plus a ranking by the main metric (see `ranking_keys`).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from ganstab.config import (ConfigError, _deep_merge, known_keys, merge_sources, nest, parse_override,
                             read_yaml, smoothing_warnings, to_dict, validate)

PLAN_FILE = "ablation.json"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
BUDGET_FRACTIONS: tuple[float, ...] = (0.25, 0.5, 1.0)
SEVERITIES: tuple[str, ...] = ("error", "warning", "info")
# keys of a training line that are bookkeeping, not metrics (images_seen and time are kept separately)
_NOT_METRICS = frozenset({"step", "d_steps", "images_seen", "time", "lr_g", "lr_d", "resolution", "alpha",
                          "nonfinite"})
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._,=+\-]")


class AblationError(ConfigError):
    """An ablation request that cannot be carried out; the message is one line with the fix."""


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


def safe_name(text: str, limit: int = 120) -> str:
    """A filesystem-safe folder name: characters other than letters, digits and ._,=+- become '_'."""
    name = _SAFE_CHARS.sub("_", text).lstrip(".") or "_"
    if len(name) > limit:
        import hashlib

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
        import difflib

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
    variants = []
    for combo in itertools.product(*(values for _, values in axes)):
        overrides: dict = {}
        labels = []
        for key, (text, nested) in zip(keys, combo):
            overrides = _deep_merge(overrides, nested)
            labels.append(f"{key}={text}")
        variants.append(Variant(safe_name(",".join(labels)) if labels else "base", overrides, labels))
    return variants


def _nest(mapping: Mapping[str, Any], where: str) -> tuple[dict, list[str]]:
    """Nested overrides and 'key=value' labels from a nested or dotted mapping."""
    out: dict = {}
    labels: list[str] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if not isinstance(key, str) or not key:
                raise AblationError(f"{where}: config keys must be non-empty strings, got {key!r}")
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping) and dotted != "doctor":
                walk(value, f"{dotted}.")
                continue
            _check_key(dotted, where)
            nonlocal out
            out = _deep_merge(out, nest(dotted, value))
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
            out = [Variant(safe_name(f"{n.name},{g.name}"), _deep_merge(n.overrides, g.overrides), n.labels + g.labels)
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
            return seeds
        count = int(raw)
    except ValueError:
        raise AblationError(f"--seeds {raw!r} must be a count like 5 or a list like 0,1,2 of distinct seeds") from None
    if count < 1:
        raise AblationError(f"--seeds must be at least 1, got {count}")
    return list(range(count))


def base_data(config: str | Path | None = None, overrides: Iterable[str] = (), preset: str | None = None) -> dict:
    """The base config as a nested dict: defaults <- preset <- file <- overrides (as `load_config`)."""
    data = merge_sources(config, overrides, preset)
    data.pop("out", None)
    return data


# ------------------------------------------------------------------------------------------ planning
def _run_state(run_dir: Path) -> str:
    """finished (generator.json), resume (a valid checkpoint), restart (a run without one) or new."""
    from ganstab.train import checkpoint as ckpt

    if (run_dir / "generator.json").is_file():
        return "finished"
    if ckpt.list_checkpoints(run_dir / "checkpoints"):
        if ckpt.newest_valid_checkpoint(run_dir / "checkpoints", warn=lambda _msg: None) is not None:
            return "resume"
        return "restart"
    if any((run_dir / name).exists() for name in ("config.yaml", "metrics.jsonl", "checkpoints")):
        return "restart"
    return "new"


def _config_changes(run_dir: Path, planned: dict) -> list[str]:
    """Changes between a run's config.yaml and the plan, beyond the keys safe to change on resume
    (train.steps counts as a change here: a finished run is not extended)."""
    from ganstab.train.loop import _is_safe, config_diff

    path = run_dir / "config.yaml"
    if not path.is_file():
        return []
    try:
        old = to_dict(validate(read_yaml(path)))
    except ConfigError:
        return ["config.yaml: unreadable"]
    return [c for c in config_diff(old, planned) if not _is_safe(c) or c.startswith("train.steps:")]


def plan_runs(out: Path, base: dict, variants: Sequence[Variant], seeds: Sequence[int], jobs: int,
              overwrite: bool = False, warn: Callable[[str], None] = print) -> tuple[list[RunSpec], list[tuple[str, str]]]:
    """Resolve and validate every (variant, seed) run; invalid variants come back as (name, reason)."""
    specs: list[RunSpec] = []
    invalid: list[tuple[str, str]] = []
    for variant in variants:
        merged = _deep_merge(base, variant.overrides)
        variant_specs = []
        try:
            for seed in seeds:
                data = _deep_merge(merged, {"seed": seed, "out": str(out / variant.name / f"seed{seed}"),
                                            "log": {"progress": False}})
                if jobs > 1:
                    data = _deep_merge(data, {"train": {"threads": 1}})
                cfg = validate(data)
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
    from ganstab.errors import GanstabError
    from ganstab.train import train

    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(out / "train.log", "a", encoding="utf-8") as log:
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
            import traceback

            log.write(traceback.format_exc())
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return {"run": spec["run"], "status": "failed", "message": message,
                    "seconds": time.perf_counter() - started}
    status = "interrupted" if result.interrupted else "done"
    return {"run": spec["run"], "status": status, "message": "", "seconds": time.perf_counter() - started,
            "steps": result.steps}


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
    path = out / PLAN_FILE
    tmp = path.with_name(f".{PLAN_FILE}.tmp")
    tmp.write_text(json.dumps(plan, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def run_ablation(out: str | Path, base: dict, variants: Sequence[Variant], seeds: Sequence[int],
                 jobs: Optional[int] = None, overwrite: bool = False, report: bool = True,
                 echo: Callable[[str], None] = print) -> AblationResult:
    """Train every valid (variant, seed) run not yet finished, in `jobs` spawned workers (in this process
    when jobs == 1); then write summary.json/csv and the reports."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AblationError(f"--out {str(out)!r} is a file; choose a folder")
    if out.is_dir() and (out / "config.yaml").is_file():
        raise AblationError(f"--out {str(out)!r} holds a single run, not an ablation; choose another folder")
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise AblationError(f"--jobs must be at least 1, got {jobs}")
    specs, invalid = plan_runs(out, base, variants, seeds, jobs, overwrite, warn=echo)
    result = AblationResult(out, invalid=list(invalid))
    for name, reason in invalid:
        echo(f"skipping variant {name}: {reason}")
    valid_names = {s.variant for s in specs}
    write_plan(out, base, [v for v in variants], seeds, invalid)
    todo = [s for s in specs if s.mode != "finished"]
    result.finished_before = [_run_name(out, s.out) for s in specs if s.mode == "finished"]
    workers = min(jobs, len(todo))
    plan = (f"{len(todo)} to train with {workers} worker{'s' if workers != 1 else ''}" if todo else "nothing to train")
    echo(f"ablation {out}: {len(valid_names)} variant{'s' if len(valid_names) != 1 else ''} x {len(seeds)} "
         f"seed{'s' if len(seeds) != 1 else ''} = {len(specs)} runs; {len(result.finished_before)} finished before, "
         f"{plan}")
    if todo:
        payloads = [{"run": _run_name(out, s.out), "out": str(s.out), "data": s.data, "mode": s.mode} for s in todo]
        result.started = [p["run"] for p in payloads]
        for done, (payload, info) in enumerate(_execute(payloads, workers), start=1):
            how = {"resume": " (resumed)", "restart": " (restarted)"}.get(payload["mode"], "")
            if info["status"] == "done":
                echo(f"[{done}/{len(todo)}] {info['run']}: done{how} in {info['seconds']:.1f} s")
            elif info["status"] == "interrupted":
                result.interrupted.append(info["run"])
                echo(f"[{done}/{len(todo)}] {info['run']}: interrupted; checkpoint saved")
            else:
                result.failed.append((info["run"], info["message"]))
                echo(f"[{done}/{len(todo)}] {info['run']}: failed: {info['message']} "
                     f"(log: {Path(payload['out']) / 'train.log'})")
            if info["status"] == "interrupted" and workers == 1:
                break
    result.summary = summarize(out)
    if report:
        from ganstab.report.html import write_report

        for spec in specs:
            if (spec.out / "generator.json").is_file() and not (spec.out / "report.html").is_file():
                write_report(spec.out)
        result.report = write_report(out, summary=result.summary)
    return result


def _execute(payloads: Sequence[dict], workers: int) -> Iterable[tuple[dict, dict]]:
    """(payload, outcome) per run as they finish: in this process when workers == 1, else spawned workers."""
    if workers == 1:
        for payload in payloads:
            yield payload, _run_one(payload)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

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


def _run_name(out: Path, run_dir: Path) -> str:
    return run_dir.relative_to(out).as_posix()


# ------------------------------------------------------------------------------------------ aggregation
def read_run(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(metrics records, findings) of a run directory; missing files give empty lists."""
    from ganstab.diagnose import read_records

    try:
        records = read_records(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    except ValueError as exc:
        raise AblationError(f"{exc}; repair that line or delete the run folder {str(run_dir)!r} to retrain it") from None
    from ganstab.train.recorder import read_jsonl

    return records, read_jsonl(run_dir / "findings.jsonl")


def _number(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def snapshot(records: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]],
             axis: str = "images_seen", budget: float = math.inf) -> dict[str, Optional[float]]:
    """Metrics of one run at a budget: each key's value in the last record with `axis` <= budget.

    Training keys come from the training line with the largest `axis` <= budget, each `eval_*`
    key from the last evaluation line carrying it within the budget; `images_seen` and
    `wall_time` are those of the last line within the budget, and `findings_<severity>` counts
    the findings that start at or before that line's step. budget=inf gives the final metrics.
    """
    from ganstab.diagnose.series import is_eval_record, is_training_record

    within = [r for r in records if _number(r.get(axis)) is not None and float(r[axis]) <= budget]
    within.sort(key=lambda r: (float(r[axis]), float(r.get("step") or 0)))
    out: dict[str, Optional[float]] = {}
    training = [r for r in within if is_training_record(r)]
    if training:
        last = training[-1]
        for key, value in last.items():
            if key not in _NOT_METRICS and not key.startswith("eval_") and _number(value) is not None:
                out[key] = float(value)
            elif key in (last.get("nonfinite") or ()):
                out[key] = None
    for record in within:
        if is_eval_record(record):
            for key, value in record.items():
                if key.startswith("eval_") and _number(value) is not None:
                    out[key] = float(value)
    if within:
        last = within[-1]
        out["images_seen"] = _number(last.get("images_seen"))
        out["wall_time"] = _number(last.get("time"))
        step = _number(last.get("step")) or 0.0
    else:
        step = -1.0
    for severity in SEVERITIES:
        out[f"findings_{severity}"] = float(sum(1 for f in findings if f.get("severity") == severity
                                                and (_number(f.get("start_step")) or 0.0) <= step))
    return out


def mean_se(values: Sequence[Optional[float]]) -> dict[str, Any]:
    """{'n', 'mean', 'se'} over the finite values: se = sample std (n-1) / sqrt(n), None when n < 2."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if n == 0:
        return {"n": 0, "mean": None, "se": None}
    mean = math.fsum(vals) / n
    if n < 2:
        return {"n": 1, "mean": mean, "se": None}
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    return {"n": n, "mean": mean, "se": math.sqrt(var / n)}


def aggregate(snapshots: Sequence[Mapping[str, Optional[float]]]) -> dict[str, dict[str, Any]]:
    """Mean and standard error of every metric over runs (a metric missing in a run is not counted)."""
    keys = sorted({k for snap in snapshots for k in snap})
    return {key: mean_se([snap.get(key) for snap in snapshots]) for key in keys}


def ranking_keys(metric_names: Iterable[str]) -> list[tuple[str, str]]:
    """Sort keys for the ranking: eval_fd (lower) when logged, else eval_modes then eval_hq_fraction
    (higher), else eval_hq_fraction alone, else the doctor's error count (lower); ties by name."""
    names = set(metric_names)
    if "eval_fd" in names:
        return [("eval_fd", "lower")]
    if "eval_modes" in names:
        return [("eval_modes", "higher")] + ([("eval_hq_fraction", "higher")] if "eval_hq_fraction" in names else [])
    if "eval_hq_fraction" in names:
        return [("eval_hq_fraction", "higher")]
    return [("findings_error", "lower")]


def rank_variants(final: Mapping[str, Mapping[str, Mapping[str, Any]]],
                  keys: Sequence[tuple[str, str]]) -> list[str]:
    """Variant names best first by the means of `keys`; a variant missing a key sorts after those with it."""
    def sort_key(name: str) -> tuple:
        parts: list[Any] = []
        for key, direction in keys:
            mean = final[name].get(key, {}).get("mean")
            if mean is None:
                parts.extend((1, 0.0))
            else:
                parts.extend((0, mean if direction == "lower" else -mean))
        return (*parts, name)

    return sorted(final, key=sort_key)


def read_plan(out: str | Path) -> dict:
    """The ablation.json of an ablation folder (AblationError when missing)."""
    path = Path(out) / PLAN_FILE
    if not path.is_file():
        raise AblationError(f"{str(out)!r} is not an ablation folder (no {PLAN_FILE}); run 'ganstab ablate' first")
    return json.loads(path.read_text(encoding="utf-8"))


def _seed_dirs(variant_dir: Path, seeds: Sequence[int]) -> list[Path]:
    return [variant_dir / f"seed{seed}" for seed in seeds]


def summarize(out: str | Path, write: bool = True) -> dict:
    """Aggregate the finished runs of an ablation; write summary.json and summary.csv unless write=False."""
    out = Path(out)
    plan = read_plan(out)
    seeds = plan.get("seeds", [])
    invalid = {item["variant"]: item["reason"] for item in plan.get("invalid", [])}
    runs: dict[str, list[tuple[str, list[dict], list[dict]]]] = {}
    unfinished: dict[str, list[str]] = {}
    labels = {}
    overrides = {}
    for variant in plan.get("variants", []):
        name = variant["name"]
        if name in invalid:
            continue
        labels[name] = variant.get("labels", [])
        overrides[name] = variant.get("overrides", {})
        runs[name] = []
        unfinished[name] = []
        for run_dir in _seed_dirs(out / name, seeds):
            rel = _run_name(out, run_dir)
            if (run_dir / "generator.json").is_file():
                records, findings = read_run(run_dir)
                runs[name].append((rel, records, findings))
            else:
                unfinished[name].append(rel)
    all_runs = [r for items in runs.values() for r in items]
    totals = {"images_seen": [], "wall_time": []}
    for _, records, _ in all_runs:
        for axis, key in (("images_seen", "images_seen"), ("wall_time", "time")):
            values = [_number(r.get(key)) for r in records]
            values = [v for v in values if v is not None]
            if values:
                totals[axis].append(max(values))
    budgets = {axis: [min(vals) * f for f in BUDGET_FRACTIONS] if vals else [] for axis, vals in totals.items()}
    budgets["images_seen"] = [math.floor(b) for b in budgets["images_seen"]]
    final: dict[str, dict] = {}
    at_budget: dict[str, dict[str, list]] = {}
    for name, items in runs.items():
        final[name] = aggregate([snapshot(records, findings) for _, records, findings in items])
        at_budget[name] = {}
        for axis, record_key in (("images_seen", "images_seen"), ("wall_time", "time")):
            at_budget[name][axis] = [
                {"fraction": fraction, "budget": budget,
                 "metrics": aggregate([snapshot(records, findings, record_key, budget)
                                       for _, records, findings in items])}
                for fraction, budget in zip(BUDGET_FRACTIONS, budgets[axis])
            ]
    metric_names = {k for stats in final.values() for k, v in stats.items() if v["n"] > 0}
    keys = ranking_keys(metric_names)
    order = rank_variants(final, keys)
    summary = {
        "format": "ganstab-ablation-summary-1",
        "main_metric": keys[0][0],
        "direction": keys[0][1],
        "ranking_keys": [list(k) for k in keys],
        "ranking": order,
        "seeds": seeds,
        "budget_fractions": list(BUDGET_FRACTIONS),
        "budgets": budgets,
        "variants": [
            {"name": name, "rank": rank, "labels": labels[name], "overrides": overrides[name],
             "runs": [rel for rel, _, _ in runs[name]], "unfinished": unfinished[name],
             "final": final[name], "images_seen": at_budget[name]["images_seen"],
             "wall_time": at_budget[name]["wall_time"]}
            for rank, name in enumerate(order, start=1)
        ],
        "invalid": [{"variant": k, "reason": v} for k, v in invalid.items()],
    }
    if write:
        write_summary(out, summary)
    return summary


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Long-format rows (rank, variant, scope, fraction, budget, metric, n, mean, se) of a summary."""
    rows = []
    for variant in summary["variants"]:
        scopes = [("final", None, None, variant["final"])]
        for axis in ("images_seen", "wall_time"):
            scopes += [(axis, item["fraction"], item["budget"], item["metrics"]) for item in variant[axis]]
        for scope, fraction, budget, metrics in scopes:
            for metric, stats in metrics.items():
                rows.append({"rank": variant["rank"], "variant": variant["name"], "scope": scope,
                             "fraction": fraction, "budget": budget, "metric": metric, "n": stats["n"],
                             "mean": stats["mean"], "se": stats["se"]})
    return rows


def write_summary(out: Path, summary: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write summary.json and summary.csv (long format, one row per variant x scope x metric)."""
    out = Path(out)
    json_path = out / SUMMARY_JSON
    json_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    csv_path = out / SUMMARY_CSV
    fields = ["rank", "variant", "scope", "fraction", "budget", "metric", "n", "mean", "se"]
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in summary_rows(summary):
            writer.writerow({k: ("" if v is None else (repr(v) if isinstance(v, float) else v))
                             for k, v in row.items()})
    return json_path, csv_path


def main_curve(out: str | Path, summary: Mapping[str, Any]) -> tuple[str, dict[str, tuple[list, list, list]]]:
    """(metric, {variant: (images_seen, mean, se)}): the main eval metric (loss_g when none) over seeds."""
    out = Path(out)
    metric = summary["main_metric"] if summary["main_metric"].startswith("eval_") else "loss_g"
    curves = {}
    for variant in summary["variants"]:
        by_x: dict[float, list[float]] = {}
        for rel in variant["runs"]:
            records, _ = read_run(out / rel)
            for record in records:
                x, y = _number(record.get("images_seen")), _number(record.get(metric))
                if x is not None and y is not None:
                    by_x.setdefault(x, []).append(y)
        xs = sorted(by_x)
        stats = [mean_se(by_x[x]) for x in xs]
        curves[variant["name"]] = (xs, [s["mean"] for s in stats], [s["se"] or 0.0 for s in stats])
    return metric, curves


def format_summary(summary: Mapping[str, Any], limit: int = 20) -> str:
    """A short text table of the ranking with the main metric's mean +- s.e."""
    metric = summary["main_metric"]
    lines = [f"ranking by {metric} ({summary['direction']} is better):"]
    for variant in summary["variants"][:limit]:
        stats = variant["final"].get(metric, {"n": 0, "mean": None, "se": None})
        if stats["mean"] is None:
            value = "n/a"
        else:
            value = f"{stats['mean']:.4g}" + (f" +- {stats['se']:.2g}" if stats["se"] is not None else "")
        lines.append(f"  {variant['rank']:>2}. {variant['name']}: {value} ({len(variant['runs'])} runs)")
    return "\n".join(lines)
