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

Every configuration is an ARM: a preset plus overrides (`--arms NAME=PRESET[,KEY=VALUE...]`; a bare preset name
is an arm of that name). `--regularise-best` adds, once the arms' runs are in, LeCam and bCR/zCR arms on the
best of them (most mean modes, then lower mean reverse KL) with the papers' weights (REGULARISER_ARMS), never
weights fitted to these numbers. Runs are `ganstab train` processes, `--jobs` side by side with one thread each.
A finished run (its exported generator and its final test line exist) is read back, not re-trained, and its
mode count is cached beside it (`<arm>/seed<k>.modes.json`), so a killed sitting loses only the runs in flight.

Usage: python benchmarks/stacked.py [--arms dcgan hinge-sn fashion-10min r3gan NAME=PRESET,KEY=VALUE ...]
       [--regularise-best] [--budget 600] [--seeds 3] [--jobs 2] [--n 26000] [--quick] [--floor-only]
       [--tag TAG] [--set KEY=VALUE ...]
Outputs: benchmarks/results/stacked[-TAG].md and .json (`--quick`: stacked-quick.*; `--floor-only`:
stacked-floor.*), the JSON keyed by arm: arms/<name>/summary/modes/mean and so on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ganstab.data import make_dataset
from ganstab.errors import ConfigError
from ganstab.data.stacked import STACK_CHANNELS, stack_channels
from ganstab.export import load_generator
from ganstab.metrics import RunEvaluator, StackedEvaluator, stacked_modes
from ganstab.pipeline import load_config
from ganstab.presets import PRESETS as SHIPPED_PRESETS
from ganstab.sampling import generate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (final_record, finished, git_commit, machine, mean_se_text, output_stem, run_jobs,  # noqa: E402
                    summary_stats, write_results)

DATA = "stacked-fashion-mnist"
PRESETS = ("dcgan", "hinge-sn", "fashion-10min", "r3gan")
#: The regularisers added as arms on the best arm, at the weights their papers use (the config's descriptions):
#: LeCam lambda 0.3 with EMA decay 0.99 (Tseng et al. 2021, CIFAR-10); bCR 10 on reals and fakes, zCR 5 for D and
#: 0.5 for G with sigma 0.03 (Zhao et al. 2020, "Improved consistency regularization"), bCR's T = translation.
REGULARISER_ARMS = {"lecam": ("penalty.lecam=0.3",),
                    "bcr-zcr": ("penalty.bcr_real=10", "penalty.bcr_fake=10", "penalty.zcr=5", "penalty.zcr_gen=0.5")}
#: An arm's name: a folder name and a JSON Pointer key without escapes
ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
#: Seed of the real stacked draw behind the floor, and of the generators' latents
FLOOR_SEED, SAMPLE_SEED = 1, 2


COLUMNS = ("step", "modes", "reverse_kl", "fd", "eval_modes")


def stacked_evaluator(overrides: Sequence[str]) -> tuple[RunEvaluator, Any]:
    """The evaluator every run of this benchmark uses (the shipped one of the 1-channel data when it matches, else
    trained once or loaded from the cache) and the data."""
    cfg = load_config(overrides=[f"data.name={DATA}", "out=/tmp/unused", *overrides])
    source = make_dataset(cfg.data, cfg.seed)
    scorer = RunEvaluator(source, 100, torch.device("cpu"), cfg.eval.cache_dir, cfg.eval.evaluator_epochs,
                          echo=lambda message: print(f"  {message}", flush=True),
                          evaluator_images=cfg.eval.evaluator_images, evaluator=cfg.eval.evaluator)
    assert isinstance(scorer.evaluator, StackedEvaluator)
    return scorer, source


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


def parse_arm(text: str) -> tuple[str, str, tuple[str, ...]]:
    """'NAME=PRESET[,KEY=VALUE...]' (or a bare preset name) -> (name, preset, overrides); ValueError naming the fix."""
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = text, text
    preset, comma, tail = rest.partition(",")
    overrides = re.split(r",(?=[A-Za-z_][A-Za-z0-9_.]*=)", tail) if comma else []
    if not ARM_NAME.fullmatch(name):
        raise ValueError(f"--arms {text}: the name {name!r} must be letters, digits and _.+- (it names a folder); "
                         "write NAME=PRESET[,KEY=VALUE...]")
    if preset not in SHIPPED_PRESETS:
        raise ValueError(f"--arms {text}: {preset!r} is not a preset; use one of {', '.join(SHIPPED_PRESETS)}")
    bad = [o for o in overrides if "=" not in o or not o.partition("=")[2]]
    if bad:
        raise ValueError(f"--arms {text}: {bad[0]!r} is not KEY=VALUE; write NAME=PRESET,KEY=VALUE,...")
    try:
        load_config(preset=preset, overrides=[f"data.name={DATA}", "out=/tmp/unused", *overrides])
    except ConfigError as error:
        raise ValueError(f"--arms {text}: {error}") from None
    return name, preset, tuple(overrides)


