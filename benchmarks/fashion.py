"""Image quality per trick on Fashion-MNIST at an equal wall-clock budget (and equal images seen).

Every trick is switched on alone over one plain baseline (DCGAN architecture, non-saturating loss,
no normalisation, Adam 2e-4 / betas (0.5, 0.999)), next to the recommended combination, the
`blog` preset as published and progressive growing (the `progan` preset with its phases shortened
to fit the budget). Each variant trains for the same number of seconds on the same machine, one
run at a time, for several seeds, and is scored with ganstab's evaluator network (FD, KID,
precision/recall, coverage, class KL) every EVAL_IMAGES real images. The checkpoints therefore
line up in images seen across variants, which gives a second table at equal images seen (the
last checkpoint every run reached) and a time-to-quality curve.

Usage: python benchmarks/fashion.py [--budget 60] [--seeds 3] [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from ganstab.diagnose import verdict
from ganstab.diagnose.findings import Finding
from ganstab.pipeline import load_config
from ganstab.train import train
from ganstab.rundir import read_jsonl as read_metrics

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import add_summary, machine, output_stem, summary_stats, write_results  # noqa: E402

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
    "progressive": ("progan", ["progressive.stable_images=1000", "progressive.fade_images=1000"]),
}

#: Real images between evaluations (a multiple of batch x n_critic for every variant: 64, 128, 320, 32).
EVAL_IMAGES = 16000
KEYS = ("fd", "kid", "precision", "recall", "coverage", "class_kl")
#: Variants left out when choosing the equal-images checkpoint (far fewer images per second).
SLOW = ("progressive",)


def run_variant(name: str, seed: int, budget: float, eval_images: int, out: Path, data: str) -> dict:
    """Train one variant/seed for `budget` seconds, evaluating every `eval_images` real images."""
    preset, extra = VARIANTS[name]
    base = [] if preset else BASELINE
    run_dir = out / name / f"seed{seed}"
    overrides = [*base, *extra, f"data.name={data}", f"seed={seed}", f"out={run_dir}",
                 "train.steps=10000000", f"train.time_budget={budget}", "eval.n=2000",
                 "log.progress=false", "log.sample_every=1000", "log.checkpoint_every=1000"]
    cfg = load_config(preset=preset, overrides=overrides)
    per_step = cfg.train.batch_size * cfg.train.n_critic
    if eval_images % per_step:
        raise SystemExit(f"{name}: {eval_images} images is not a multiple of batch x n_critic = {per_step}")
    cfg.eval.every = eval_images // per_step
    start = time.perf_counter()
    train(cfg, overwrite=True, echo=lambda m: None)
    wall = time.perf_counter() - start
    records = read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if "eval_fd" in r]
    points = [{"time": r["time"], "images_seen": r["images_seen"], "step": r["step"],
               **{k[5:]: v for k, v in r.items() if k.startswith("eval_")}} for r in evals]
    findings = read_metrics(run_dir / "findings.jsonl") if (run_dir / "findings.jsonl").is_file() else []
    return {"variant": name, "seed": seed, "final": points[-1], "points": points,
            "images_seen": records[-1]["images_seen"], "steps": records[-1]["step"], "wall": wall,
            "verdict": verdict([Finding.from_dict(f) for f in findings]),
            "findings": sorted({f"{f['code']} ({f['severity']})" for f in findings if f["severity"] != "info"})}


def at_images(row: dict, images: int) -> dict | None:
    """The evaluation of a run at exactly `images` real images seen (None when it did not get there)."""
    for point in row["points"]:
        if point["images_seen"] == images:
            return point
    return None


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (0 for one value)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return float("nan"), float("nan")
    if len(values) == 1:
        return values[0], 0.0
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def summarise(payload: dict, eval_images: int = EVAL_IMAGES) -> dict:
    """Per variant: mean, s.e. and n of G steps, images seen and the final metrics, and of the metrics at the
    largest multiple of `eval_images` that every run (but the slow variants) reached; from the stored rows."""
    rows = payload["rows"]
    reached = min((max([p["images_seen"] for p in r["points"] if p["images_seen"] % eval_images == 0], default=0)
                   for r in rows if r["variant"] not in SLOW), default=0)
    variants = {}
    for name in dict.fromkeys(r["variant"] for r in rows):
        group = [r for r in rows if r["variant"] == name]
        points = [p for p in (at_images(r, reached) for r in group) if p is not None] if reached else []
        variants[name] = {"steps": summary_stats([r["steps"] for r in group]),
                          "images_seen": summary_stats([r["images_seen"] for r in group]),
                          "final": {key: summary_stats([r["final"].get(key) for r in group]) for key in KEYS},
                          "at_equal_images": {key: summary_stats([p.get(key) for p in points])
                                              for key in ("time", *KEYS)}}
    return {"equal_images": reached, "variants": variants}


def main() -> None:
    """Run every variant x seed one after another; print and write the table and the curves plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 seed, 30 s per run, 3 variants (written to *-quick.*)")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default="benchmarks/runs/fashion")
    parser.add_argument("--tag", default="", help="suffix of the output files (fashion-<tag>.md ...)")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored results/fashion[-TAG].json")
    args = parser.parse_args()
    if args.summarise:
        tag = "quick" if args.quick else args.tag
        add_summary(output_stem("fashion", tag), lambda payload: summarise(payload, 8000 if args.quick else EVAL_IMAGES))
        return
    names = args.only or (["baseline", "recommended", "blog-as-published"] if args.quick else list(VARIANTS))
    budget, seeds = (30.0, 1) if args.quick else (args.budget, args.seeds)
    eval_images = 8000 if args.quick else EVAL_IMAGES
    started = time.perf_counter()
    rows = []
    for name in names:
        for seed in range(seeds):
            rows.append(run_variant(name, seed, budget, eval_images, Path(args.out), args.data))
            r = rows[-1]
            print(f"{name} seed {seed}: {r['steps']} steps, {r['images_seen']} images, "
                  f"FD {r['final']['fd']:.3g} at {r['final']['images_seen']} images", flush=True)
    total = time.perf_counter() - started
    aligned = [max([p["images_seen"] for p in r["points"] if p["images_seen"] % eval_images == 0], default=0)
               for r in rows if r["variant"] not in SLOW]
    reached = min(aligned, default=0)
    command = (f"python benchmarks/fashion.py --budget {budget:g} --seeds {seeds}{' --quick' if args.quick else ''}"
               + (f" --only {' '.join(args.only)}" if args.only else "") + (f" --tag {args.tag}" if args.tag else ""))
    info = machine()
    lines = [f"# {args.data}: each trick alone at an equal budget", "",
             f"- Command: `{command}`",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
             f"{total / 60:.1f} min for {len(rows)} runs",
             f"- Machine: {info['cpu']}, {info['cores']} logical cores, torch {info['torch']} with "
             f"{torch.get_num_threads()} threads, Python {info['python']}; one run at a time",
             f"- Budget: {budget:g} s of training per run (evaluations not counted); {seeds} seed(s); "
             f"evaluator metrics on 2,000 samples every {eval_images:,} real images; mean ± standard error",
             "", f"## At the end of the {budget:g} s budget", "",
             "| variant | G steps | images seen | " + " | ".join(KEYS) + " |", "|---|---|---|" + "---|" * len(KEYS)]
    for name in names:
        group = [r for r in rows if r["variant"] == name]
        cells = [_cell([r["final"].get(key) for r in group]) for key in KEYS]
        steps = statistics.fmean(r["steps"] for r in group)
        images = statistics.fmean(r["images_seen"] for r in group)
        lines.append(f"| {name} | {steps:.0f} | {images:,.0f} | " + " | ".join(cells) + " |")
    lines += ["", f"## At equal images seen: {reached:,} real images", "",
              "The last checkpoint that every run reached"
              + (f" ({', '.join(SLOW)} excluded: at this budget it sees far fewer images; `–` where a run did not "
                 "get there)." if any(n in SLOW for n in names) else "."), "",
              "| variant | runs there | seconds to get there | " + " | ".join(KEYS) + " |",
              "|---|---|---|" + "---|" * len(KEYS)]
    for name in names:
        group = [r for r in rows if r["variant"] == name]
        points = [p for p in (at_images(r, reached) for r in group) if p is not None]
        if not points or reached == 0:
            lines.append(f"| {name} | 0/{len(group)} | – | " + " | ".join("–" for _ in KEYS) + " |")
            continue
        cells = [_cell([p.get(key) for p in points]) for key in KEYS]
        lines.append(f"| {name} | {len(points)}/{len(group)} | {_cell([p['time'] for p in points])} | "
                     + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    tag = "quick" if args.quick else args.tag
    png = write_results(output_stem("fashion", tag), text, {"command": command, "rows": rows})
    add_summary(output_stem("fashion", tag), lambda payload: summarise(payload, eval_images))
    plot_curves(rows, names, png)


def _cell(values: list) -> str:
    """'mean ± s.e.' with three significant digits."""
    m, se = mean_se([v for v in values if v is not None])
    return f"{m:.3g} ± {se:.2g}"


def plot_curves(rows: list[dict], names: list[str], path: Path) -> None:
    """FD against training seconds and against images seen, mean over seeds per checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for name in names:
        group = [r for r in rows if r["variant"] == name]
        n = min(len(r["points"]) for r in group)
        if n == 0:
            continue
        fd = [statistics.fmean(r["points"][i]["fd"] for r in group) for i in range(n)]
        secs = [statistics.fmean(r["points"][i]["time"] for r in group) for i in range(n)]
        imgs = [group[0]["points"][i]["images_seen"] for i in range(n)]
        axes[0].plot(secs, fd, label=name, marker="o", markersize=3)
        axes[1].plot(imgs, fd, label=name, marker="o", markersize=3)
    for ax, xlabel in zip(axes, ("training seconds", "real images seen")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("FD (evaluator features, lower is better)")
        ax.set_yscale("log")
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("Fashion-MNIST: time to quality (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
