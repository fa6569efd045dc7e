"""A tuned recipe against every shipped image preset on Fashion-MNIST, at an equal wall-clock budget.

The tuned recipe is the `best.yaml` of a `ganstab tune` study (the command is in RESULTS.md); every
image preset is trained as shipped, with its own networks and settings, only its step count
replaced by the clock. Each run trains `--budget` seconds (`--jobs` runs side by side with one
thread each, so whatever else the machine does slows them alike), with fresh seeds 2000, 2001, ...
(never a seed of the study's trials or re-runs), and ends with one evaluation of 5,000 samples
against the held-out test split by ganstab's evaluator network: FD, KID, precision, recall and
coverage, as mean ± standard error over the seeds.

The table reads only each run's final TEST line (never a validation line: those are what the study
selected on) and records its `eval_features` (evaluator version and weights hash). Finished runs (an
exported generator and a final test line by the current evaluator) are kept, so the table can be filled
over several sittings, and a killed sitting loses only the runs in flight: `--only NAME ...` trains some
rows, `--collect` only re-reads the run folders. A run scored by another evaluator is re-trained, never
averaged with the others. The JSON keys runs and summary by configuration (runs/<name>/seed<k>).

Usage: python benchmarks/tune_fashion.py --best runs/tune-fashion/best.yaml [--budget 600] [--seeds 3]
       [--jobs 2] [--only tuned dcgan ...] [--collect] [--tag smoke]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ganstab.data import make_dataset
from ganstab.metrics import RunEvaluator
from ganstab.pipeline import load_config
from ganstab.presets import PRESETS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (EVAL_KEYS as KEYS, add_summary, summary_stats, final_record, git_commit, machine,  # noqa: E402
                    mean_se_text as mean_se, output_stem, run_jobs, write_results)

#: the shipped presets whose data are images (the others are 2-D point recipes); `fashion-10min` (the winner of the
#: evaluator-v2 study, selected on the test split) is one of them: the v3 study's winner is the "tuned" row
IMAGE_PRESETS = [name for name, preset in PRESETS.items() if preset.values.get("model", {}).get("arch") != "toy"]
SEED0 = 2000


def run_overrides(seed: int, budget: float, out: Path) -> list[str]:
    """What every run shares: Fashion-MNIST, the clock, one thread, one final evaluation of 5,000 samples."""
    return ["data.name=fashion-mnist", f"seed={seed}", f"out={out}", "train.steps=1000000000",
            f"train.time_budget={budget}", "eval.n=5000", "eval.every=0", "train.threads=1", "log.progress=false",
            "log.sample_every=1000000000", "log.checkpoint_every=5000"]


def command(name: str, best: Path, seed: int, budget: float, out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The `ganstab train` command of one run: the tuned config or a preset, the shared overrides, then `extra`."""
    source = ["--config", str(best)] if name == "tuned" else ["--preset", name]
    return [sys.executable, "-m", "ganstab", "train", "--overwrite", *source, *run_overrides(seed, budget, out),
            *extra]


def current(out: Path, features: str) -> bool:
    """Whether a run folder holds a finished run whose final test line was scored by the `features` evaluator."""
    record = final_record(out, ())
    return record is not None and record["eval_features"] == features


