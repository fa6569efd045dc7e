"""What every command shares: the one-line argument parser, echo, config loading and the config arguments."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import warnings
from pathlib import Path
from typing import Optional

import torch

from ganstab.config import Config, merge_sources, validate
from ganstab.errors import UsageError
from ganstab.pipeline import check_config, load_config
from ganstab.rundir import RUN_FILES, RunDir, is_run_dir, newest_valid_checkpoint, user_path

__all__ = ["cli_device", "EXIT_USAGE", "exit_status", "Parser", "echo", "load_cli_config", "load_resume_config",
           "add_config_args", "friendly_os_error", "os_error_status", "PATH_ERRNOS"]

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line instead of usage + message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise the problem as a one-line UsageError."""
        raise UsageError(f"{message}; see '{self.prog} --help'")


def exit_status(stop_signal: Optional[int]) -> int:
    """The exit status of a run a signal stopped: 128 + its number (SIGINT 130, SIGTERM 143), as the shell reports it."""
    return 128 + int(stop_signal or signal.SIGINT)


def echo(message: str) -> None:
    """Print a progress or result line at once."""
    print(message, flush=True)


def load_cli_config(args: argparse.Namespace) -> Config:
    """The config named by --preset, --config and key=value overrides, warnings printed as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(args.config, args.overrides, args.preset)
    for w in caught:
        print(f"ganstab: warning: {w.message}", file=sys.stderr, flush=True)
    return cfg


def load_resume_config(args: argparse.Namespace, run_dir: Path) -> Config:
    """The config to resume a run with: its config.yaml plus overrides, or the sources given anew."""
    cfg_path = RunDir(run_dir).config
    if not cfg_path.is_file():
        raise UsageError(f"--resume {run_dir}: not a ganstab run directory (no config.yaml)")
    if args.config is None and args.preset is None:
        cfg = validate(merge_sources(cfg_path, args.overrides))
        check_config(cfg)
    else:
        cfg = load_cli_config(args)
    cfg.out = str(run_dir)
    return cfg


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config, --preset and the key=value overrides."""
    p.add_argument("--config", metavar="FILE", help="YAML config file")
    p.add_argument("--preset", metavar="NAME", help="start from a preset (see 'ganstab presets')")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides with dotted keys, e.g. loss.kind=hinge train.steps=2000")


def _after_disk_full(path: Optional[str]) -> str:
    """What to do after a full disk: resume from the run's newest valid checkpoint when one exists, else start again."""
    for folder in (Path(path).parents if path else ()):
        if is_run_dir(folder) or Path(path).relative_to(folder).parts[0] in RUN_FILES:  # config.yaml may be the one
            newest = newest_valid_checkpoint(RunDir(folder).checkpoints, warn=lambda _message: None)
            if newest is None:
                return f"start the run again (no checkpoint of {str(folder)!r} was written yet)"
            return f"resume with --resume {folder} (its last checkpoint, {newest.name}, is intact)"
    return "run the command again (files written before are intact: every write goes through a temp file)"


# errors of a path the user gave (refusals of input, exit 2): the problem of each, in words
PATH_ERRNOS: dict[int, str] = {
    errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a part of the path is a file, not a folder", errno.ENAMETOOLONG: "name too long",
    errno.EISDIR: "is a folder", errno.EEXIST: "already exists", errno.ENOENT: "no such file or folder",
    errno.ELOOP: "too many symbolic links",
}


def friendly_os_error(exc: OSError) -> str:
    """One line for an OS error, naming the file the user knows: a full disk says what to do, a refused path the fix."""
    name = user_path(exc.filename) if getattr(exc, "filename", None) else None
    where = f" {name!r}" if name else ""
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing{where}; free space, then {_after_disk_full(name)}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied for{where}; choose a writable location"
    if exc.errno in PATH_ERRNOS:
        return f"{PATH_ERRNOS[exc.errno]}:{where or ' (no path given)'}; choose another path"
    return f"{exc.strerror or exc}{where}"


def os_error_status(exc: OSError) -> int:
    """The exit status of an OS error: 2 for a path the system refuses (the user's input), 1 for anything else."""
    return EXIT_USAGE if exc.errno in PATH_ERRNOS else 1


def cli_device(name: str) -> torch.device:
    """The device named by --device (cpu, cuda, cuda:N, mps or auto), checked to exist, as a one-line UsageError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device must be cpu, cuda, cuda:N, mps or auto, got {name!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device must be cpu, cuda, cuda:N, mps or auto, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name} but no CUDA device is available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                         "use --device cuda:0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name} but MPS is not available; use --device cpu")
    return device
