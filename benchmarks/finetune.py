"""Fine-tuning on 100 images of one Fashion-MNIST class: from scratch, fine-tuned, and fine-tuned with FreezeD.

A source run trains the `small-data` recipe (DCGAN width 32, hinge, spectral norm in D, EMA) on the whole
Fashion-MNIST training split for `--source-steps` G steps. Then three arms train on the same 100 training
images of one class (`--cls`, drawn with a fixed seed) for the same number of G steps (`--steps`, a step
budget, so that whatever else the machine does changes no result): `scratch` (the recipe from random
weights), `finetune` (`train.init_from` the source: G, D and G's EMA) and `freezed` (the same with
`model.freeze_d=1`, D's first convolution fixed; FreezeD, Mo et al. 2020). Each run is scored once by
the Fashion-MNIST evaluator network (the one every run on Fashion-MNIST uses) on 1,000 samples of its
EMA generator against the 1,000 *test* images of that class, which no arm saw and nothing selects on:
FD, KID, precision, recall, coverage; plus the FD of the 100 training images themselves against them
(what memorising the few-shot set would score).

Usage: python benchmarks/finetune.py [--seeds 3] [--steps 1500] [--source-steps 4000] [--cls 9] [--jobs 2]
[--quick] [--collect]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ganstab.data import make_dataset
from ganstab.export import load_generator
from ganstab.metrics import RunEvaluator
from ganstab.metrics.evaluator import evaluate_images, prepare_reference
from ganstab.pipeline import load_config
from ganstab.sampling import generate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import add_summary, machine, mean_se_text as mean_se, output_stem, run_jobs, summary_stats, write_results  # noqa: E402

KEYS = ("fd", "kid", "precision", "recall", "coverage")
ARMS = {"scratch": [], "finetune": ["train.init_from={source}"],
        "freezed": ["train.init_from={source}", "model.freeze_d=1"]}
QUIET = ["log.progress=false", "log.sample_every=100000000", "train.threads=1", "eval.every=0", "eval.final=false"]


def few_shot_set(cls: int, n: int, path: Path) -> torch.Tensor:
    """n training images of class `cls` (seed 0), written as an npz of uint8 images; returns them in [-1, 1]."""
    data = make_dataset(load_config(preset="small-data", overrides=["out=/tmp/unused"]).data, 0)
    index = torch.nonzero(data.labels == cls).flatten()
    chosen = index[torch.randperm(len(index), generator=torch.Generator().manual_seed(0))[:n]]
    images = data.train[chosen]
    pixels = ((images[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    np.savez(path, x=pixels)
    return torch.from_numpy(pixels).float().div(127.5).sub(1).unsqueeze(1)


def commands(args: argparse.Namespace, root: Path, few: Path) -> tuple[list, list]:
    """The source run's command, then one command per (arm, seed)."""
    source = root / "source"
    source_cmd = [("source", [sys.executable, "-m", "ganstab", "train", "--preset", "small-data", "--overwrite",
                              f"out={source}", f"train.steps={args.source_steps}", "seed=100", *QUIET,
                              "log.checkpoint_every=1000"], root / "source.log")]
    arms = []
    for seed in range(args.seeds):
        for arm, extra in ARMS.items():
            out = root / arm / f"seed{seed}"
            arms.append(((arm, seed), [sys.executable, "-m", "ganstab", "train", "--preset", "small-data", "--overwrite",
                                       "data.name=npz", f"data.path={few}", f"out={out}", f"train.steps={args.steps}",
                                       f"seed={seed}", *QUIET, f"log.checkpoint_every={args.steps}",
                                       *[e.format(source=source) for e in extra]], root / f"{arm}-seed{seed}.log"))
    return source_cmd, arms


def score(run: Path, evaluator, reference, n: int = 1000) -> dict[str, float]:
    """Metrics of n samples of a run's exported generator against the held-out images of the class."""
    generator, meta = load_generator(run)
    z = torch.randn(n, int(meta["model"]["latent_dim"]), generator=torch.Generator().manual_seed(7))
    fakes = generate(generator, z)
    return evaluate_images(evaluator, reference, fakes, metrics=list(KEYS), kid_subsets=20, kid_subset_size=500)


