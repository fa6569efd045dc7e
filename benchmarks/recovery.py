"""Automatic recovery measured: the same failing runs with `train.recover=true` and `false`, 3 seeds each.

Cases (issue #14's reproductions, at default settings otherwise):
- `lr0.5`: `data.name=digits model.arch=dcgan optim.g_lr=0.5 optim.d_lr=0.5 train.steps=300`, whose
  gradients die within 50 steps (the doctor's `training.dead`; remedy: D's learning rate scaled);
- `blog-ring8`: `--preset blog data.name=ring8 model.arch=toy`, which collapses to a few of the 8 modes
  (the doctor's mode-collapse and failed-evaluation errors; remedy: roll back to the best evaluation's
  state and scale G's learning rate);
- `lsgan-ring8`: `--preset lsgan data.name=ring8 model.arch=toy`, a second collapsing recipe (BN in
  G and D with the least-squares loss).

For every run: the final evaluation on the test reference (FD, precision, recall, coverage; modes and high-quality
fraction on 2-D data; the last validation line only where a run has no test line), the doctor's verdict and the
number of recoveries in recoveries.jsonl.

Usage: python benchmarks/recovery.py [--seeds 3] [--jobs 2] [--tag v3]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from ganstab.diagnose import verdict
from ganstab.diagnose.findings import Finding
from ganstab.rundir import RunDir, read_jsonl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (add_summary, machine, mean_se_text as mean_se, output_stem, report_line, run_jobs,  # noqa: E402
                    summary_stats, write_results)

CASES = {
    "lr0.5": ["data.name=digits", "model.arch=dcgan", "optim.g_lr=0.5", "optim.d_lr=0.5", "train.steps=300"],
    "blog-ring8": ["--preset", "blog", "data.name=ring8", "model.arch=toy"],
    "lsgan-ring8": ["--preset", "lsgan", "data.name=ring8", "model.arch=toy"],
}
KEYS = {"lr0.5": ("fd", "precision", "recall", "coverage"), "blog-ring8": ("modes", "hq_fraction"),
        "lsgan-ring8": ("modes", "hq_fraction")}


def command(case: str, recover: bool, seed: int, out: Path) -> list[str]:
    """The `ganstab train` command line of one run."""
    return [sys.executable, "-m", "ganstab", "train", "--overwrite", *CASES[case], f"seed={seed}", f"out={out}",
            f"train.recover={'true' if recover else 'false'}", "train.threads=1", "log.progress=false"]


def summary(out: Path, case: str) -> dict:
    """Final evaluation, verdict and recovery count of a finished run."""
    run = RunDir(out)
    records = read_jsonl(run.metrics)
    final = report_line(records)
    findings = [Finding.from_dict(f) for f in read_jsonl(run.findings)] if run.findings.is_file() else []
    recoveries = [r for r in read_jsonl(run.recoveries) if "recovery" in r and "remedy" in r] \
        if run.recoveries.is_file() else []
    steps = max((r["step"] for r in records if "loss_d" in r), default=0)
    return {"step": steps, **{k: final.get(f"eval_{k}") for k in KEYS[case]}, "verdict": verdict(findings),
            "recoveries": len(recoveries), "codes": sorted({f.code for f in findings if f.severity == "error"}),
            "features": final.get("eval_features"), "split": final.get("eval_split")}


def summarise(payload: dict) -> dict:
    """Per `case/recover`: mean, s.e. and n over the stored seeds of G steps, the case's metrics and recoveries."""
    groups: dict[str, list[dict]] = {}
    for key, run in payload["runs"].items():
        groups.setdefault(key.rsplit("/", 1)[0], []).append(run)
    return {arm: {key: summary_stats([r.get(key) for r in runs]) for key in ("step", *KEYS[arm.split("/")[0]],
                                                                             "recoveries")}
            for arm, runs in groups.items()}


def main() -> None:
    """Run every case with recovery on and off, `--jobs` at a time, and write results/recovery.md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tag", default="", help="a suffix of the run folder and results (e.g. v3)")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored result file from its rows")
    args = parser.parse_args()
    stem = output_stem("recovery", args.tag)
    if args.summarise:
        add_summary(stem, summarise)
        return
    root = HERE / "runs" / stem
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    jobs = [(case, recover, seed) for case in CASES for seed in range(args.seeds) for recover in (True, False)]
    results: dict[tuple, dict] = {}

    def run_dir(case: str, recover: bool, seed: int) -> Path:
        return root / f"{case}-recover{int(recover)}" / f"seed{seed}"

    def done(key: tuple, code: int) -> None:
        results[key] = {"exit": code, **summary(run_dir(*key), key[0])}
        print(f"  {key}: {results[key]}", flush=True)

    run_jobs([((case, recover, seed), command(case, recover, seed, run_dir(case, recover, seed)),
               root / f"{case}-recover{int(recover)}-seed{seed}.log") for case, recover, seed in jobs], args.jobs, done)
    features = sorted({str(r.get("features")) for r in results.values() if r.get("features")})
    invocation = f"python benchmarks/recovery.py --seeds {args.seeds} --jobs {args.jobs}" + \
        (f" --tag {args.tag}" if args.tag else "")
    lines = [f"# Recovery on and off ({args.seeds} seeds)", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; "
             f"`{invocation}` took {(time.perf_counter() - started) / 60:.1f} min; "
             f"final evaluations by {', '.join(features) or 'no evaluator'}.", ""]
    for case in CASES:
        keys = KEYS[case]
        lines += [f"## {case}: `ganstab train {' '.join(CASES[case])}`", "",
                  "| train.recover | G steps | " + " | ".join(keys) + " | recoveries | verdicts | errors |",
                  "|---|---|" + "---|" * (len(keys) + 3)]
        for recover in (True, False):
            rows = [results[(case, recover, s)] for s in range(args.seeds) if (case, recover, s) in results]
            cells = [mean_se([r[k] for r in rows]) for k in ("step", *keys, "recoveries")]
            verdicts = ", ".join(r["verdict"] for r in rows)
            codes = ", ".join(sorted({c for r in rows for c in r["codes"]})) or "none"
            lines.append(f"| {str(recover).lower()} | " + " | ".join(cells) + f" | {verdicts} | {codes} |")
        lines.append("")
    text = "\n".join(lines)
    write_results(stem, text, {"args": vars(args), "machine": machine(),
                                     "runs": {"/".join(map(str, k)): v for k, v in results.items()}})
    add_summary(stem, summarise)
    print(text)


if __name__ == "__main__":
    main()
