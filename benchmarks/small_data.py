"""Small data: Fashion-MNIST limited to 2,000 training images, with and without augmentation, equal wall clock.

Variants: no augmentation, DiffAugment (color, translation, cutout on everything D sees, p = 1) and
ADA (the same transforms with p adapted toward r_t = 0.6), each on the DCGAN and the SN-GAN ResNet
networks. Every run trains for the same number of seconds (`--jobs` runs side by side with one thread
each, so whatever else the machine does slows them alike) and ends with one evaluation against the
full held-out test split by the evaluator network trained on the full training split: FD, KID,
precision, recall, coverage. The leakage statistics of `ganstab.metrics.leakage` are computed on
2,000 generated images of each run and compared with their range over ten disjoint subsets of
1,000 real test images and with 2,000 real images put through the transform each statistic exposes
(p = 1): a run leaks when a statistic lies above the real range's top by more than a quarter of the
way to the augmented value (`ganstab.metrics.leakage.leak_thresholds`).

Published for comparison (CIFAR-10 with 10 % of the data, Zhao et al. 2020; not comparable with these
numbers, which come from ganstab's own evaluator on Fashion-MNIST): BigGAN FID 39.78 -> 22.40 with
DiffAugment; StyleGAN2 36.02 -> 14.50.

Usage: python benchmarks/small_data.py [--budget 600] [--seeds 3] [--jobs 2] [--quick] [--collect]
(--collect skips training and re-reads the run folders of an earlier run of the same arguments).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

from ganstab.data import make_dataset
from ganstab.export import load_generator
from ganstab.metrics import RunEvaluator
from ganstab.augment import augment
from ganstab.metrics.leakage import EXPOSES, leak_thresholds, leakage_range, leakage_statistics, leaks
from ganstab.pipeline import load_config
from ganstab.sampling import generate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (add_summary, final_record, machine, mean_se_text as mean_se, output_stem, run_jobs,  # noqa: E402
                    summary_stats, write_results)

COMMON = ["data.name=fashion-mnist", "data.limit=2000", "loss.kind=hinge", "model.d_norm=spectral",
          "model.g_norm=batch", "optim.g_lr=2e-4", "optim.d_lr=2e-4", "optim.g_betas=[0,0.9]",
          "optim.d_betas=[0,0.9]", "train.ema=10000", "train.batch_size=64", "model.latent_dim=100"]
NETWORKS = {"dcgan": ["model.arch=dcgan", "model.width=32"], "resnet": ["model.arch=resnet", "model.width=32"]}
AUGMENT = {"none": [], "diffaugment": ["augment.policy=color,translation,cutout"],
           "ada": ["augment.policy=color,translation,cutout", "augment.ada_target=0.6", "augment.ada_interval=256",
                   "augment.ada_speed_images=100000"]}
KEYS = ("fd", "kid", "precision", "recall", "coverage")
LEAKS = ("border_rows", "constant_squares", "dark_offset")
PUBLISHED = ("Published, CIFAR-10 at 10 % of the data (Zhao et al. 2020): BigGAN FID 39.78 -> 22.40 with "
             "DiffAugment, StyleGAN2 36.02 -> 14.50; ADA: StyleGAN2 3.78 -> 2.31 on full CIFAR-10 (StudioGAN's table).")


def overrides(net: str, aug: str, seed: int, budget: float, out: Path) -> list[str]:
    """The config of one run."""
    return [*COMMON, *NETWORKS[net], *AUGMENT[aug], f"seed={seed}", f"out={out}", "train.steps=100000000",
            f"train.time_budget={budget}", "eval.n=5000", "eval.every=0", "train.threads=1", "log.progress=false",
            "log.sample_every=100000000", "log.checkpoint_every=5000"]


def leak_of(run: Path, n: int = 2000) -> dict[str, float]:
    """Leakage statistics of n samples of a run's exported generator."""
    generator, meta = load_generator(run)
    z = torch.randn(n, int(meta["model"]["latent_dim"]), generator=torch.Generator().manual_seed(7))
    return leakage_statistics(generate(generator, z))


def train_all(jobs: list[tuple[str, str, int]], args: argparse.Namespace, root: Path) -> None:
    """Train the runs `args.jobs` at a time, each in root/<net>-<aug>/seed<k> with its log beside it."""
    commands = [((net, aug, seed),
                 [sys.executable, "-m", "ganstab", "train", "--overwrite",
                  *overrides(net, aug, seed, args.budget, root / f"{net}-{aug}" / f"seed{seed}")],
                 root / f"{net}-{aug}-seed{seed}.log") for net, aug, seed in jobs]
    run_jobs(commands, args.jobs, lambda key, code: print(
        f"  {key}: " + ("done" if code == 0 else f"failed (exit {code})"), flush=True))


