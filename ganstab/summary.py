"""Aggregation over runs and seeds: final metrics and metrics at fixed budgets, mean and standard error,
and a ranking by the main metric (`ganstab.metrics.registry`). Used by ablations and reports.

`summarize(folder)` reads an ablation folder (its `ablation.json` plan and every finished run)
and returns (and writes) `summary.json` / `summary.csv`: per variant, the mean and standard error
over seeds of every final metric and of the same metrics at fixed budgets of images seen and of
wall time, plus the ranking. What selects never sees what reports: the ranking (and whatever picks
a variant, such as tune's re-runs) reads the final evaluation on the validation reference
(`validation`), the reported final values (`final`) read its test line; evaluations at budgets
are validation lines (the only ones logged during training).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ganstab.diagnose.findings import worst_first
from ganstab.diagnose.series import as_number
from ganstab.errors import AblationError
from ganstab.metrics.registry import ranking_keys
from ganstab.rundir import (PLAN_FILE, SUMMARY_CSV, SUMMARY_JSON, RunDir, atomic_write, csv_text, is_eval_record, is_metric_key,
                            is_test_record, is_training_record, read_jsonl, read_records)

__all__ = ["BUDGET_FRACTIONS", "FINAL_SPLIT", "RANKING_SPLIT", "split_of", "read_run", "snapshot", "mean_se", "aggregate", "ranking_keys", "rank_variants",
           "read_plan", "summarize", "summary_rows", "write_summary", "main_curve", "format_summary", "run_name"]

BUDGET_FRACTIONS: tuple[float, ...] = (0.25, 0.5, 1.0)
FINAL_SPLIT = "test"  # the reference split of the reported final evaluation metrics
RANKING_SPLIT = "validation"  # the reference split the ranking (every selection) reads
SUMMARY_FORMAT = "ganstab-ablation-summary-2"  # 2: `final` holds the test line's metrics, `validation` ranks
# keys of a training line that are bookkeeping, not metrics (images_seen and time are kept separately)
NOT_METRICS = frozenset({"step", "d_steps", "images_seen", "time", "lr_g", "lr_d", "resolution", "alpha",
                         "nonfinite"})


def run_name(out: Path, run_dir: Path) -> str:
    """A run's folder relative to its ablation folder, e.g. 'base/seed0'."""
    return run_dir.relative_to(out).as_posix()


