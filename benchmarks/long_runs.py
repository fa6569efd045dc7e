"""Long runs: no false divergence on healthy training, however long, and however often it is killed.

Cases (issue #14's third reproduction and its long healthy runs):
- `kill-resume`: `ganstab train data.name=digits model.arch=dcgan train.steps=100000
  log.checkpoint_every=5 log.every=5` (the default recipe on the dcgan networks), killed with SIGKILL
  `--kills` times at random moments (a seeded schedule) and resumed with `--resume` each time;
- `healthy`: the default recipe on digits and Fashion-MNIST, `hinge-sn` on digits and `small-data`
  (DCGAN width 32) on Fashion-MNIST for `--steps` G steps (10,000 by default), `--seeds` seeds each,
  at default settings otherwise (evaluation on, auto). `hinge-sn` on Fashion-MNIST (DCGAN width 64)
  is left out: about 30 min per 10,000 steps on one CPU thread.

For every run: G steps reached, the final evaluation on the test reference (the last validation line only where a
run has no test line), the doctor's verdict and its divergence findings, recoveries, and the evaluation overhead
(the sum of `eval_time`, the final validation and test scores included, over the training wall time).

Usage: python benchmarks/long_runs.py [--only kill-resume|healthy] [--kills 20] [--steps 10000] [--seeds 3] [--tag v3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ganstab.diagnose import verdict
from ganstab.diagnose.findings import Finding
from ganstab.rundir import RunDir, is_eval_record, is_test_record, read_jsonl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (add_summary, machine, mean_se_text as mean_se, output_stem, report_line, run_jobs,  # noqa: E402
                    summary_stats, write_results)

KILL_ARGS = ["data.name=digits", "model.arch=dcgan", "train.steps=100000", "log.checkpoint_every=5", "log.every=5"]
HEALTHY = {
    "default-digits": ["data.name=digits"],
    "hinge-sn-digits": ["--preset", "hinge-sn", "data.name=digits"],
    "default-fashion": ["data.name=fashion-mnist"],
    "small-data-fashion": ["--preset", "small-data", "data.name=fashion-mnist"],
}


def train_command(args: list[str], out: Path, resume: bool = False) -> list[str]:
    """The `ganstab train` command line (one thread) of a run, or of its resumption."""
    base = [sys.executable, "-m", "ganstab", "train"]
    if resume:
        return base + ["--resume", str(out)]
    return base + ["--overwrite", *args, f"out={out}", "train.threads=1", "log.progress=false"]


def summary(out: Path) -> dict[str, Any]:
    """Steps, final evaluation, verdict, divergence findings, recoveries and eval overhead of a run."""
    run = RunDir(out)
    records = read_jsonl(run.metrics) if run.metrics.is_file() else []
    evals = [r for r in records if is_eval_record(r)]  # validation lines: what the doctor read
    tests = [r for r in records if is_test_record(r) and r.get("final")]
    final = report_line(records)
    findings = [Finding.from_dict(f) for f in read_jsonl(run.findings)] if run.findings.is_file() else []
    recoveries = [r for r in read_jsonl(run.recoveries) if "remedy" in r] if run.recoveries.is_file() else []
    train_lines = [r for r in records if "loss_d" in r]
    train_time = max((r.get("time", 0.0) for r in train_lines), default=0.0)
    eval_time = sum(r.get("eval_time", 0.0) for r in evals + tests)  # the final test score costs time too
    return {
        "step": max((r["step"] for r in train_lines), default=0),
        "fd": final.get("eval_fd"), "precision": final.get("eval_precision"), "coverage": final.get("eval_coverage"),
        "evaluations": len(evals), "tests": len(tests), "split": final.get("eval_split"),
        "features": final.get("eval_features"), "eval_time": eval_time, "train_time": train_time,
        "eval_overhead": eval_time / train_time if train_time else None,
        "verdict": verdict(findings), "divergence": sum(f.code.startswith("divergence.") for f in findings),
        "codes": sorted({f"{f.code} ({f.severity})" for f in findings if f.severity != "info"}),
        "recoveries": len(recoveries),
    }


def kill_resume(root: Path, kills: int, seed: int) -> dict[str, Any]:
    """Train the 100k-step run, SIGKILL it `kills` times at seeded random moments, resume until it ends."""
    out = root / "kill-resume"
    log_path = root / "kill-resume.log"
    rng = random.Random(seed)
    started = time.perf_counter()
    history: list[dict[str, Any]] = []
    with open(log_path, "w") as log:
        for attempt in range(kills + 1):
            cmd = train_command(KILL_ARGS, out, resume=attempt > 0)
            env = dict(os.environ, OMP_NUM_THREADS="1")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            if attempt < kills:
                wait = rng.uniform(5.0, 60.0)
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
            else:
                proc.wait()
            state = summary(out)
            history.append({"attempt": attempt, "exit": proc.returncode, "step": state["step"],
                            "divergence": state["divergence"], "recoveries": state["recoveries"]})
            print(f"  kill-resume attempt {attempt}: exit {proc.returncode}, step {state['step']}, "
                  f"divergence findings {state['divergence']}, recoveries {state['recoveries']}", flush=True)
            if proc.returncode not in (0, -signal.SIGKILL):
                break
    return {"wall_s": time.perf_counter() - started, "attempts": history, **summary(out)}


def healthy(root: Path, steps: int, seeds: int, jobs: int) -> dict[str, dict[str, Any]]:
    """Every healthy case for `steps` G steps and `seeds` seeds, `jobs` at a time."""
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for name, args in HEALTHY.items():
        for seed in range(seeds):
            out = root / name / f"seed{seed}"
            todo.append(((name, seed), train_command([*args, f"seed={seed}", f"train.steps={steps}"], out),
                         root / f"{name}-seed{seed}.log"))

    def done(key: Any, code: int) -> None:
        name, seed = key
        results[f"{name}/{seed}"] = {"exit": code, **summary(root / name / f"seed{seed}")}
        print(f"  {name} seed {seed}: {results[f'{name}/{seed}']}", flush=True)

    run_jobs(todo, jobs, done)
    return results


def markdown(args: argparse.Namespace, killed: dict[str, Any] | None, runs: dict[str, dict[str, Any]],
             minutes: float) -> str:
    """The results file's text."""
    lines = ["# Long runs: no false divergence", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; "
             f"`python benchmarks/long_runs.py {' '.join(sys.argv[1:])}` took {minutes:.1f} min.", ""]
    if killed is not None:
        kills = sum(a["exit"] == -signal.SIGKILL for a in killed["attempts"])
        lines += [f"## kill-resume: `ganstab train {' '.join(KILL_ARGS)}`, {kills} SIGKILLs and resumes", "",
                  f"- G steps reached: {killed['step']:,}; exit of the last attempt: {killed['attempts'][-1]['exit']}",
                  f"- divergence findings: {killed['divergence']}; recoveries: {killed['recoveries']}; "
                  f"verdict: {killed['verdict']}; findings above info: {', '.join(killed['codes']) or 'none'}",
                  f"- final evaluation: FD {killed['fd']}, precision {killed['precision']}, "
                  f"coverage {killed['coverage']}",
                  f"- evaluations: {killed['evaluations']}, eval time {killed['eval_time']:.1f} s of "
                  f"{killed['train_time']:.0f} s training ({100 * (killed['eval_overhead'] or 0):.1f} %)",
                  f"- wall time with the kills: {killed['wall_s'] / 60:.1f} min", ""]
    if runs:
        lines += [f"## Healthy runs: {args.steps:,} G steps, {args.seeds} seeds, one thread each, "
                  f"{args.jobs} at a time", "",
                  "| case | G steps | FD | precision | coverage | evaluations | eval overhead % | divergence "
                  "findings | recoveries | verdicts | findings above info |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name in HEALTHY:
            rows = [v for k, v in runs.items() if k.split("/")[0] == name]
            if not rows:
                continue
            cells = [mean_se([r[k] for r in rows]) for k in ("step", "fd", "precision", "coverage", "evaluations")]
            overhead = mean_se([100 * r["eval_overhead"] for r in rows if r["eval_overhead"] is not None])
            codes = ", ".join(sorted({c for r in rows for c in r["codes"]})) or "none"
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {overhead} | {sum(r['divergence'] for r in rows)} "
                         f"| {sum(r['recoveries'] for r in rows)} | {', '.join(r['verdict'] for r in rows)} | {codes} |")
        lines.append("")
    return "\n".join(lines)