def collect(jobs: list[tuple[str, str, int]], root: Path, thresholds: dict) -> dict[tuple, dict]:
    """Each finished run's G steps, final evaluation, leakage statistics and leaked statistics."""
    results = {}
    for net, aug, seed in jobs:
        out = root / f"{net}-{aug}" / f"seed{seed}"
        record = final_record(out, KEYS)
        if record is None:
            print(f"  {(net, aug, seed)}: no finished run in {out}", flush=True)
            continue
        leak = leak_of(out)
        results[(net, aug, seed)] = {"step": record["step"], **{k: record[k] for k in KEYS}, **leak,
                                     "leaked": leaks(leak, thresholds)}
        print(f"  {(net, aug, seed)}: " + ", ".join(f"{k}={v:.4g}" for k, v in results[(net, aug, seed)].items()
                                                   if isinstance(v, float)), flush=True)
    return results


def real_references(real) -> tuple[dict, dict, dict]:
    """The leakage range of ten subsets of 1,000 real test images, each statistic on 2,000 reals put
    through its own transform alone (p = 1), and the thresholds of a leak."""
    images = real.reference("test", 10000, val_n=0)  # the whole test split: a range, no selection on it
    real_range = leakage_range(images, parts=10)
    augmented = {name: leakage_statistics(augment(images[:2000], (transform,), torch.Generator().manual_seed(11),
                                                  1.0))[name] for name, transform in EXPOSES.items()}
    return real_range, augmented, leak_thresholds(real_range, augmented)


def summarise(payload: dict) -> dict:
    """Per `network/augmentation`: mean, s.e. and n over the stored seeds of G steps, each metric and each leak
    statistic, and each leak statistic's largest value."""
    groups: dict[str, list[dict]] = {}
    for key, run in payload["runs"].items():
        groups.setdefault(key.rsplit("/", 1)[0], []).append(run)
    return {arm: {**{key: summary_stats([r[key] for r in runs]) for key in ("step", *KEYS, *LEAKS)},
                  "max": {key: max(r[key] for r in runs) for key in LEAKS}} for arm, runs in groups.items()}


def main() -> None:
    """Parse arguments, train every run, write results/small_data[-quick].md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="20 s, 1 seed, DCGAN only (a smoke run)")
    parser.add_argument("--collect", action="store_true", help="skip training: re-read the run folders")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored result file from its rows")
    args = parser.parse_args()
    if args.summarise:
        add_summary(output_stem("small_data", "quick" if args.quick else ""), summarise)
        return
    nets = ["dcgan", "resnet"]
    if args.quick:
        args.budget, args.seeds, nets = 20.0, 1, ["dcgan"]
    stem = output_stem("small_data", "quick" if args.quick else "")
    root = HERE / "runs" / stem
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cfg = load_config(overrides=[*COMMON, "out=/tmp/unused"])
    real = make_dataset(cfg.data, 0)
    RunEvaluator(real, 100, torch.device("cpu"), cfg.eval.cache_dir, cfg.eval.evaluator_epochs)  # trained once here
    real_range, augmented, thresholds = real_references(real)
    jobs = [(net, aug, seed) for seed in range(args.seeds) for net in nets for aug in AUGMENT]
    if not args.collect:
        train_all(jobs, args, root)
    results = collect(jobs, root, thresholds)
    command = (f"python benchmarks/small_data.py --budget {args.budget:g} --seeds {args.seeds} --jobs {args.jobs}"
               f"{' --quick' if args.quick else ''}")
    lines = [f"# Small data: Fashion-MNIST, 2,000 training images ({args.budget:.0f} s per run, {args.seeds} seeds)", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; `{command}` "
             + (f"(the table re-read from its run folders with `--collect`, {(time.perf_counter() - started) / 60:.1f}"
                " min)" if args.collect else f"took {(time.perf_counter() - started) / 60:.1f} min") + ".", "",
             "| networks | augmentation | G steps | " + " | ".join(KEYS + LEAKS) + " | runs leaking |",
             "|---|---|---|" + "---|" * (len(KEYS) + len(LEAKS) + 1)]
    for net in nets:
        for aug in AUGMENT:
            rows = [results[(net, aug, s)] for s in range(args.seeds) if (net, aug, s) in results]
            cells = [mean_se([r[k] for r in rows]) for k in ("step", *KEYS, *LEAKS)]
            leaking = sum(bool(r["leaked"]) for r in rows)
            lines.append(f"| {net} | {aug} | " + " | ".join(cells) + f" | {leaking} of {len(rows)} |")
    lines += ["", "Leakage: real test images, range over 10 subsets of 1,000: "
              + ", ".join(f"{k} {lo:.4g}-{hi:.4g}" for k, (lo, hi) in real_range.items())
              + "; 2,000 real images through the statistic's own transform (p = 1): "
              + ", ".join(f"{k} {augmented[k]:.4g} ({EXPOSES[k]})" for k in LEAKS)
              + ". A run leaks when a statistic of 2,000 of its samples exceeds the real top plus a quarter of the "
              "way to the augmented value: " + ", ".join(f"{k} > {v:.4g}" for k, v in thresholds.items()) + ".",
              "", PUBLISHED]
    text = "\n".join(lines)
    write_results(stem, text, {"args": vars(args), "machine": machine(), "real_leakage_range": real_range,
                               "augmented_real_leakage": augmented, "leak_thresholds": thresholds,
                               "runs": {"/".join(map(str, k)): v for k, v in results.items()}})
    add_summary(output_stem("small_data", "quick" if args.quick else ""), summarise)
    print(text)


if __name__ == "__main__":
    main()
