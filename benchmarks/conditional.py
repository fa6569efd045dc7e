"""Class-conditional against unconditional training on Fashion-MNIST, same networks, same wall clock.

Both variants use the DCGAN networks with ganstab's recommended tricks (hinge loss, spectral norm
in D, batch norm in G, TTUR with betas (0, 0.9), EMA); the conditional one swaps G's batch norms
for conditional batch norms and D's output layer for a projection head (Miyato & Koyama 2018).
For every seed the two variants train side by side, one torch thread each, for the same number
of seconds, so that whatever else the machine does slows both alike. Each run ends with one
evaluation of `--eval-n` samples by ganstab's evaluator network (trained once on the real
training split before the runs start): FD, KID, precision, recall, coverage and, for the
conditional runs, the evaluator's accuracy on the requested labels and the mean intra-class FD.

Usage: python benchmarks/conditional.py [--budget 600] [--seeds 3] [--eval-n 5000] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from ganstab.data import make_dataset
from ganstab.metrics import RunEvaluator
from ganstab.pipeline import load_config
from ganstab.rundir import RunDir, read_jsonl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (add_summary, machine, mean_se_text as mean_se, output_stem, report_line,  # noqa: E402
                    summary_stats, write_results)

NETWORKS = ["model.arch=dcgan", "model.width=32", "model.latent_dim=100", "model.g_norm=batch",
            "model.d_norm=spectral", "loss.kind=hinge", "optim.g_lr=1e-4", "optim.d_lr=4e-4",
            "optim.g_betas=[0,0.9]", "optim.d_betas=[0,0.9]", "train.ema=10000", "train.batch_size=64"]
VARIANTS = {"unconditional": [], "conditional": ["model.conditional=true"]}
KEYS = ("fd", "kid", "precision", "recall", "coverage", "class_accuracy", "intra_fd")


def overrides(variant: str, seed: int, budget: float, eval_n: int, out: Path, data: str) -> list[str]:
    """The config of one run."""
    return [*NETWORKS, *VARIANTS[variant], f"data.name={data}", f"seed={seed}", f"out={out}",
            "train.steps=100000000", f"train.time_budget={budget}", f"eval.n={eval_n}", "eval.every=0",
            "train.threads=1", "log.progress=false", "log.sample_every=100000000", "log.checkpoint_every=2000"]


def warm_evaluator(data: str) -> float:
    """Train (or load) the evaluator network once, so that no run pays for it; returns its test accuracy."""
    cfg = load_config(overrides=[*NETWORKS, f"data.name={data}", "out=/tmp/unused"])
    source = make_dataset(cfg.data, cfg.seed)
    evaluator = RunEvaluator(source, 100, torch.device("cpu"), cfg.eval.cache_dir, cfg.eval.evaluator_epochs,
                             echo=lambda message: print(f"  {message}", flush=True))
    return float(evaluator.test_accuracy or math.nan)


def run_pair(seed: int, budget: float, eval_n: int, root: Path, data: str) -> dict[str, dict]:
    """Train both variants of one seed side by side; their final evaluation lines."""
    procs = {}
    for variant in VARIANTS:
        out = root / variant / f"seed{seed}"
        if out.exists():
            shutil.rmtree(out)
        log = open(root / f"{variant}-seed{seed}.log", "w")
        cmd = [sys.executable, "-m", "ganstab", "train", *overrides(variant, seed, budget, eval_n, out, data)]
        procs[variant] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, out)
    results = {}
    for variant, (proc, log, out) in procs.items():
        code = proc.wait()
        log.close()
        if code != 0:
            raise SystemExit(f"{variant} seed {seed} failed (exit {code}); see {root / f'{variant}-seed{seed}.log'}")
        results[variant] = read_final(out)
    return results


def read_final(out: Path) -> dict:
    """A finished run's G steps and its final TEST line's images seen and `KEYS` (validation lines are for
    selection, never for this table; the last validation line only where a run has no test line)."""
    records = read_jsonl(RunDir(out).metrics)
    final = report_line(records)
    steps = max(r["step"] for r in records if "loss_d" in r)
    return {"step": steps, "images_seen": final["images_seen"], "split": final.get("eval_split"),
            "features": final.get("eval_features"), **{k: final.get(f"eval_{k}") for k in KEYS}}


def report(rows: dict[str, list[dict]], args: argparse.Namespace, accuracy: float, seconds: float) -> str:
    """The markdown table."""
    lines = [f"# Conditional vs unconditional on {args.data} ({args.budget:.0f} s per run, {args.seeds} seeds)", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; "
             f"`python benchmarks/conditional.py --budget {args.budget:g} --seeds {args.seeds} --eval-n {args.eval_n}"
             f"{' --quick' if args.quick else ''}` took {seconds / 60:.1f} min. Evaluator test accuracy "
             f"{accuracy:.4f}. Each pair trained side by side with one thread each.", "",
             "| variant | G steps | " + " | ".join(KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for variant, results in rows.items():
        cells = [mean_se([r[k] for r in results]) for k in KEYS]
        lines.append(f"| {variant} | {mean_se([r['step'] for r in results])} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed:", ""]
    for variant, results in rows.items():
        for seed, r in enumerate(results):
            lines.append(f"- {variant} seed {seed}: " + ", ".join(f"{k}={r[k]:.4g}" for k in KEYS if r[k] is not None))
    return "\n".join(lines)


def summarise(payload: dict) -> dict:
    """Per variant and key (G steps and every metric): mean, standard error and count over the stored seeds."""
    return {variant: {key: summary_stats([r[key] for r in results]) for key in ("step", *KEYS)}
            for variant, results in payload["rows"].items()}


def main() -> None:
    """Parse arguments, train every pair, write results/conditional[-quick].md/json and a sample grid."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of training per run (default 600)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-n", type=int, default=5000)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--quick", action="store_true", help="20 s, 1 seed, 1000 samples (a smoke run)")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored results/conditional[-quick].json")
    args = parser.parse_args()
    if args.summarise:
        add_summary(output_stem("conditional", "quick" if args.quick else ""), summarise)
        return
    if args.quick:
        args.budget, args.seeds, args.eval_n = 20.0, 1, 1000
    stem = output_stem("conditional", "quick" if args.quick else "")
    root = HERE / "runs" / stem
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"evaluator for {args.data}", flush=True)
    accuracy = warm_evaluator(args.data)
    rows: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for seed in range(args.seeds):
        print(f"seed {seed}: training both variants for {args.budget:g} s", flush=True)
        for variant, result in run_pair(seed, args.budget, args.eval_n, root, args.data).items():
            rows[variant].append(result)
            print(f"  {variant}: " + ", ".join(f"{k}={v:.4g}" for k, v in result.items() if v is not None), flush=True)
    text = report(rows, args, accuracy, time.perf_counter() - started)
    write_results(stem, text, {"args": vars(args), "machine": machine(), "rows": rows, "evaluator_accuracy": accuracy})
    add_summary(stem, summarise)
    grid = sorted(RunDir(root / "conditional" / "seed0").samples.glob("*.png"))
    if grid:
        shutil.copyfile(grid[-1], HERE / f"{stem}-samples.png")
    print(text)


if __name__ == "__main__":
    main()
