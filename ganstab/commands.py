"""Optional subcommands (doctor, eval) registered with the CLI; each stays thin."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganstab import cli


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the stability findings of a finished or running run."""
    from ganstab.config import doctor_config
    from ganstab.diagnose import context_from_config, diagnose, format_report, read_records
    from ganstab.config import to_dict
    from ganstab.train.loop import load_run_config

    run = Path(args.run)
    cfg = load_run_config(run)
    if not (run / "metrics.jsonl").is_file():
        raise cli.CLIError(f"{run}: no metrics.jsonl yet; the run has not logged anything")
    records = read_records(run)
    findings = diagnose(records, doctor_config(cfg), context_from_config(to_dict(cfg)))
    last = max((int(r.get("step", 0)) for r in records), default=0)
    print(f"{run}: {len(records)} logged lines up to step {last}")
    recoveries = run / "recoveries.jsonl"
    if recoveries.is_file():
        lines = [line for line in recoveries.read_text().splitlines() if line.strip()]
        print(f"automatic recoveries: {len(lines)} (see {recoveries})")
    print(format_report(findings))
    return 1 if args.strict and any(f.severity == "error" for f in findings) else 0


def _register_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="diagnose a run: mode collapse, divergence, stalls, with advice",
                       description="Run the stability detectors over a run's metrics.jsonl and print the findings.")
    p.add_argument("run", metavar="RUN_DIR", help="run directory")
    p.add_argument("--strict", action="store_true", help="exit 1 when a finding of severity error is present")
    p.set_defaults(func=cmd_doctor)


cli._EXTRA_COMMANDS["doctor"] = _register_doctor


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.html for a run directory or an ablation folder."""
    from ganstab.report.html import write_report

    path = write_report(Path(args.path))
    print(f"report: {path}")
    return 0


def _register_report(sub) -> None:
    p = sub.add_parser("report", help="write a self-contained report.html for a run or an ablation",
                       description="Write PATH/report.html: curves, findings on the timeline, samples (runs) or "
                                   "the ranked summary, bar and line charts and links to the runs (ablations).")
    p.add_argument("path", metavar="RUN_DIR|ABLATION_DIR", help="a run directory or an ablation folder")
    p.set_defaults(func=cmd_report)


def cmd_ablate(args: argparse.Namespace) -> int:
    """Train variants x seeds in parallel workers, then write summary.csv/json and report.html."""
    from ganstab import ablate

    variants = ablate.make_variants(args.vary or (), args.variants)
    seeds = ablate.parse_seeds(args.seeds)
    base = ablate.base_data(args.config, args.overrides, args.preset)
    if args.dry_run:
        specs, invalid = ablate.plan_runs(Path(args.out), base, variants, seeds, args.jobs or ablate.default_jobs(),
                                          args.overwrite)
        for name, reason in invalid:
            print(f"skipping variant {name}: {reason}")
        for spec in specs:
            print(f"{spec.mode:>8}  {spec.out}")
        return 0
    try:
        result = ablate.run_ablation(args.out, base, variants, seeds, jobs=args.jobs, overwrite=args.overwrite,
                                     echo=cli._echo)
    except KeyboardInterrupt:
        import sys

        print("ganstab: interrupted; run the same command again to resume (finished runs are skipped)",
              file=sys.stderr, flush=True)
        return 130
    print(ablate.format_summary(result.summary))
    print(f"summary: {Path(args.out) / ablate.SUMMARY_CSV} and {Path(args.out) / ablate.SUMMARY_JSON}")
    if result.report is not None:
        print(f"report: {result.report}")
    if result.failed:
        print(f"{len(result.failed)} run{'s' if len(result.failed) != 1 else ''} failed; see their train.log")
        return 1
    if result.interrupted:
        return 130
    return 0


def _register_ablate(sub) -> None:
    p = sub.add_parser("ablate", help="train a grid of config variants x seeds and compare them",
                       description="Train every variant (the --vary grid and/or --variants FILE) with each seed in "
                                   "parallel workers; runs go to OUT/<variant>/seed<k>/. Rerunning skips finished "
                                   "runs and resumes half-done ones from their newest checkpoint.")
    cli._add_config_args(p)
    p.add_argument("--vary", action="append", metavar="KEY=V1,V2,...",
                   help="a config key and the values to try (repeat for a grid), e.g. loss.kind=hinge,wasserstein")
    p.add_argument("--variants", metavar="FILE", help="YAML mapping: variant name -> overrides (nested or dotted keys)")
    p.add_argument("--seeds", default="3", metavar="N|S1,S2,...",
                   help="number of seeds per variant (seeds 0..N-1) or an explicit list (default 3)")
    p.add_argument("--out", required=True, metavar="DIR", help="ablation folder (rerun with the same DIR to resume)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="parallel worker processes (default: os.cpu_count()); each uses one torch thread when N > 1")
    p.add_argument("--overwrite", action="store_true", help="retrain every run from scratch, even finished ones")
    p.add_argument("--dry-run", action="store_true", help="list the runs and what would happen to each, train nothing")
    p.set_defaults(func=cmd_ablate)


cli._EXTRA_COMMANDS["report"] = _register_report
cli._EXTRA_COMMANDS["ablate"] = _register_ablate


def cmd_eval(args: argparse.Namespace) -> int:
    """Score a run's exported generator (or its best/ export) against the real data."""
    import json

    import torch

    from ganstab.data import make_dataset
    from ganstab.evaluation import RunEvaluator
    from ganstab.export import load_generator
    from ganstab.train.loop import load_run_config

    run = Path(args.run)
    cfg = load_run_config(run)
    if args.n is not None and args.n < 2:
        raise cli.CLIError(f"--n must be at least 2, got {args.n}")
    source = run / "best" if args.best else run
    generator, meta = load_generator(source, device=args.device)
    device = torch.device(args.device)
    data = make_dataset(cfg.data, cfg.seed).to(device)
    n = args.n or cfg.eval.n
    evaluator = RunEvaluator(data, n, device, cfg.eval.cache_dir, cfg.eval.evaluator_epochs, echo=print)
    fixed = torch.Generator().manual_seed(cfg.seed + 2)
    fixed_z = torch.randn(cfg.log.n_samples, cfg.model.latent_dim, generator=fixed).to(device)
    scores = evaluator.evaluate(generator, cfg.model.latent_dim, meta.get("g_kwargs", {}), fixed_z, seed=args.seed)
    if evaluator.test_accuracy is not None:
        print(f"evaluator test accuracy: {evaluator.test_accuracy:.4f}")
    width = max(len(k) for k in scores)
    print(f"{source} ({n} samples, step {meta.get('step')}):")
    for key, value in scores.items():
        print(f"  {key:<{width}}  {value:.6g}")
    out = run / f"eval-n{n}-seed{args.seed}{'-best' if args.best else ''}.json"
    out.write_text(json.dumps({"n": n, "seed": args.seed, "step": meta.get("step"), **scores}, indent=2))
    print(f"written: {out}")
    return 0


def _register_eval(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run offline (FD, KID, precision/recall, modes, ...)",
                       description="Score a run's generator with ganstab's own evaluator network (no downloads).")
    p.add_argument("--run", required=True, metavar="DIR", help="run directory")
    p.add_argument("--n", type=int, default=None, help="number of generated samples (default: eval.n of the run)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--best", action="store_true", help="score best/ (the best checkpoint by the main metric)")
    p.add_argument("--device", default="cpu", help="device (default cpu)")
    p.set_defaults(func=cmd_eval)


cli._EXTRA_COMMANDS["eval"] = _register_eval