def collect(names: list[str], seeds: list[int], root: Path, features: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Each finished run's G steps, final TEST evaluation and verdict, by configuration and seed ("seed2000" ...);
    runs scored by another evaluator than `features` are left out."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        for seed in seeds:
            record = final_record(root / name / f"seed{seed}", KEYS)
            if record is not None and record["eval_features"] == features:
                results.setdefault(name, {})[f"seed{seed}"] = {"seed": seed, **record}
    return results


def summarise(payload: dict) -> dict:
    """Per configuration: mean, s.e. and n of G steps and each metric over the stored seeds, and verdict counts."""
    out = {}
    for name, rows in payload["runs"].items():
        rows = list(rows.values()) if isinstance(rows, dict) else rows  # older files: a list per configuration
        out[name] = {key: summary_stats([r[key] for r in rows]) for key in ("step", *KEYS)}
        out[name]["verdicts"] = {v: sum(r["verdict"] == v for r in rows) for v in dict.fromkeys(r["verdict"] for r in rows)}
    return out


def main(argv: list[str] | None = None) -> None:
    """Train the missing runs, then write results/tune_fashion.md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--best", type=Path, default=None, help="the study's best.yaml (required unless --summarise)")
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="train only these rows (tuned and preset names)")
    parser.add_argument("--collect", action="store_true", help="train nothing: re-read the run folders")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every run, after the shared ones (a smoke run: model.width=8 ...)")
    parser.add_argument("--tag", default="", help="a suffix of the run folder and results (e.g. smoke)")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored result file from its rows")
    args = parser.parse_args(argv)
    if args.summarise:
        add_summary(output_stem("tune_fashion", args.tag), summarise)
        return
    if args.best is None or not args.best.is_file():
        raise SystemExit(f"--best {args.best}: no such file; run the study first (see RESULTS.md)")
    names = ["tuned", *IMAGE_PRESETS]
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        raise SystemExit(f"--only {' '.join(unknown)}: not a row; use some of {', '.join(names)}")
    seeds = [SEED0 + i for i in range(args.seeds)]
    stem = output_stem("tune_fashion", args.tag)
    root = HERE / "runs" / stem
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cfg = load_config(overrides=["data.name=fashion-mnist", "out=/tmp/unused"])
    evaluator = RunEvaluator(make_dataset(cfg.data, 0), 100, torch.device("cpu"), cfg.eval.cache_dir,
                             cfg.eval.evaluator_epochs, evaluator_images=cfg.eval.evaluator_images,
                             evaluator=cfg.eval.evaluator)  # once, here: what every run's final test line uses
    features = evaluator.features_name("test")
    print(f"evaluator {features}, test accuracy {evaluator.test_accuracy:.4f}", flush=True)
    if not args.collect:
        wanted = [n for n in names if args.only is None or n in args.only]
        jobs = [((name, seed), command(name, args.best, seed, args.budget, root / name / f"seed{seed}",
                                      tuple(args.overrides)),
                 root / f"{name}-seed{seed}.log")
                for seed in seeds for name in wanted if not current(root / name / f"seed{seed}", features)]
        print(f"{len(jobs)} runs of {args.budget:.0f} s, {args.jobs} at a time", flush=True)
        run_jobs(jobs, args.jobs, lambda key, code: print(
            f"  {key}: " + ("done" if code == 0 else f"failed (exit {code})"), flush=True))
    results = collect(names, seeds, root, features)
    ranked = sorted(results, key=lambda n: statistics.fmean(r["fd"] for r in results[n].values()))
    invocation = f"python benchmarks/tune_fashion.py {' '.join(sys.argv[1:] if argv is None else argv)}"
    written = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    lines = [f"# Tuned recipe against the image presets on Fashion-MNIST ({args.budget:.0f} s per run)", "",
             f"Written {written} on {machine()} at commit {git_commit()} by `{invocation}` "
             f"({(time.perf_counter() - started) / 60:.1f} min; finished runs of earlier sittings are re-read). Seeds "
             f"{', '.join(map(str, seeds))}; rows ranked by mean FD; mean ± s.e. over the finished seeds; every run's "
             f"final test line scored by `{features}` (test accuracy {evaluator.test_accuracy:.4f}).",
             "",
             "| configuration | runs | G steps | " + " | ".join(KEYS) + " | doctor's verdicts |",
             "|---|---|---|" + "---|" * (len(KEYS) + 1)]
    for name in ranked:
        rows = list(results[name].values())
        verdicts = ", ".join(f"{v} {sum(r['verdict'] == v for r in rows)}" for v in ("healthy", "warnings", "failed")
                             if any(r["verdict"] == v for r in rows))
        errors = sorted({code for r in rows for code in r["errors"]})
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(mean_se([r[k] for r in rows]) for k in ("step", *KEYS))
                     + f" | {verdicts}{' (' + ', '.join(errors) + ')' if errors else ''} |")
    missing = [n for n in names if len(results.get(n, [])) < len(seeds)]
    if missing:
        lines += ["", "Not (fully) run yet: " + ", ".join(f"{n} ({len(results.get(n, []))} of {len(seeds)})"
                                                            for n in missing) + "."]
    text = "\n".join(lines)
    write_results(stem, text, {"command": invocation, "date": written, "commit": git_commit(),
                               "args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(),
                               "eval_features": features, "evaluator_accuracy": evaluator.test_accuracy,
                                         "best": args.best.read_text(), "runs": results})
    add_summary(output_stem("tune_fashion", args.tag), summarise)
    print(text)
    print(json.dumps({"ranking": ranked}))


if __name__ == "__main__":
    main()
