"""Progressive growing vs the same architecture trained at full size, same wall-clock budget.

Both runs use the `progan` preset (WGAN-GP + drift, pixel norm, minibatch stddev, equalised lr,
EMA) on Fashion-MNIST with the same networks (blocks 4x4 ... 32x32); the flat run trains them at
full resolution from the first step (`progressive.grow=false`), the growing run fades the blocks
in one after another. They run one after the
other (never together: two jobs on 2 cores spoil each other's timing) and are scored with the
evaluator network's Frechet distance (plus KID, precision/recall, coverage) at the end.

Usage: python benchmarks/progressive.py [--budget 240] [--data fashion-mnist] [--out benchmarks/runs]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch

from ganstab.pipeline import load_config
from ganstab.train import train
from ganstab.rundir import is_eval_record, read_jsonl as read_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, output_stem, report_line, write_results  # noqa: E402

KEYS = ("eval_fd", "eval_kid", "eval_precision", "eval_recall", "eval_coverage", "eval_class_kl")


def run(name: str, overrides: list[str], out: Path) -> dict:
    """Train one variant and return its final evaluation and throughput."""
    cfg = load_config(preset="progan", overrides=[f"out={out / name}", *overrides])
    result = train(cfg, overwrite=True, echo=lambda m: None)
    return {"variant": name, "steps": result.steps, "images_seen": result.images_seen,
            **read_back(read_metrics(out / name / "metrics.jsonl"))}


def read_back(records: list[dict]) -> dict:
    """Seconds, final resolution, the final TEST line's `KEYS` and the FD curve of the validation lines (a test
    line is a report, never a point of the curve; the last validation line only where a run has no test line)."""
    evals = [r for r in records if is_eval_record(r) and "eval_fd" in r]
    final = report_line(records)
    last_train = [r for r in records if "loss_d" in r][-1]
    return {"seconds": last_train["time"], "final_resolution": last_train.get("resolution"),
            **{k: final[k] for k in KEYS if k in final}, "eval_split": final.get("eval_split"),
            "curve": [(r["time"], r["eval_fd"]) for r in evals]}


def plot(rows: list[dict], path: Path) -> None:
    """FD against training seconds for each variant (the time-to-quality curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for row in rows:
        xs, ys = zip(*row["curve"]) if row["curve"] else ((), ())
        ax.plot(xs, ys, marker="o", label=f"{row['variant']} (final res {row['final_resolution']})")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("FD (evaluator features)")
    ax.set_yscale("log")
    ax.set_title("Progressive growing vs flat, same networks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    """Run both variants and print a markdown table (also written under benchmarks/results/)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per variant")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default="benchmarks/runs/progressive")
    parser.add_argument("--eval-every", type=int, default=400)
    parser.add_argument("--phase-images", type=int, default=2500,
                        help="images per stable phase and per fade-in of the growing run")
    parser.add_argument("--tag", default="", help="suffix for the output files (progressive-<tag>.md ...)")
    args = parser.parse_args()
    out = Path(args.out)
    common = [f"data.name={args.data}", f"train.time_budget={args.budget}", "train.steps=1000000",
              f"eval.every={args.eval_every}", "eval.n=2000", "log.progress=false", "log.sample_every=400"]
    # growing: 4x4 -> 32x32 in 6 phases of --phase-images each, then 32x32 for the rest of the budget
    grow = ["progressive.start=4", f"progressive.stable_images={args.phase_images}",
            f"progressive.fade_images={args.phase_images}"]
    flat = ["progressive.start=4", "progressive.grow=false"]  # same blocks, all active from step 0
    rows = [run("growing", common + grow, out), run("flat", common + flat, out)]
    lines = [
        f"Command: `python benchmarks/progressive.py --budget {args.budget:g} --data {args.data} "
        f"--eval-every {args.eval_every} --phase-images {args.phase_images}"
        f"{' --tag ' + args.tag if args.tag else ''}`  ",
        f"Date: {datetime.date.today()}; machine: {machine()['cpu']}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}",
        "",
        "| variant | steps | images seen | seconds | final res | FD | KID | precision | recall | coverage | class KL |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['steps']} | {r['images_seen']} | {r['seconds']:.0f} | "
                     f"{r['final_resolution']} | {r.get('eval_fd', float('nan')):.2f} | "
                     f"{r.get('eval_kid', float('nan')):.4f} | {r.get('eval_precision', float('nan')):.3f} | "
                     f"{r.get('eval_recall', float('nan')):.3f} | {r.get('eval_coverage', float('nan')):.3f} | "
                     f"{r.get('eval_class_kl', float('nan')):.3f} |")
    text = "\n".join(lines)
    print(text)
    plot(rows, write_results(output_stem("progressive", args.tag), text, rows))


if __name__ == "__main__":
    main()
