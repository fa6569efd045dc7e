"""Every user-facing error: one line naming the problem and the fix (the CLI prints it and exits 2).

This room sits at the top of the house: every other room may raise these, none is imported here.
"""

from __future__ import annotations

__all__ = ["GanstabError", "ConfigError", "DataError", "CheckpointError", "TrainingDiverged", "ReportError",
           "AblationError", "UsageError", "RunInUse", "PathError", "AfterTrainingError", "one_line", "first_line"]


class GanstabError(ValueError):
    """Base class of user-facing errors: the CLI prints the message alone and exits non-zero."""


class ConfigError(GanstabError):
    """A config key or value that cannot be used; the message is one line with the fix."""


class DataError(GanstabError):
    """A data file or folder that cannot be used."""


class CheckpointError(GanstabError):
    """A checkpoint or run directory that cannot be used."""


class TrainingDiverged(GanstabError):
    """Training diverged and automatic recovery is off or used up."""


class ReportError(GanstabError):
    """A folder that holds neither a run nor an ablation."""


class AblationError(ConfigError):
    """An ablation request that cannot be carried out; the message is one line with the fix."""


class UsageError(GanstabError):
    """A command-line usage problem (a bad argument or combination of arguments)."""


class RunInUse(CheckpointError):
    """A run folder that another live process holds (its lock file names the process)."""


class PathError(GanstabError):
    """A path the user gave that the operating system would refuse: below a file, a name too long, not writable."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's whole text on one line (its lines joined, whitespace collapsed), cut at `limit` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


class AfterTrainingError(GanstabError):
    """Training finished and the generator is exported, but a phase after it (evaluation, plots, report) failed."""


def first_line(exc: BaseException) -> str:
    """An exception's first line of text (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
