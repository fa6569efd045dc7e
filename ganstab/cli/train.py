"""`ganstab train`: train (or resume) a run and print where its outputs are."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganstab.cli.common import add_config_args, echo, exit_status, load_cli_config, load_resume_config
from ganstab.pipeline import main_process, train
from ganstab.rundir import RunDir, is_eval_record, is_metric_key, is_test_record, read_jsonl

__all__ = ["cmd_train", "register"]


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) a run and print where its outputs are."""
    if args.resume is not None:
        cfg = load_resume_config(args, Path(args.resume))
    else:
        cfg = load_cli_config(args)
    result = train(cfg, overwrite=args.overwrite, resume=args.resume is not None,
                   allow_config_change=args.allow_config_change, echo=echo)
    if result.interrupted:
        return exit_status(result.stop_signal)
    if not main_process():
        return 0  # under torchrun only rank 0 reports
    _print_outputs(RunDir(result.out), result)
    return 0


def _print_outputs(run: RunDir, result: object) -> None:
    """The lines that say what a finished run wrote."""
    samples = sorted(run.samples.glob("*.png"))
    print(f"trained {result.steps} G steps ({result.d_steps} D steps, {result.images_seen} real images) "
          f"in {run.root}")
    if samples:
        print(f"samples: {samples[-1]}")
    for plot in sorted(run.plots.glob("*.png")):
        print(f"plot: {plot}")
    records = read_jsonl(run.metrics)
    for keep, label in ((is_eval_record, "eval"), (is_test_record, "test")):  # validation, then the final test line
        evals = [r for r in records if keep(r)]
        if evals:
            shown = ", ".join(f"{k[5:]}={v:.4g}" for k, v in evals[-1].items()
                              if is_metric_key(k) and isinstance(v, (int, float)) and k != "eval_kid_std")
            print(f"{label} at step {evals[-1]['step']} ({evals[-1].get('eval_split', 'validation')}, "
                  f"{evals[-1].get('eval_reference_n', '?')} real): {shown}")
    for label, path in (("report", run.report), ("findings", run.findings)):
        if path.exists():
            print(f"{label}: {path}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` command."""
    p = sub.add_parser("train", help="train a GAN (no arguments: a demo of about 25 s on the bundled digits)",
                       description="Train a GAN. Outputs go to the config's `out` folder (default runs/<name>).")
    add_config_args(p)
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its newest valid checkpoint")
    p.add_argument("--allow-config-change", action="store_true",
                   help="resume even though the config differs from the checkpoint's")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output folder")
    p.set_defaults(func=cmd_train)
