"""A first run's cost of the evaluator network, and the evaluation overhead at the defaults.

For each data set (the demo's digits and Fashion-MNIST), `ganstab train data.name=NAME` at default
settings is timed end to end (process start to exit) with a warm evaluator cache and with an empty one
(a new GANSTAB_CACHE folder), alternating, `--repeats` times each; the empty-cache run trains the
evaluator network at its first evaluation (since the shipped evaluators, digits and Fashion-MNIST runs load theirs
and train none: `benchmarks/shipped_evaluator.py` compares that with training one). Also reported: the seconds of that one-time training
(its 'trained in' line: cache look-up, training, test and save; a warm run has none), which measures the growth without the run-to-run noise
of two wall times, the evaluator's test accuracy, and
from the warm runs' metrics.jsonl the evaluation overhead, the sum of `eval_time` (full and quick
evaluations, the final validation and test lines included) over the training time.

Usage: python benchmarks/first_run.py [--repeats 2] [--data digits fashion-mnist] [--tag TAG]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ganstab.rundir import is_eval_record, is_test_record, read_jsonl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import add_summary, machine, output_stem, summary_stats, write_results  # noqa: E402


def timed_run(data: str, out: Path, cache: Path) -> dict[str, Any]:
    """Wall time of one default `ganstab train` run, its training time and evaluation time."""
    env = dict(os.environ, GANSTAB_CACHE=str(cache))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ganstab", "train", "--overwrite", f"data.name={data}", f"out={out}",
                           "log.progress=false"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{data}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    records = read_jsonl(out / "metrics.jsonl")
    evals = [r for r in records if is_eval_record(r)]
    train_time = max(r.get("time", 0.0) for r in records)
    steps = [r for r in records if "loss_d" in r]
    first_eval = evals[0]["step"] if evals else None
    before = [r for r in steps if first_eval is None or r["step"] <= first_eval]
    # 'evaluator: trained in 3.1s, test accuracy 0.861 (cached in DIR)', only when the cache was empty (the
    # warm cache folder may also hold older evaluator versions, so its files do not say which one was used)
    fits = [line.split() for line in proc.stdout.splitlines() if line.startswith("evaluator: trained in ")]
    fit_seconds = float(fits[-1][3].rstrip("s,")) if fits else 0.0
    accuracy = float(fits[-1][fits[-1].index("accuracy") + 1]) if fits and "accuracy" in fits[-1] else None
    tests = [r for r in records if is_test_record(r)]  # the final test line: an evaluation's cost like any other
    return {"fit_seconds": fit_seconds, "wall": wall, "train_time": train_time,
            "eval_time": sum(r.get("eval_time", 0.0) for r in evals + tests), "test": len(tests),
            "full": sum(not r.get("quick") for r in evals), "quick": sum(bool(r.get("quick")) for r in evals),
            "accuracy": accuracy, "first_eval_step": first_eval,
            # training seconds per 1,000 steps up to the first evaluation (which trains the evaluator when the
            # cache is empty) and after it: where a cold run's training slows down, if it does
            "ms_per_step_before": 1000 * before[-1]["time"] / before[-1]["step"] if before else None,
            "ms_per_step_after": (1000 * (steps[-1]["time"] - before[-1]["time"]) / (steps[-1]["step"] - before[-1]["step"])
                                  if before and steps[-1]["step"] > before[-1]["step"] else None)}


def summarise(payload: dict) -> dict:
    """Per data set, from the stored runs: mean, s.e. and n of each measured number for warm and empty caches, the
    wall growth (empty / warm - 1), the evaluator's share of a warm run, the evaluation overhead (eval time over
    training time, warm runs) and the paired differences (empty - warm) of wall, training and wall - training."""
    out = {}
    for data, runs in payload["runs"].items():
        entry: dict = {}
        for kind in ("warm", "cold"):
            rows = runs[kind]
            entry[kind] = {key: summary_stats([r.get(key) for r in rows]) for key in rows[0]}
            entry[kind]["outside_training"] = summary_stats([r["wall"] - r["train_time"] for r in rows])
        warm, cold = entry["warm"], entry["cold"]
        entry["wall_growth"] = cold["wall"]["mean"] / warm["wall"]["mean"] - 1
        entry["evaluator_share"] = cold["fit_seconds"]["mean"] / warm["wall"]["mean"]
        entry["eval_overhead"] = warm["eval_time"]["mean"] / warm["train_time"]["mean"]
        pairs = list(zip(runs["cold"], runs["warm"]))
        entry["difference"] = {
            "wall": summary_stats([c["wall"] - w["wall"] for c, w in pairs]),
            "train_time": summary_stats([c["train_time"] - w["train_time"] for c, w in pairs]),
            "outside_training": summary_stats([(c["wall"] - c["train_time"]) - (w["wall"] - w["train_time"])
                                               for c, w in pairs])}
        entry["difference"]["outside_training_share"] = (entry["difference"]["outside_training"]["mean"]
                                                         / warm["wall"]["mean"])
        out[data] = entry
    return out

def main() -> None:
    """Time warm and cold first runs per data set and write results/first_run.md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", nargs="*", default=["digits", "fashion-mnist"])
    parser.add_argument("--tag", default="", help="suffix of the output files (results/first_run-TAG.md)")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored results/first_run[-TAG].json")
    args = parser.parse_args()
    if args.summarise:
        add_summary(output_stem("first_run", args.tag), summarise)
        return
    root = HERE / "runs" / output_stem("first_run", args.tag)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for data in args.data:
        warm_cache = root / f"cache-{data}"
        timed_run(data, root / f"{data}-prime", warm_cache)  # fills the warm cache
        results[data] = {"warm": [], "cold": []}
        for repeat in range(args.repeats):
            for kind in ("cold", "warm"):
                with tempfile.TemporaryDirectory() as empty:
                    cache = Path(empty) if kind == "cold" else warm_cache
                    row = timed_run(data, root / f"{data}-{kind}{repeat}", cache)
                results[data][kind].append(row)
                print(f"{data} {kind} {repeat}: {row}", flush=True)
    lines = ["# A first run's evaluator cost and the evaluation overhead at the defaults", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; "
             f"`python benchmarks/first_run.py {' '.join(sys.argv[1:])}` took "
             f"{(time.perf_counter() - started) / 60:.1f} min. Each row: `ganstab train data.name=NAME` at default "
             f"settings, process start to exit, mean of {args.repeats} (alternating cold and warm).", "",
             "| data | wall, warm cache s | wall, empty cache s | first-run growth | evaluator training s (growth) | "
             "evaluator test accuracy | "
             "training s, warm / empty (s.e. of the difference) | evaluations (full + quick) | eval time s | eval overhead |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for data, rows in results.items():
        warm, cold = (statistics.fmean(r["wall"] for r in rows[k]) for k in ("warm", "cold"))
        train_time = statistics.fmean(r["train_time"] for r in rows["warm"])
        cold_train = statistics.fmean(r["train_time"] for r in rows["cold"])
        gaps = [c["train_time"] - w["train_time"] for c, w in zip(rows["cold"], rows["warm"])]
        gap_se = statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else float("nan")
        eval_time = statistics.fmean(r["eval_time"] for r in rows["warm"])
        full = statistics.fmean(r["full"] for r in rows["warm"])
        quick = statistics.fmean(r["quick"] for r in rows["warm"])
        accuracy = rows["cold"][0]["accuracy"]
        fit = statistics.fmean(r["fit_seconds"] for r in rows["cold"])
        lines.append(f"| {data} | {warm:.1f} | {cold:.1f} | {100 * (cold / warm - 1):+.1f} % | "
                     f"{fit:.1f} ({100 * fit / warm:.1f} %) | "
                     f"{accuracy if accuracy is None else f'{accuracy:.3f}'} | {train_time:.1f} / {cold_train:.1f} "
                     f"({cold_train - train_time:+.1f} ± {gap_se:.1f}) | {full:.0f} + "
                     f"{quick:.0f} | {eval_time:.2f} | {100 * eval_time / train_time:.1f} % |")
    text = "\n".join(lines) + "\n"
    write_results(output_stem("first_run", args.tag), text, {"args": vars(args), "machine": machine(), "runs": results})
    add_summary(output_stem("first_run", args.tag), summarise)
    print(text)


if __name__ == "__main__":
    main()
