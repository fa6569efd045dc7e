"""Mode collapse on images: Stacked Fashion-MNIST, 1,000 modes (the StackedMNIST protocol).

After Metz et al. 2017, VEEGAN, PacGAN and R3GAN, with Fashion-MNIST in place of the digits:
three independently drawn Fashion-MNIST images are the three channels of one image, and each
class triple is a mode. Every preset is trained on `data.name=stacked-fashion-mnist` (3 channels)
for a time budget and several seeds; then `--n` samples (26,000 in the protocol) of its exported
generator are classified channel by channel by ganstab's evaluator network of the 1-channel data,
and the script reports the modes captured (distinct triples) and the reverse KL
KL(p_model || uniform) = sum_k p_k log(1000 p_k) of the triple histogram, the direction PacGAN
and VEEGAN report (the evaluation code of that line, e.g. a `KLD(p, q)` that refuses a zero in
the uniform q and skips the empty modes of p, computes the same), as mean ± s.e. over seeds.

Before any training it prints the floor: the same count on `--n` REAL stacked images drawn from
the test split, once by their true labels (what sampling alone allows) and once by the evaluator
(what its classification errors allow). A generator cannot be expected to do better than that.
Published StackedMNIST numbers are for digits and are not comparable.

Usage: python benchmarks/stacked.py [--presets dcgan hinge-sn fashion-10min] [--budget 600] [--seeds 3]
       [--n 26000] [--quick] [--tag TAG] [--set KEY=VALUE ...]
Outputs: benchmarks/results/stacked[-TAG].md and .json (`--quick`: stacked-quick.*).
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ganstab.data import make_dataset
from ganstab.data.stacked import STACK_CHANNELS, stack_channels
from ganstab.export import load_generator
from ganstab.metrics import RunEvaluator, StackedEvaluator, stacked_modes
from ganstab.pipeline import load_config
from ganstab.sampling import generate
from ganstab.train import train

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import final_record, machine, mean_se_text, output_stem, write_results  # noqa: E402

DATA = "stacked-fashion-mnist"
PRESETS = ("dcgan", "hinge-sn", "fashion-10min")
#: Seed of the real stacked draw behind the floor, and of the generators' latents
FLOOR_SEED, SAMPLE_SEED = 1, 2


def stacked_evaluator(overrides: Sequence[str]) -> tuple[StackedEvaluator, Any]:
    """The evaluator every run of this benchmark uses (trained once, or loaded from the cache) and the data."""
    cfg = load_config(overrides=[f"data.name={DATA}", "out=/tmp/unused", *overrides])
    source = make_dataset(cfg.data, cfg.seed)
    scorer = RunEvaluator(source, 100, torch.device("cpu"), cfg.eval.cache_dir, cfg.eval.evaluator_epochs,
                          echo=lambda message: print(f"  {message}", flush=True),
                          evaluator_images=cfg.eval.evaluator_images)
    assert isinstance(scorer.evaluator, StackedEvaluator)
    return scorer.evaluator, source


def digits(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """(N,) triple labels -> (N, 3) per-channel classes (the first channel the most significant digit)."""
    powers = classes ** torch.arange(STACK_CHANNELS - 1, -1, -1)
    return (labels[:, None] // powers) % classes


def floor(evaluator: StackedEvaluator, source: Any, n: int) -> dict[str, Any]:
    """Modes and reverse KL of n real stacked test images, by their labels and by the evaluator, and the share
    of them whose three channels the evaluator all classifies right."""
    base = source.channel_source
    images, labels = stack_channels(base.test, base.test_labels, n, torch.Generator().manual_seed(FLOOR_SEED),
                                    classes=evaluator.classes)
    true_classes = digits(labels, evaluator.classes)
    predicted_classes = evaluator.channel_classes(images)
    return {"n": n, "labels": stacked_modes(true_classes, evaluator.classes),
            "evaluator": stacked_modes(predicted_classes, evaluator.classes),
            "evaluator_accuracy": evaluator.test_accuracy,
            "triple_accuracy": float((predicted_classes == true_classes).all(dim=1).double().mean())}


def run_preset(preset: str, seed: int, budget: float, out: Path, overrides: Sequence[str]) -> Path:
    """Train one preset on stacked Fashion-MNIST for `budget` seconds; its run folder."""
    run_dir = out / preset / f"seed{seed}"
    cfg = load_config(preset=preset, overrides=[
        f"data.name={DATA}", f"seed={seed}", f"out={run_dir}", "train.steps=100000000", f"train.time_budget={budget}",
        "eval.every=0", "log.progress=false", "log.sample_every=100000000", "log.checkpoint_every=100000", *overrides])
    train(cfg, overwrite=True, echo=lambda message: None)
    return run_dir


def count_modes(run_dir: Path, evaluator: StackedEvaluator, n: int) -> dict[str, float]:
    """Modes and reverse KL of n samples of a run's exported generator (latents seeded by SAMPLE_SEED)."""
    generator, meta = load_generator(run_dir)
    z = torch.randn(n, int(meta["model"]["latent_dim"]), generator=torch.Generator().manual_seed(SAMPLE_SEED))
    return evaluator.mode_scores(generate(generator, z, **meta.get("g_kwargs", {})))