def summarise(payload: dict) -> dict:
    """Per arm and metric: mean, standard error and count over the seeds of the stored `runs` (key `arm/seed`)."""
    return {arm: {key: summary_stats([run[key] for name, run in payload["runs"].items()
                                      if name.split("/")[0] == arm]) for key in KEYS} for arm in ARMS}


def main() -> None:
    """Train the source and the arms, score them, write results/finetune[-quick].md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--source-steps", type=int, default=4000)
    parser.add_argument("--cls", type=int, default=9)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 seed, 40 + 20 steps (a smoke run)")
    parser.add_argument("--collect", action="store_true", help="skip training: re-read the run folders")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored results/finetune[-quick].json")
    args = parser.parse_args()
    if args.summarise:
        add_summary(output_stem("finetune", "quick" if args.quick else ""), summarise)
        return
    if args.quick:
        args.seeds, args.steps, args.source_steps = 1, 20, 40
    stem = output_stem("finetune", "quick" if args.quick else "")
    root = HERE / "runs" / stem
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    few = root / f"class{args.cls}-100.npz"
    few_images = few_shot_set(args.cls, 100, few)
    cfg = load_config(preset="small-data", overrides=["out=/tmp/unused"])
    data = make_dataset(cfg.data, 0)
    run_eval = RunEvaluator(data, 100, torch.device("cpu"), cfg.eval.cache_dir, cfg.eval.evaluator_epochs,
                            evaluator_images=cfg.eval.evaluator_images)
    _, _, test, test_labels = data.evaluator_data()
    held_out = test[test_labels == args.cls]
    reference = prepare_reference(run_eval.evaluator, held_out)
    memorised = evaluate_images(run_eval.evaluator, reference, few_images, metrics=["fd"])["fd"]
    source_cmd, arm_cmds = commands(args, root, few)
    report = lambda key, code: print(f"  {key}: " + ("done" if code == 0 else f"failed (exit {code})"), flush=True)
    if not args.collect:
        run_jobs(source_cmd, 1, report)
        run_jobs(arm_cmds, args.jobs, report)
    results = {}
    for (arm, seed), _, _ in arm_cmds:
        out = root / arm / f"seed{seed}"
        if not (out / "generator.json").is_file():
            print(f"  {(arm, seed)}: no finished run in {out}", flush=True)
            continue
        results[(arm, seed)] = score(out, run_eval.evaluator, reference)
        print(f"  {(arm, seed)}: " + ", ".join(f"{k}={v:.4g}" for k, v in results[(arm, seed)].items()), flush=True)
    source_scores = score(root / "source", run_eval.evaluator, reference) if (root / "source" / "generator.json").is_file() else {}
    command = (f"python benchmarks/finetune.py --seeds {args.seeds} --steps {args.steps} --source-steps "
               f"{args.source_steps} --cls {args.cls} --jobs {args.jobs}{' --quick' if args.quick else ''}")
    lines = [f"# Fine-tuning on 100 images of Fashion-MNIST class {args.cls} ({args.steps} G steps per arm, "
             f"{args.seeds} seeds)", "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}; `{command}` "
             f"took {(time.perf_counter() - started) / 60:.1f} min. Source: `small-data` on the whole training split, "
             f"{args.source_steps} G steps. Scored on 1,000 samples against the {len(held_out)} test images of the "
             f"class (evaluator test accuracy {run_eval.test_accuracy:.3f}).", "",
             "| arm | " + " | ".join(KEYS) + " |", "|---|" + "---|" * len(KEYS)]
    for arm in ARMS:
        rows = [results[(arm, s)] for s in range(args.seeds) if (arm, s) in results]
        lines.append(f"| {arm} | " + " | ".join(mean_se([r[k] for r in rows]) for k in KEYS) + " |")
    if source_scores:
        lines.append("| source (no fine-tuning, all classes) | " + " | ".join(f"{source_scores[k]:.4g}" for k in KEYS) + " |")
    lines += ["", f"The 100 training images themselves score FD {memorised:.4g} against the held-out class images."]
    text = "\n".join(lines)
    write_results(stem, text, {"args": vars(args), "machine": machine(), "memorised_fd": memorised,
                               "source": source_scores, "evaluator_accuracy": run_eval.test_accuracy,
                               "runs": {"/".join(map(str, k)): v for k, v in results.items()}})
    add_summary(stem, summarise)
    print(text)


if __name__ == "__main__":
    main()
