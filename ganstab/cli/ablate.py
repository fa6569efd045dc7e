"""`ganstab ablate`: variants x seeds trained in parallel workers, then summarised and reported."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganstab import ablate
from ganstab.cli.common import add_config_args, echo, exit_status
from ganstab.rundir import SUMMARY_CSV, SUMMARY_JSON

__all__ = ["cmd_ablate", "register"]


def cmd_ablate(args: argparse.Namespace) -> int:
    """Train variants x seeds in parallel workers, then write summary.csv/json and report.html."""
    variants = ablate.make_variants(args.vary or (), args.variants)
    seeds = ablate.parse_seeds(args.seeds)
    ablate.check_run_count(len(variants), len(seeds))
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
                                     echo=echo)
    except KeyboardInterrupt:
        print("ganstab: interrupted; run the same command again to resume (finished runs are skipped)",
              file=sys.stderr, flush=True)
        return 130
    print(ablate.format_summary(result.summary))
    print(f"summary: {Path(args.out) / SUMMARY_CSV} and {Path(args.out) / SUMMARY_JSON}")
    if result.report is not None:
        print(f"report: {result.report}")
    if result.failed:
        print(f"{len(result.failed)} run{'s' if len(result.failed) != 1 else ''} failed; see their train.log")
        return 1
    if result.interrupted:
        return exit_status(result.stop_signal)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `ablate` command."""
    p = sub.add_parser("ablate", help="train a grid of config variants x seeds and compare them",
                       description="Train every variant (the --vary grid and/or --variants FILE) with each seed in "
                                   "parallel workers; runs go to OUT/<variant>/seed<k>/. Rerunning skips finished "
                                   "runs and resumes half-done ones from their newest checkpoint.")
    add_config_args(p)
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