def report(rows: list[dict], found: dict[str, Any], args: argparse.Namespace, command: str, seconds: float) -> str:
    """The markdown text: the floor, then one line per preset (mean ± s.e. over seeds)."""
    info = machine()
    labels, predicted = found["labels"], found["evaluator"]
    title = ("the floor" if args.floor_only else
             f"modes of 1,000 captured ({args.budget:g} s per run, {args.seeds} seed(s))")
    lines = [f"# Stacked Fashion-MNIST: {title}", "",
             f"- Command: `{command}`",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
             f"{seconds / 60:.1f} min" + ("" if args.floor_only else f" for {len(rows)} runs"),
             f"- Machine: {info['cpu']}, {info['cores']} logical cores, torch {info['torch']}, Python {info['python']}; "
             "one run at a time",
             f"- Modes counted over {args.n:,} samples per run; reverse KL = KL(p_model || uniform over 1,000); "
             f"evaluator (1-channel Fashion-MNIST) test accuracy {found['evaluator_accuracy']:.4f}",
             "", f"## Floor: {found['n']:,} real stacked test images", "",
             f"- by their true labels: {labels['modes']} modes, reverse KL {labels['reverse_kl']:.4f}",
             f"- by the evaluator: {predicted['modes']} modes, reverse KL {predicted['reverse_kl']:.4f}; it "
             f"classifies all three channels right on {found['triple_accuracy']:.1%} of them"]
    if args.floor_only:
        return "\n".join(lines)
    lines += ["", "## Generators", "",
             "| preset | G steps | modes | reverse KL | final eval_fd | final eval_modes |", "|---|---|---|---|---|---|"]
    for preset in args.presets:
        group = [r for r in rows if r["preset"] == preset]
        cells = [mean_se_text([r[key] for r in group]) for key in ("step", "modes", "reverse_kl", "fd", "eval_modes")]
        lines.append(f"| {preset} | " + " | ".join(cells) + " |")
    lines += ["", "Per run:", ""]
    lines += [f"- {r['preset']} seed {r['seed']}: {r['step']} G steps, {r['modes']} modes, reverse KL "
              f"{r['reverse_kl']:.4f}, verdict {r['verdict']}" for r in rows]
    lines += ["", "`final eval_modes` is the run's own final evaluation (eval.n samples, fewer than 1,000 per mode "
              "can leave modes empty by chance); `modes` is the count over the samples above."]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the floor, train every preset x seed, count their modes; write results/stacked[-tag].md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--budget", type=float, default=None, help="seconds of training per run (default 600)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per preset (default 3)")
    parser.add_argument("--n", type=int, default=None, help="samples whose modes are counted (default 26,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: defaults 5 s, 1 seed, 2,600 samples, "
                                                             "2,000 stacked training images, eval.n=500")
    parser.add_argument("--floor-only", action="store_true", help="print the floor and stop (no training)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run and the evaluator (e.g. eval.cache_dir=DIR)")
    parser.add_argument("--out", default=str(HERE / "runs" / "stacked"), help="folder of the run folders")
    parser.add_argument("--tag", default="", help="suffix of the output files (stacked-<tag>.md ...)")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    defaults = (5.0, 1, 2_600) if args.quick else (600.0, 3, 26_000)
    args.budget, args.seeds, args.n = (given if given is not None else default
                                       for given, default in zip((args.budget, args.seeds, args.n), defaults))
    if args.quick:
        overrides = ["data.limit=2000", "eval.n=500", *overrides]
    if args.n < 1 or args.seeds < 1 or args.budget <= 0:
        parser.error("--n and --seeds must be at least 1 and --budget positive")
    started = time.perf_counter()
    print(f"evaluator of the 1-channel data ({DATA})", flush=True)
    evaluator, source = stacked_evaluator(overrides)
    found = floor(evaluator, source, args.n)
    del source
    print(f"floor on {args.n:,} real stacked test images: true labels {found['labels']['modes']} modes, reverse KL "
          f"{found['labels']['reverse_kl']:.4f}; evaluator {found['evaluator']['modes']} modes, reverse KL "
          f"{found['evaluator']['reverse_kl']:.4f} (its 1-channel test accuracy {found['evaluator_accuracy']:.4f}; "
          f"all three channels right on {found['triple_accuracy']:.1%})",
          flush=True)
    rows: list[dict] = []
    presets = [] if args.floor_only else args.presets
    for preset in presets:
        for seed in range(args.seeds):
            run_dir = run_preset(preset, seed, args.budget, Path(args.out), overrides)
            record = final_record(run_dir, keys=("fd", "modes", "reverse_kl"))
            if record is None:
                raise SystemExit(f"{preset} seed {seed} did not finish; see {run_dir}")
            scores = count_modes(run_dir, evaluator, args.n)
            rows.append({"preset": preset, "seed": seed, "step": record["step"], "modes": scores["modes"],
                         "reverse_kl": scores["reverse_kl"], "fd": record["fd"], "eval_modes": record["modes"],
                         "verdict": record["verdict"], "errors": record["errors"]})
            print(f"{preset} seed {seed}: {record['step']} G steps, {scores['modes']} modes of 1,000, reverse KL "
                  f"{scores['reverse_kl']:.4f}", flush=True)
    if args.floor_only:
        command = f"python benchmarks/stacked.py --floor-only --n {args.n}"
    else:
        command = (f"python benchmarks/stacked.py{' --quick' if args.quick else ''} --budget {args.budget:g} "
                   f"--seeds {args.seeds} --n {args.n} --presets {' '.join(args.presets)}")
    command += (f" --set {' '.join(args.overrides)}" if args.overrides else "") + (f" --tag {args.tag}" if args.tag else "")
    text = report(rows, found, args, command, time.perf_counter() - started)
    print(text)
    tag = args.tag or ("quick" if args.quick else "")
    write_results(output_stem("stacked", tag), text, {"command": command, "machine": machine(), "floor": found,
                                                      "rows": rows, "budget": args.budget, "n": args.n})
    return 0 if all(math.isfinite(r["reverse_kl"]) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
