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