def parse_arms(texts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The arms of `--arms`, by name, in the order given: {name: {"preset", "overrides"}}; ValueError on a repeat."""
    arms: dict[str, dict[str, Any]] = {}
    for text in texts:
        name, preset, overrides = parse_arm(text)
        if name in arms:
            raise ValueError(f"--arms: the name {name!r} is given twice; give each arm its own name")
        arms[name] = {"preset": preset, "overrides": list(overrides)}
    return arms


def best_arm(summary: dict[str, dict[str, Any]]) -> Optional[str]:
    """The arm with the most mean modes, ties to the lower mean reverse KL (None when no arm has a finished run)."""
    scored = [name for name, s in summary.items() if s.get("modes") and s.get("reverse_kl")]
    if not scored:
        return None
    return min(scored, key=lambda name: (-summary[name]["modes"]["mean"], summary[name]["reverse_kl"]["mean"]))


def regulariser_arms(name: str, arm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The arms `<name>+lecam` and `<name>+bcr-zcr`: the arm with each regulariser at its paper's weights added."""
    return {f"{name}+{extra}": {"preset": arm["preset"], "overrides": [*arm["overrides"], *values]}
            for extra, values in REGULARISER_ARMS.items()}


def run_overrides(seed: int, budget: float, run_dir: Path, overrides: Sequence[str]) -> list[str]:
    """What every run shares: the stacked data, seed, the clock, one thread, no intermediate evaluation."""
    return [f"data.name={DATA}", f"seed={seed}", f"out={run_dir}", "train.steps=100000000",
            f"train.time_budget={budget:g}", "train.threads=1", "eval.every=0", "log.progress=false",
            "log.sample_every=100000000", "log.checkpoint_every=100000", *overrides]


def train_command(arm: dict[str, Any], seed: int, budget: float, run_dir: Path, overrides: Sequence[str]) -> list[str]:
    """The `ganstab train` command of one run: the arm's preset, the shared settings, the arm's then `--set` overrides."""
    return [sys.executable, "-m", "ganstab", "train", "--overwrite", "--preset", arm["preset"],
            *run_overrides(seed, budget, run_dir, [*arm["overrides"], *overrides])]


def run_arms(arms: dict[str, dict[str, Any]], seeds: int, budget: float, out: Path, overrides: Sequence[str],
             jobs: int) -> int:
    """Train every arm x seed whose run is not finished, `jobs` at a time; how many were started."""
    todo = [((name, seed), train_command(arm, seed, budget, out / name / f"seed{seed}", overrides),
             out / name / f"seed{seed}.log")
            for seed in range(seeds) for name, arm in arms.items() if not finished(out / name / f"seed{seed}")]
    for (name, _seed), _command, log in todo:
        log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{len(todo)} runs of {budget:g} s to train, {jobs} at a time", flush=True)
    run_jobs(todo, jobs, lambda key, code: print(f"  {key[0]} seed {key[1]}: " + (
        "done" if code == 0 else f"failed (exit {code}; see {out / key[0] / f'seed{key[1]}.log'})"), flush=True))
    return len(todo)


def read_run(run_dir: Path, evaluator: StackedEvaluator, features: str, n: int) -> Optional[dict[str, Any]]:
    """A finished run's row: its final test line and its mode count over n samples (read from the cache beside the
    run when it was counted with the same n, latents and evaluator, else counted and cached); None if unfinished."""
    record = final_record(run_dir, keys=("fd", "modes", "reverse_kl"))
    if record is None:
        return None
    cache = run_dir.parent / f"{run_dir.name}.modes.json"
    key = {"n": n, "sample_seed": SAMPLE_SEED, "eval_features": features}
    stored = json.loads(cache.read_text(encoding="utf-8")) if cache.is_file() else {}
    if {k: stored.get(k) for k in key} != key:
        stored = {**key, **count_modes(run_dir, evaluator, n)}
        cache.write_text(json.dumps(stored), encoding="utf-8")
    return {"step": record["step"], "modes": stored["modes"], "reverse_kl": stored["reverse_kl"],
            "fd": record["fd"], "eval_modes": record["modes"], "run_eval_features": record["eval_features"],
            "verdict": record["verdict"], "errors": record["errors"]}


def collect(arms: dict[str, dict[str, Any]], seeds: int, out: Path, evaluator: StackedEvaluator, features: str,
            n: int) -> dict[str, dict[str, Any]]:
    """Per arm: its preset, overrides, finished runs by seed ("seed0" ...) and mean/s.e./n of each column."""
    result = {}
    for name, arm in arms.items():
        runs = {}
        for seed in range(seeds):
            row = read_run(out / name / f"seed{seed}", evaluator, features, n)
            if row is not None:
                runs[f"seed{seed}"] = row
        result[name] = {**arm, "runs": runs,
                        "summary": {k: summary_stats([r[k] for r in runs.values()]) for k in COLUMNS}}
    return result


def count_modes(run_dir: Path, evaluator: StackedEvaluator, n: int) -> dict[str, float]:
    """Modes and reverse KL of n samples of a run's exported generator (latents seeded by SAMPLE_SEED)."""
    generator, meta = load_generator(run_dir)
    z = torch.randn(n, int(meta["model"]["latent_dim"]), generator=torch.Generator().manual_seed(SAMPLE_SEED))
    return evaluator.mode_scores(generate(generator, z, **meta.get("g_kwargs", {})))


def report(arms: dict[str, dict[str, Any]], found: dict[str, Any], args: argparse.Namespace, command: str,
           seconds: float, features: str, best: Optional[str]) -> str:
    """The markdown text: the floor, then one line per arm (mean ± s.e. over its finished seeds)."""
    info = machine()
    labels, predicted = found["labels"], found["evaluator"]
    title = ("the floor" if args.floor_only else
             f"modes of 1,000 captured ({args.budget:g} s per run, {args.seeds} seed(s))")
    lines = [f"# Stacked Fashion-MNIST: {title}", "",
             f"- Command: `{command}`",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
             f"{seconds / 60:.1f} min" + ("" if args.floor_only else " (finished runs of earlier sittings re-read)"),
             f"- Machine: {info['cpu']}, {info['cores']} logical cores, torch {info['torch']}, Python {info['python']}; "
             + ("" if args.floor_only else f"{args.jobs} run(s) side by side, one thread each; ")
             + f"commit {git_commit()}",
             f"- Modes counted over {args.n:,} samples per run; reverse KL = KL(p_model || uniform over 1,000); "
             f"evaluator `{features}`, 1-channel Fashion-MNIST test accuracy {found['evaluator_accuracy']:.4f}",
             "", f"## Floor: {found['n']:,} real stacked test images", "",
             f"- by their true labels: {labels['modes']} modes, reverse KL {labels['reverse_kl']:.4f}",
             f"- by the evaluator: {predicted['modes']} modes, reverse KL {predicted['reverse_kl']:.4f}; it "
             f"classifies all three channels right on {found['triple_accuracy']:.1%} of them"]
    if args.floor_only:
        return "\n".join(lines)
    lines += ["", "## Generators", "",
              "| arm | preset + overrides | runs | G steps | modes | reverse KL | final eval_fd | final eval_modes |",
              "|---|---|---|---|---|---|---|---|"]
    for name, arm in arms.items():
        runs = list(arm["runs"].values())
        cells = [mean_se_text([r[key] for r in runs]) for key in COLUMNS]
        recipe = " ".join([arm["preset"], *arm["overrides"]])
        lines.append(f"| {name} | `{recipe}` | {len(runs)} of {args.seeds} | " + " | ".join(cells) + " |")
    if best is not None:
        lines += ["", f"Best arm (most mean modes, then lower reverse KL): {best}."]
    lines += ["", "Per run:", ""]
    lines += [f"- {name} {seed}: {r['step']} G steps, {r['modes']} modes, reverse KL {r['reverse_kl']:.4f}, verdict "
              f"{r['verdict']}" for name, arm in arms.items() for seed, r in arm["runs"].items()]
    lines += ["", "`final eval_modes` is the run's own final test evaluation (eval.n samples, fewer than 1,000 per "
              "mode can leave modes empty by chance); `modes` is the count over the samples above."]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the floor, train every unfinished arm x seed, count their modes; write results/stacked[-tag].md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=None, metavar="NAME=PRESET[,KEY=VALUE...]",
                        help=f"the arms (a bare preset name is an arm of that name; default {' '.join(PRESETS)})")
    parser.add_argument("--presets", nargs="+", default=None, help="the arms as bare preset names (as --arms)")
    parser.add_argument("--regularise-best", action="store_true",
                        help="then add LeCam and bCR/zCR arms (papers' weights) on the best arm and train them")
    parser.add_argument("--budget", type=float, default=None, help="seconds of training per run (default 600)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 3)")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, one thread each (default 1)")
    parser.add_argument("--n", type=int, default=None, help="samples whose modes are counted (default 26,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: defaults 5 s, 1 seed, 2,600 samples, "
                                                             "2,000 stacked training images, eval.n=500")
    parser.add_argument("--floor-only", action="store_true", help="print the floor and stop (no training)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run and the evaluator (e.g. eval.cache_dir=DIR)")
    parser.add_argument("--out", default=None, help="folder of the run folders (default benchmarks/runs/<stem>)")
    parser.add_argument("--tag", default="", help="suffix of the output files (stacked-<tag>.md ...)")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    defaults = (5.0, 1, 2_600) if args.quick else (600.0, 3, 26_000)
    args.budget, args.seeds, args.n = (given if given is not None else default
                                       for given, default in zip((args.budget, args.seeds, args.n), defaults))
    if args.quick:
        overrides = ["data.limit=2000", "eval.n=500", *overrides]
    if args.n < 1 or args.seeds < 1 or args.budget <= 0 or args.jobs < 1:
        print("stacked.py: --n, --seeds and --jobs must be at least 1 and --budget positive", file=sys.stderr)
        return 2
    try:
        arms = parse_arms([*(args.arms or []), *(args.presets or [])] or PRESETS)
    except ValueError as error:
        print(f"stacked.py: {error}", file=sys.stderr)
        return 2
    tag = args.tag or ("floor" if args.floor_only else "quick" if args.quick else "")
    stem = output_stem("stacked", tag)
    out = Path(args.out) if args.out else HERE / "runs" / stem
    started = time.perf_counter()
    print(f"evaluator of the 1-channel data ({DATA})", flush=True)
    scorer, source = stacked_evaluator(overrides)
    evaluator, features = scorer.evaluator, scorer.features_name("test")
    found = floor(evaluator, source, args.n)
    del source
    print(f"floor on {args.n:,} real stacked test images: true labels {found['labels']['modes']} modes, reverse KL "
          f"{found['labels']['reverse_kl']:.4f}; evaluator {found['evaluator']['modes']} modes, reverse KL "
          f"{found['evaluator']['reverse_kl']:.4f} ({features}, 1-channel test accuracy "
          f"{found['evaluator_accuracy']:.4f}; all three channels right on {found['triple_accuracy']:.1%})", flush=True)
    best = None
    results: dict[str, dict[str, Any]] = {}
    if not args.floor_only:
        run_arms(arms, args.seeds, args.budget, out, overrides, args.jobs)
        results = collect(arms, args.seeds, out, evaluator, features, args.n)
        best = best_arm({name: arm["summary"] for name, arm in results.items()})
        if args.regularise_best and best is not None:
            extra = {k: v for k, v in regulariser_arms(best, arms[best]).items() if k not in arms}
            print(f"best arm {best}: adding {', '.join(extra)}", flush=True)
            run_arms(extra, args.seeds, args.budget, out, overrides, args.jobs)
            results.update(collect(extra, args.seeds, out, evaluator, features, args.n))
    command = "python benchmarks/stacked.py" + (" --floor-only" if args.floor_only else "") + \
        (" --quick" if args.quick else "") + f" --n {args.n}"
    if not args.floor_only:
        command += (f" --budget {args.budget:g} --seeds {args.seeds} --jobs {args.jobs} --arms "
                    + " ".join(",".join([f"{name}={arm['preset']}", *arm["overrides"]]) for name, arm in arms.items())
                    + (" --regularise-best" if args.regularise_best else ""))
    command += (f" --set {' '.join(args.overrides)}" if args.overrides else "") + (f" --tag {args.tag}" if args.tag else "")
    text = report(results, found, args, command, time.perf_counter() - started, features, best)
    print(text)
    write_results(stem, text, {
        "command": command, "machine": machine(), "commit": git_commit(),
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", "eval_features": features,
        "floor": found, "budget": args.budget, "seeds": args.seeds, "n": args.n, "jobs": args.jobs, "best": best,
        "arms": results})
    rows = [r for arm in results.values() for r in arm["runs"].values()]
    complete = all(len(arm["runs"]) == args.seeds for arm in results.values())
    return 0 if complete and all(math.isfinite(r["reverse_kl"]) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
