"""Image quality per trick on Fashion-MNIST at an equal wall-clock budget (and equal images seen).

Every trick is switched on alone over one plain baseline (DCGAN architecture, non-saturating loss,
no normalisation, Adam 2e-4 / betas (0.5, 0.999)), next to the recommended combination and the
`blog` preset as published. Each variant trains for the same number of seconds on the same machine,
one run at a time, for several seeds, and is scored with ganstab's evaluator network (FD, KID,
precision/recall, coverage, class KL) at fixed checkpoints, which gives a time-to-quality curve.

Usage: python benchmarks/fashion.py [--budget 120] [--seeds 3] [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
from pathlib import Path

import torch

from ganstab.config import load_config
from ganstab.train import train
from ganstab.train.recorder import read_metrics

BASELINE = ["model.arch=dcgan", "model.latent_dim=100", "model.width=32", "model.g_norm=none", "model.d_norm=none",
            "loss.kind=nonsaturating", "optim.g_lr=2e-4", "optim.d_lr=2e-4", "optim.g_betas=[0.5,0.999]",
            "optim.d_betas=[0.5,0.999]", "train.ema=0", "train.n_critic=1", "train.batch_size=64"]

VARIANTS: dict[str, tuple[str | None, list[str]]] = {
    "baseline": (None, []),
    "ttur": (None, ["optim.g_lr=1e-4", "optim.d_lr=4e-4", "optim.g_betas=[0,0.9]", "optim.d_betas=[0,0.9]"]),
    "bn-in-g": (None, ["model.g_norm=batch"]),
    "spectral-d": (None, ["model.d_norm=spectral"]),
    "n-critic-2": (None, ["train.n_critic=2"]),
    "one-sided-smoothing": (None, ["loss.real_label=0.9"]),
    "lsgan": (None, ["loss.kind=lsgan"]),
    "hinge": (None, ["loss.kind=hinge"]),
    "wgan-gp": (None, ["loss.kind=wasserstein", "penalty.gp=10", "train.n_critic=5", "model.d_norm=layer",
                       "optim.g_lr=1e-4", "optim.d_lr=1e-4", "optim.g_betas=[0,0.9]", "optim.d_betas=[0,0.9]"]),
    "wgan-clip": (None, ["loss.kind=wasserstein", "penalty.clip=0.01", "train.n_critic=5", "optim.name=rmsprop",
                         "optim.g_lr=5e-5", "optim.d_lr=5e-5"]),
    "r1": (None, ["penalty.r1=1"]),
    "ema": (None, ["train.ema=10000"]),
    "recommended": (None, ["loss.kind=hinge", "model.d_norm=spectral", "model.g_norm=batch", "optim.g_lr=1e-4",
                           "optim.d_lr=4e-4", "optim.g_betas=[0,0.9]", "optim.d_betas=[0,0.9]", "train.ema=10000"]),
    "blog-as-published": ("blog", []),
}


def run_variant(name: str, seed: int, budget: float, eval_every: int, out: Path, data: str) -> dict:
    """Train one variant/seed for `budget` seconds and return its evaluation series."""
    preset, extra = VARIANTS[name]
    base = [] if preset else BASELINE
    overrides = [*base, *extra, f"data.name={data}", f"seed={seed}", f"out={out / name / f'seed{seed}'}",
                 "train.steps=10000000", f"train.time_budget={budget}", f"eval.every={eval_every}", "eval.n=2000",
                 "log.progress=false", "log.sample_every=1000", "log.checkpoint_every=1000"]
    cfg = load_config(preset=preset, overrides=overrides)
    train(cfg, overwrite=True, echo=lambda m: None)
    records = read_metrics(out / name / f"seed{seed}" / "metrics.jsonl")
    evals = [r for r in records if "eval_fd" in r]
    return {"variant": name, "seed": seed, "final": {k[5:]: v for k, v in evals[-1].items() if k.startswith("eval_")},
            "curve": [(r["time"], r["images_seen"], r["eval_fd"]) for r in evals],
            "images_seen": evals[-1]["images_seen"]}


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (0 for one value)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return values[0], 0.0
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def main() -> None:
    """Run every variant x seed one after another; print and write the table and the curves plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 seed, 30 s per run, a few variants")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default="benchmarks/runs/fashion")
    args = parser.parse_args()
    names = args.only or (["baseline", "ttur", "hinge", "recommended", "blog-as-published"] if args.quick
                          else list(VARIANTS))
    budget, seeds = (30.0, 1) if args.quick else (args.budget, args.seeds)
    eval_every = 200 if args.quick else 500
    rows = [run_variant(n, s, budget, eval_every, Path(args.out), args.data) for n in names for s in range(seeds)]
    keys = ("fd", "kid", "precision", "recall", "coverage", "class_kl")
    lines = [f"Command: `python benchmarks/fashion.py --budget {budget:g} --seeds {seeds}"
             f"{' --quick' if args.quick else ''}`  ",
             f"Date: {datetime.date.today()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
             f"{budget:g} s of training per run, one run at a time", "",
             "| variant | images seen | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name in names:
        group = [r for r in rows if r["variant"] == name]
        cells = []
        for key in keys:
            m, se = mean_se([r["final"].get(key) for r in group])
            cells.append(f"{m:.3g} ± {se:.2g}")
        images = statistics.fmean(r["images_seen"] for r in group)
        lines.append(f"| {name} | {images:.0f} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    results = Path("benchmarks/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / "fashion.md").write_text(text + "\n")
    (results / "fashion.json").write_text(json.dumps(rows, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for name in names:
        group = [r for r in rows if r["variant"] == name]
        xs = [t for t, _, _ in group[0]["curve"]]
        ys = [statistics.fmean(r["curve"][i][2] for r in group if i < len(r["curve"])) for i in range(len(xs))]
        ax.plot(xs, ys, label=name, marker="o", markersize=3)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("FD (evaluator features, lower is better)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Fashion-MNIST: time to quality")
    fig.tight_layout()
    fig.savefig("benchmarks/fashion.png")


if __name__ == "__main__":
    main()
