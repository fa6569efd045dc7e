"""Commands over an existing run: `sample`, `eval`, `doctor` and `report`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from ganstab.cli.common import cli_device
from ganstab.config import to_dict
from ganstab.data import make_dataset
from ganstab.diagnose import context_from_config, diagnose, format_report, read_finding_lines, unread_reason, verdict
from ganstab.errors import UsageError
from ganstab.export import (GRID_MAX, check_grid_size, check_sample_space, load_generator, load_run_generator,
                            write_samples)
from ganstab.metrics import RunEvaluator
from ganstab.models.conditional import run_label_distribution
from ganstab.report.html import write_report
from ganstab.rundir import (JsonLines, RunDir, atomic_write, finished_export, is_run_dir, load_run_config, read_jsonl,
                            read_metrics, skipped_note)
from ganstab.training.interfaces import fixed_latents, training_eval_seed

EVAL_MAX = 200_000  # most samples `ganstab eval` scores (eval.n's own limit)

__all__ = ["EVAL_MAX", "cmd_sample", "cmd_eval", "cmd_doctor", "cmd_report", "register"]


def cmd_sample(args: argparse.Namespace) -> int:
    """Write samples from a run's exported generator (or its newest valid checkpoint when none was exported)."""
    if args.format not in ("grid", "folder", "npy"):
        raise UsageError(f"--format must be grid, folder or npy, got {args.format!r}")
    if args.n <= 0:
        raise UsageError(f"--n must be positive, got {args.n}")
    check_grid_size(args.n, args.format)
    if args.classes is not None and args.classes != "all":
        raise UsageError(f"--classes takes 'all' (one row per class), got {args.classes!r}; use --class K for one class")
    if args.class_index is not None and args.classes is not None:
        raise UsageError("--class K and --classes all exclude each other; give one")
    device = cli_device(args.device)
    generator, meta = load_run_generator(Path(args.run), device=str(device), echo=print)
    if args.format == "folder" and meta["data"].get("kind") == "points":
        raise UsageError("--format folder writes images, but this run generates 2-D points; use --format npy or grid")
    check_sample_space(meta, args.n, Path(args.out), args.format)
    path = write_samples(generator, meta, args.n, Path(args.out), args.format, args.seed, args.class_index,
                         args.classes == "all")
    count = args.n
    if args.classes == "all":
        classes = int(meta.get("num_classes") or 0)
        count = max(1, args.n // classes) * classes if classes else args.n
    print(f"wrote {count} samples to {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score a run's exported generator (or its best/ export) against the real data."""
    run = Path(args.run)
    if args.n is not None and args.n < 2:
        raise UsageError(f"--n must be at least 2, got {args.n}")
    if args.n is not None and args.n > EVAL_MAX:
        raise UsageError(f"--n must be at most {EVAL_MAX:,} (the evaluator's limit, as for eval.n), got {args.n}")
    device = cli_device(args.device)
    cfg = load_run_config(run)
    source = RunDir(run).best if args.best else run
    if args.best:
        generator, meta = load_generator(source, device=str(device))
    else:
        generator, meta = load_run_generator(source, device=str(device), echo=print)
    data = make_dataset(cfg.data, cfg.seed).to(device)
    n = args.n or cfg.eval.n
    classes = int(meta.get("num_classes") or 0)
    evaluator = RunEvaluator(data, n, device, cfg.eval.cache_dir, cfg.eval.evaluator_epochs, echo=print,
                             evaluator_images=cfg.eval.evaluator_images, val_n=cfg.eval.val_n,
                             num_classes=classes, label_probs=run_label_distribution(cfg.model, data.labels, classes))
    fixed_z = fixed_latents(cfg.seed, cfg.log.n_samples, cfg.model.latent_dim).to(device)
    seed = training_eval_seed(cfg.seed) if args.seed is None else args.seed
    scores = evaluator.evaluate(generator, cfg.model.latent_dim, meta.get("g_kwargs", {}), fixed_z, seed=seed,
                                split="test")
    provenance = evaluator.provenance("test")
    if evaluator.test_accuracy is not None:
        print(f"evaluator test accuracy: {evaluator.test_accuracy:.4f}")
    width = max(len(k) for k in scores)
    print(f"{source} ({n} samples against {provenance['reference_n']} real test images, "
          f"{provenance['features']}, step {meta.get('step')}):")
    for key, value in scores.items():
        print(f"  {key:<{width}}  {value:.6g}")
    out = run / f"eval-n{n}-seed{seed}{'-best' if args.best else ''}.json"
    atomic_write(out, json.dumps({"seed": seed, "step": meta.get("step"), **provenance, **scores}, indent=2))
    print(f"written: {out}")
    return 0


def _warn_skipped(*found: JsonLines) -> None:
    """One warning line on stderr per file with damaged lines that a command went on past."""
    for lines in found:
        if lines.skipped:
            print(f"ganstab: warning: {skipped_note(lines.skipped)}", file=sys.stderr, flush=True)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the stability findings of a finished or running run."""
    run = RunDir(args.run)
    cfg = load_run_config(run.root)
    if not run.metrics.is_file():
        raise UsageError(f"{run.root}: no metrics.jsonl yet; the run has not logged anything")
    found = read_metrics(run.root)
    _warn_skipped(found)
    records = found.records
    findings = diagnose(records, cfg.doctor, context_from_config(to_dict(cfg)))
    last = max((int(r["step"]) for r in records), default=0)
    print(f"{run.root}: {len(records)} logged lines up to step {last}")
    if run.recoveries.is_file():
        events = [r for r in read_jsonl(run.recoveries) if "after_step" not in r]
        print(f"automatic recoveries: {len(events)} (see {run.recoveries})")
    print(format_report(findings))
    reason = unread_reason(found, finished=finished_export(run.root))
    outcome = "unknown" if reason else verdict(findings)
    print(f"verdict: {outcome}" + (f" ({reason})" if reason else ""))
    return 1 if args.strict and outcome in ("failed", "unknown") else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.html for a run directory or an ablation folder."""
    if is_run_dir(args.path):
        _warn_skipped(read_metrics(args.path), read_finding_lines(RunDir(args.path).findings))
    path = write_report(Path(args.path))
    print(f"report: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `sample`, `eval`, `doctor` and `report` commands."""
    p = sub.add_parser("sample", help="write samples from a trained run",
                       description="Sample from a run's exported generator (EMA weights when trained with EMA).")
    p.add_argument("--run", required=True, metavar="DIR", help="run directory (holds generator.safetensors)")
    p.add_argument("--n", type=int, default=64,
                   help=f"number of samples (default 64; a grid shows at most {GRID_MAX:,}, folder and npy are "
                        "written in chunks, any n that fits on disk)")
    p.add_argument("--out", required=True, metavar="PATH", help="output PNG, folder or .npy file")
    p.add_argument("--format", default="grid",
                   help="grid (default): one PNG; folder: one PNG per sample (for pytorch-fid/clean-fid); "
                        "npy: raw array")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--device", default="cpu",
                   help="device to sample on: cpu, cuda, cuda:N, mps or auto (default cpu)")
    p.add_argument("--class", dest="class_index", type=int, default=None, metavar="K",
                   help="conditional runs: samples of class K only (0-based; generator.json lists the names)")
    p.add_argument("--classes", default=None, metavar="all",
                   help="conditional runs: 'all' writes n // classes samples of every class, one row per class")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("eval", help="evaluate a trained run offline (FD, KID, precision/recall, modes, ...)",
                       description="Score a run's generator with ganstab's own evaluator network (no downloads).")
    p.add_argument("--run", required=True, metavar="DIR", help="run directory")
    p.add_argument("--n", type=int, default=None,
                   help=f"number of generated samples (default: eval.n of the run; at most {EVAL_MAX:,})")
    p.add_argument("--seed", type=int, default=None,
                   help="latent seed (default: the run's seed + 3, the seed training's own evaluations use, so the "
                        "scores of the final export equal the last eval_* line of metrics.jsonl at the same n)")
    p.add_argument("--best", action="store_true", help="score best/ (the best checkpoint by the main metric)")
    p.add_argument("--device", default="cpu", help="device: cpu, cuda, cuda:N, mps or auto (default cpu)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("doctor", help="diagnose a run: mode collapse, divergence, stalls, with advice",
                       description="Run the stability detectors over a run's metrics.jsonl and print the findings.")
    p.add_argument("run", metavar="RUN_DIR", help="run directory")
    p.add_argument("--strict", action="store_true", help="exit 1 when the verdict is failed (a finding of severity error)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("report", help="write a self-contained report.html for a run or an ablation",
                       description="Write PATH/report.html: curves, findings on the timeline, samples (runs) or "
                                   "the ranked summary, bar and line charts and links to the runs (ablations).")
    p.add_argument("path", metavar="RUN_DIR|ABLATION_DIR", help="a run directory or an ablation folder")
    p.set_defaults(func=cmd_report)
