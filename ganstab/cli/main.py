"""The `ganstab` command: one explicit list of command families, errors as one line with exit status 2."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Optional, Sequence

from ganstab.cli import ablate, data, info, runs, train, tune
from ganstab.cli.common import EXIT_USAGE, Parser, friendly_os_error, os_error_status
from ganstab.errors import GanstabError, UsageError

__all__ = ["COMMAND_FAMILIES", "build_parser", "main"]

# every command family, in the order `ganstab --help` lists them
COMMAND_FAMILIES: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    train.register, runs.register, info.register, ablate.register, tune.register, data.register,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = Parser(prog="ganstab", description="Stable GAN training: every stabilisation trick as a config switch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for register in COMMAND_FAMILIES:
        register(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse, taking key=value words anywhere on the line as config overrides."""
    args, extra = parser.parse_known_args(argv)
    if hasattr(args, "overrides"):
        args.overrides = list(args.overrides) + [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}; see 'ganstab --help'")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `ganstab` command; returns the exit status."""
    parser = build_parser()
    try:
        args = _parse(parser, argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except GanstabError as exc:
        print(f"ganstab: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # the reader went away (e.g. `| head`): stop quietly
        except OSError:
            pass
        return 0
    except OSError as exc:
        print(f"ganstab: error: {friendly_os_error(exc)}", file=sys.stderr, flush=True)
        return os_error_status(exc)
    except KeyboardInterrupt:
        print("ganstab: interrupted", file=sys.stderr, flush=True)
        return 130
