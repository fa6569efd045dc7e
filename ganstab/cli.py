"""Thin command line: parse, validate, call the library. Errors are one line and exit 2."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

EXIT_USAGE = 2


class CLIError(Exception):
    """A usage problem reported as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line instead of usage + message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{message}; see '{self.prog} --help'")


def _echo(message: str) -> None:
    print(message, flush=True)


def _load(args: argparse.Namespace):
    from ganstab.config import load_config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(args.config, args.overrides, args.preset)
    for w in caught:
        print(f"ganstab: warning: {w.message}", file=sys.stderr, flush=True)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) a run and print where its outputs are."""
    from ganstab.config import merge_sources, validate
    from ganstab.train import train

    if args.resume is not None:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.yaml"
        if not cfg_path.is_file():
            raise CLIError(f"--resume {run_dir}: not a ganstab run directory (no config.yaml)")
        if args.config is None and args.preset is None:
            cfg = validate(merge_sources(cfg_path, args.overrides))
        else:
            cfg = _load(args)
        cfg.out = str(run_dir)
    else:
        cfg = _load(args)
    result = train(cfg, overwrite=args.overwrite, resume=args.resume is not None,
                   allow_config_change=args.allow_config_change, echo=_echo)
    if result.interrupted:
        return 130
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun only rank 0 reports
    out = Path(result.out)
    samples = sorted((out / "samples").glob("*.png"))
    print(f"trained {result.steps} G steps ({result.d_steps} D steps, {result.images_seen} real images) "
          f"in {out}")
    if samples:
        print(f"samples: {samples[-1]}")
    for plot in sorted((out / "plots").glob("*.png")):
        print(f"plot: {plot}")
    from ganstab.train.recorder import read_metrics

    evals = [r for r in read_metrics(out / "metrics.jsonl") if any(k.startswith("eval_") for k in r)]
    if evals:
        shown = ", ".join(f"{k[5:]}={v:.4g}" for k, v in evals[-1].items()
                          if k.startswith("eval_") and isinstance(v, (int, float)) and k != "eval_kid_std")
        print(f"eval at step {evals[-1]['step']}: {shown}")
    for extra in ("report.html", "findings.jsonl"):
        if (out / extra).exists():
            print(f"{extra.split('.')[0]}: {out / extra}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Write samples from a run's exported generator."""
    from ganstab.export import load_generator, write_samples

    if args.format not in ("grid", "folder", "npy"):
        raise CLIError(f"--format must be grid, folder or npy, got {args.format!r}")
    if args.n <= 0:
        raise CLIError(f"--n must be positive, got {args.n}")
    generator, meta = load_generator(Path(args.run), device=args.device)
    if args.format == "folder" and meta["data"].get("kind") == "points":
        raise CLIError("--format folder writes images, but this run generates 2-D points; use --format npy or grid")
    path = write_samples(generator, meta, args.n, Path(args.out), args.format, args.seed)
    print(f"wrote {args.n} samples to {path}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """List the presets with one line each."""
    from ganstab.presets import PRESETS

    width = max(len(n) for n in PRESETS)
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.description}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """List every config key with its default."""
    from ganstab.config import Config, known_keys, to_dict

    from dataclasses import asdict

    from ganstab.diagnose import DoctorConfig

    defaults = to_dict(Config())
    defaults["doctor"] = asdict(DoctorConfig())
    for key in known_keys():
        node = defaults
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        print(f"{key} = {json.dumps(node)}")
    return 0


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML config file")
    p.add_argument("--preset", metavar="NAME", help="start from a preset (see 'ganstab presets')")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides with dotted keys, e.g. loss.kind=hinge train.steps=2000")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog="ganstab", description="Stable GAN training: every stabilisation trick as a config switch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a GAN (no arguments: a ~1 minute demo on bundled digits)",
                       description="Train a GAN. Outputs go to the config's `out` folder (default runs/<name>).")
    _add_config_args(p)
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its newest valid checkpoint")
    p.add_argument("--allow-config-change", action="store_true",
                   help="resume even though the config differs from the checkpoint's")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the output folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="write samples from a trained run",
                       description="Sample from a run's exported generator (EMA weights when trained with EMA).")
    p.add_argument("--run", required=True, metavar="DIR", help="run directory (holds generator.safetensors)")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, metavar="PATH", help="output PNG, folder or .npy file")
    p.add_argument("--format", default="grid",
                   help="grid (default): one PNG; folder: one PNG per sample (for pytorch-fid/clean-fid); "
                        "npy: raw array")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--device", default="cpu", help="device to sample on (default cpu)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)
    p = sub.add_parser("keys", help="list every config key with its default")
    p.set_defaults(func=cmd_keys)

    for name, register in _EXTRA_COMMANDS.items():
        register(sub)
    return parser


# Optional subcommands registered by other modules: name -> function(subparsers) adding its parser.
_EXTRA_COMMANDS: dict[str, Callable] = {}


def _register_extras() -> None:
    from ganstab import commands  # noqa: F401  (registers eval/doctor/report/ablate when present)


def _friendly_os_error(exc: OSError) -> str:
    where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing{where}; free space, then resume with --resume (the last checkpoint is intact)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied for{where}; choose a writable location"
    return f"{exc.strerror or exc}{where}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `ganstab` command; returns the exit status."""
    from ganstab.errors import GanstabError

    try:
        _register_extras()
    except ImportError:
        pass
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if hasattr(args, "overrides"):
            args.overrides = list(args.overrides) + [e for e in extra if "=" in e and not e.startswith("-")]
            extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
        if extra:
            raise CLIError(f"unrecognized arguments: {' '.join(extra)}; see 'ganstab --help'")
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except (CLIError, GanstabError) as exc:
        print(f"ganstab: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # the reader went away (e.g. `| head`): stop quietly
        except OSError:
            pass
        return 0
    except OSError as exc:
        print(f"ganstab: error: {_friendly_os_error(exc)}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("ganstab: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