def read_run(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(metrics records, findings) of a run directory; missing files give empty lists, damaged lines are skipped."""
    run = RunDir(run_dir)
    return read_records(run.root), read_jsonl(run.findings)


def split_of(scope: str, metric: str) -> str:
    """The reference split behind a summary value: FINAL_SPLIT for an `eval_` metric of the final scope,
    RANKING_SPLIT for one of the `validation` scope or at a budget, '' for training keys, findings and time."""
    if not metric.startswith("eval_"):
        return ""
    return FINAL_SPLIT if scope == "final" else RANKING_SPLIT


def snapshot(records: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]],
             axis: str = "images_seen", budget: float = math.inf, split: str = RANKING_SPLIT
             ) -> dict[str, Optional[float]]:
    """Metrics of one run at a budget: each key's value in the last record with `axis` <= budget.

    Training keys come from the training line with the largest `axis` <= budget, each `eval_*`
    key from the last evaluation line of `split` ("validation": `is_eval_record`; "test": the final
    test line, `is_test_record`) carrying it within the budget; `images_seen` and `wall_time` are
    those of the last line within the budget, and `findings_<severity>` counts the findings that
    start at or before that line's step. budget=inf gives the final metrics.
    """
    scored = is_test_record if split == "test" else is_eval_record
    within = [r for r in records if as_number(r.get(axis)) is not None and float(r[axis]) <= budget]
    within.sort(key=lambda r: (float(r[axis]), float(r.get("step") or 0)))
    out: dict[str, Optional[float]] = {}
    training = [r for r in within if is_training_record(r)]
    if training:
        last = training[-1]
        for key, value in last.items():
            if key not in NOT_METRICS and not key.startswith("eval_") and as_number(value) is not None:
                out[key] = float(value)
            elif key in (last.get("nonfinite") or ()):
                out[key] = None
    for record in within:
        if scored(record):
            for key, value in record.items():
                if is_metric_key(key) and as_number(value) is not None:
                    out[key] = float(value)
    if within:
        last = within[-1]
        out["images_seen"] = as_number(last.get("images_seen"))
        out["wall_time"] = as_number(last.get("time"))
        step = as_number(last.get("step")) or 0.0
    else:
        step = -1.0
    for severity in worst_first():
        out[f"findings_{severity}"] = float(sum(1 for f in findings if f.get("severity") == severity
                                                and (as_number(f.get("start_step")) or 0.0) <= step))
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


def _collect_runs(out: Path, plan: Mapping[str, Any]) -> tuple[dict[str, list], dict[str, list[str]]]:
    """Per valid variant: (run name, records, findings) of its finished runs, and its unfinished runs."""
    invalid = {item["variant"] for item in plan.get("invalid", [])}
    runs: dict[str, list[tuple[str, list[dict], list[dict]]]] = {}
    unfinished: dict[str, list[str]] = {}
    for variant in plan.get("variants", []):
        name = variant["name"]
        if name in invalid:
            continue
        runs[name], unfinished[name] = [], []
        for seed in plan.get("seeds", []):
            run_dir = out / name / f"seed{seed}"
            if RunDir(run_dir).generator_meta.is_file():
                runs[name].append((run_name(out, run_dir), *read_run(run_dir)))
            else:
                unfinished[name].append(run_name(out, run_dir))
    return runs, unfinished


def _budgets(runs: Mapping[str, list]) -> dict[str, list[float]]:
    """The budgets (fractions of the shortest run) of images seen and of wall time."""
    totals: dict[str, list[float]] = {"images_seen": [], "wall_time": []}
    for items in runs.values():
        for _, records, _ in items:
            for axis, key in (("images_seen", "images_seen"), ("wall_time", "time")):
                values = [v for v in (as_number(r.get(key)) for r in records) if v is not None]
                if values:
                    totals[axis].append(max(values))
    budgets = {axis: [min(vals) * f for f in BUDGET_FRACTIONS] if vals else [] for axis, vals in totals.items()}
    budgets["images_seen"] = [math.floor(b) for b in budgets["images_seen"]]
    return budgets


def _at_budgets(items: Sequence[tuple], budgets: Mapping[str, list[float]]) -> dict[str, list]:
    """Aggregated metrics of a variant's runs at each budget of images seen and of wall time."""
    out: dict[str, list] = {}
    for axis, record_key in (("images_seen", "images_seen"), ("wall_time", "time")):
        out[axis] = [
            {"fraction": fraction, "budget": budget,
             "metrics": aggregate([snapshot(records, findings, record_key, budget) for _, records, findings in items])}
            for fraction, budget in zip(BUDGET_FRACTIONS, budgets[axis])
        ]
    return out


def summarize(out: str | Path, write: bool = True) -> dict:
    """Aggregate the finished runs of an ablation; write summary.json and summary.csv unless write=False."""
    out = Path(out)
    plan = read_plan(out)
    runs, unfinished = _collect_runs(out, plan)
    budgets = _budgets(runs)
    ranked = {name: aggregate([snapshot(records, findings) for _, records, findings in items])
              for name, items in runs.items()}
    final = {name: aggregate([snapshot(records, findings, split=FINAL_SPLIT) for _, records, findings in items])
             for name, items in runs.items()}
    metric_names = {k for stats in ranked.values() for k, v in stats.items() if v["n"] > 0}
    keys = ranking_keys(metric_names)
    order = rank_variants(ranked, keys)
    described = {v["name"]: v for v in plan.get("variants", [])}
    variants = []
    for rank, name in enumerate(order, start=1):
        at_budget = _at_budgets(runs[name], budgets)
        variants.append({"name": name, "rank": rank, "labels": described[name].get("labels", []),
                         "overrides": described[name].get("overrides", {}),
                         "runs": [rel for rel, _, _ in runs[name]], "unfinished": unfinished[name],
                         "final": final[name], "validation": ranked[name], "images_seen": at_budget["images_seen"],
                         "wall_time": at_budget["wall_time"]})
    summary = {
        "format": SUMMARY_FORMAT, "final_split": FINAL_SPLIT, "ranking_split": RANKING_SPLIT,
        "main_metric": keys[0][0], "direction": keys[0][1],
        "ranking_keys": [list(k) for k in keys], "ranking": order, "seeds": plan.get("seeds", []),
        "budget_fractions": list(BUDGET_FRACTIONS), "budgets": budgets, "variants": variants,
        "invalid": [{"variant": item["variant"], "reason": item["reason"]} for item in plan.get("invalid", [])],
    }
    if write:
        write_summary(out, summary)
    return summary


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Long-format rows (rank, variant, scope, fraction, budget, metric, split, n, mean, se) of a summary: scope
    final (evaluation metrics on test), validation (the final evaluation metrics the ranking reads) and the
    budgets; `split` names the reference of an `eval_` value (`split_of`)."""
    rows = []
    for variant in summary["variants"]:
        validation = {k: v for k, v in variant["validation"].items() if k.startswith("eval_")}
        scopes = [("final", None, None, variant["final"]), ("validation", None, None, validation)]
        for axis in ("images_seen", "wall_time"):
            scopes += [(axis, item["fraction"], item["budget"], item["metrics"]) for item in variant[axis]]
        for scope, fraction, budget, metrics in scopes:
            for metric, stats in metrics.items():
                rows.append({"rank": variant["rank"], "variant": variant["name"], "scope": scope,
                             "fraction": fraction, "budget": budget, "metric": metric,
                             "split": split_of(scope, metric), "n": stats["n"], "mean": stats["mean"],
                             "se": stats["se"]})
    return rows


def write_summary(out: Path, summary: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write summary.json and summary.csv (long format, one row per variant x scope x metric)."""
    out = Path(out)
    json_path = atomic_write(out / SUMMARY_JSON, json.dumps(summary, indent=2))
    fields = ["rank", "variant", "scope", "fraction", "budget", "metric", "split", "n", "mean", "se"]
    rows = [["" if (v := row[k]) is None else (repr(v) if isinstance(v, float) else v) for k in fields]
            for row in summary_rows(summary)]
    csv_path = atomic_write(out / SUMMARY_CSV, csv_text(fields, rows))
    return json_path, csv_path


def main_curve(out: str | Path, summary: Mapping[str, Any]) -> tuple[str, dict[str, tuple[list, list, list]]]:
    """(metric, {variant: (images_seen, mean, se)}): the main eval metric (loss_g when none) over seeds, from
    the validation lines (the final test line is no point of the curve)."""
    out = Path(out)
    metric = summary["main_metric"] if summary["main_metric"].startswith("eval_") else "loss_g"
    curves = {}
    for variant in summary["variants"]:
        by_x: dict[float, list[float]] = {}
        for rel in variant["runs"]:
            records, _ = read_run(out / rel)
            for record in records:
                if is_test_record(record):
                    continue
                x, y = as_number(record.get("images_seen")), as_number(record.get(metric))
                if x is not None and y is not None:
                    by_x.setdefault(x, []).append(y)
        xs = sorted(by_x)
        stats = [mean_se(by_x[x]) for x in xs]
        curves[variant["name"]] = (xs, [s["mean"] for s in stats], [s["se"] or 0.0 for s in stats])
    return metric, curves


def _mean_se_text(stats: Optional[Mapping[str, Any]]) -> str:
    """'mean +- se' of one aggregated metric ('n/a' without a value)."""
    if not stats or stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.4g}" + (f" +- {stats['se']:.2g}" if stats.get("se") is not None else "")


def format_summary(summary: Mapping[str, Any], limit: int = 20) -> str:
    """A short text table of the ranking with the main metric's mean +- s.e.: on the test reference (the reported
    value) and on validation (what the ranking read) for an evaluation metric."""
    metric = summary["main_metric"]
    scored = metric.startswith("eval_")
    lines = [f"ranking by {metric}{f' on {RANKING_SPLIT}' if scored else ''} ({summary['direction']} is better)"
             + (f"; reported: the final evaluation on {FINAL_SPLIT}:" if scored else ":")]
    for variant in summary["variants"][:limit]:
        value = _mean_se_text(variant["final"].get(metric))
        if scored:
            value = (f"{value} ({FINAL_SPLIT}), {_mean_se_text(variant['validation'].get(metric))} "
                     f"({RANKING_SPLIT})")
        lines.append(f"  {variant['rank']:>2}. {variant['name']}: {value} ({len(variant['runs'])} runs)")
    return "\n".join(lines)
