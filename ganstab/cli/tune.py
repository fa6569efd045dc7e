"""`ganstab tune`: an Optuna search over config keys, trials trained as runs, then re-runs of the winners."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganstab import tune
from ganstab.ablate import base_data
from ganstab.cli.common import echo
from ganstab.errors import UsageError
from ganstab.rundir import check_study_out

__all__ = ["cmd_tune", "settings_from_args", "register"]


def _positive(args: argparse.Namespace, name: str, minimum: float = 1) -> None:
    value = getattr(args, name)
    if value is not None and value < minimum:
        raise UsageError(f"--{name.replace('_', '-')} must be at least {minimum:g}, got {value:g}")


def settings_from_args(args: argparse.Namespace) -> tune.TuneSettings:
    """Check the arguments (one-line UsageError) and build the tuning settings."""
    tune.require_optuna()
    if args.config is None and args.preset is None:
        raise UsageError("give the base config with --config BASE.yaml (or --preset NAME)")
    if (args.trials is None) == (args.time_budget is None):
        raise UsageError("give exactly one of --trials N and --time-budget SECONDS")
    if args.steps is not None and args.trial_seconds is not None:
        raise UsageError("give at most one trial budget: --steps N or --trial-seconds S")
    if args.rerun_steps is not None and args.rerun_seconds is not None:
        raise UsageError("give at most one re-run budget: --rerun-steps N or --rerun-seconds S")
    for name in ("trials", "time_budget", "steps", "trial_seconds", "workers", "top", "rerun_steps", "rerun_seconds"):
        _positive(args, name)
    _positive(args, "rerun_seeds", 0)
    _positive(args, "seed", 0)
    out = Path(args.out)
    check_study_out(out, "a tuning study", UsageError)
    metric, higher = tune.parse_objective(args.objective) if args.objective is not None else (None, False)
    constraints = tuple(tune.parse_constraint(text) for text in args.constraint or ())
    base = base_data(args.config, args.overrides, args.preset)
    kind = args.data_kind or tune.data_kind(base)
    space = tune.read_space(args.space) if args.space else tune.default_space(kind)
    if metric is None:
        metric, higher = tune.objective_metric(base)
    return tune.TuneSettings(out=out, base=base, space=space, storage=args.storage or tune.default_storage(out),
                             trials=args.trials, time_budget=args.time_budget, steps=args.steps,
                             trial_seconds=args.trial_seconds, seed=args.seed, top=args.top,
                             rerun_seeds=args.rerun_seeds, rerun_steps=args.rerun_steps,
                             rerun_seconds=args.rerun_seconds, workers=args.workers, metric=metric, higher=higher,
                             constraints=constraints)


def cmd_tune(args: argparse.Namespace) -> int:
    """Search, re-run the top configurations with fresh seeds, write trials.csv, rerun.csv, best.yaml, report.html."""
    settings = settings_from_args(args)
    try:
        result = tune.run_tune(settings, echo=echo)
    except KeyboardInterrupt:
        print("ganstab: interrupted; run the same command again to resume the study", file=sys.stderr, flush=True)
        return 130
    if result.table:
        print(result.table)
    print(f"trials: {settings.out / 'trials.csv'}")
    if result.best is not None:
        print(f"best config: {result.best} (train it with: ganstab train --config {result.best})")
    else:
        print(f"no {'feasible ' if settings.constraints else ''}trial completed; no best.yaml written")
    if result.report is not None:
        print(f"report: {result.report}")
    return 0 if result.best is not None else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `tune` command."""
    p = sub.add_parser("tune", help="search config keys with Optuna (TPE, pruning), then re-run the winners",
                       description="Sample config keys from a search space with Optuna's TPE, train each trial into "
                                   "OUT/trials/<n>/ for the same budget, prune poor trials early, then re-train the "
                                   "top configurations with fresh seeds and write best.yaml. Re-running the same "
                                   "command resumes; workers on other machines join with the same --storage.")
    p.add_argument("--config", metavar="BASE.yaml", help="the base config (as for 'ganstab train --config')")
    p.add_argument("--preset", metavar="NAME", help="start the base config from a preset")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the base config")
    p.add_argument("--space", metavar="SPACE.yaml",
                   help="search space: key: {type: float|int, low, high, log} or key: {choices: [...]} "
                        "(default: the built-in space of --data-kind)")
    p.add_argument("--trials", type=int, metavar="N", help="stop when the study holds N finished trials")
    p.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop starting trials after SECONDS")
    p.add_argument("--steps", type=int, metavar="N", help="each trial trains N G steps (default: the base config's)")
    p.add_argument("--trial-seconds", type=float, metavar="S", help="each trial trains S seconds instead")
    p.add_argument("--out", required=True, metavar="DIR", help="study folder (rerun with the same DIR to resume)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage: sqlite:///FILE, postgresql://USER@HOST/DB or "
                                                     "journal:PATH (default: sqlite OUT/study.db)")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes on this machine (default 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seeds TPE and the trials (default 0)")
    p.add_argument("--top", type=int, default=3, metavar="K", help="configurations re-run after the search (3)")
    p.add_argument("--rerun-seeds", type=int, default=3, metavar="N", help="fresh seeds per re-run (3; 0: none)")
    p.add_argument("--rerun-steps", type=int, metavar="N",
                   help="the re-runs (and best.yaml) train N G steps: compare the finalists at the budget the winner "
                        "will get (default: the trials' budget)")
    p.add_argument("--rerun-seconds", type=float, metavar="S",
                   help="the re-runs (and best.yaml) train S seconds instead (e.g. 600 when trials run 60)")
    p.add_argument("--objective", metavar="METRIC",
                   help="the metric the search optimises, in its registered direction (default: the data's main "
                        f"metric; one of {', '.join(tune.OBJECTIVES)})")
    p.add_argument("--constraint", action="append", metavar="'METRIC>=X'",
                   help="a floor (>=) or ceiling (<=) on a metric of a trial's final evaluation, e.g. 'recall>=0.3'; "
                        "a trial outside it is infeasible, never chosen nor re-run (repeatable)")
    p.add_argument("--data-kind", choices=sorted(tune.DEFAULT_SPACES), default=None,
                   help="which default search space (default: from the base config's data)")
    p.set_defaults(func=cmd_tune)