def summarise(payload: dict) -> dict:
    """Per healthy case: mean, s.e. and n over the stored seeds of each number, and the divergence findings,
    recoveries and verdicts summed or counted over them."""
    out = {}
    for name in dict.fromkeys(k.split("/")[0] for k in payload.get("healthy") or {}):
        rows = [v for k, v in payload["healthy"].items() if k.split("/")[0] == name]
        out[name] = {key: summary_stats([r[key] for r in rows])
                     for key in ("step", "fd", "precision", "coverage", "evaluations", "eval_overhead")}
        out[name].update({"divergence_total": sum(r["divergence"] for r in rows),
                          "recoveries_total": sum(r["recoveries"] for r in rows),
                          "verdicts": {v: sum(r["verdict"] == v for r in rows)
                                       for v in dict.fromkeys(r["verdict"] for r in rows)}})
    return out


def main() -> None:
    """Run the chosen cases and write results/long_runs[-tag].md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("kill-resume", "healthy"), default=None)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    parser.add_argument("--tag", default="", help="a further suffix of the run folder and results (e.g. v3)")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored result file from its rows")
    args = parser.parse_args()
    stem = output_stem(output_stem("long_runs", args.only or ""), args.tag)
    if args.summarise:
        add_summary(stem, summarise)
        return
    root = HERE / "runs" / stem
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    killed = kill_resume(root, args.kills, args.seed) if args.only in (None, "kill-resume") else None
    runs = healthy(root, args.steps, args.seeds, args.jobs) if args.only in (None, "healthy") else {}
    text = markdown(args, killed, runs, (time.perf_counter() - started) / 60)
    write_results(stem, text, {"args": vars(args), "machine": machine(), "kill_resume": killed, "healthy": runs})
    add_summary(stem, summarise)
    print(text)


if __name__ == "__main__":
    main()
