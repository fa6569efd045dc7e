"""Exception types whose messages are one line naming the problem and the fix (CLI prints them)."""

from __future__ import annotations


class GanstabError(ValueError):
    """Base class of user-facing errors: the CLI prints the message alone and exits non-zero."""


class DataError(GanstabError):
    """A data file or folder that cannot be used."""


class CheckpointError(GanstabError):
    """A checkpoint or run directory that cannot be used."""


class TrainingDiverged(GanstabError):
    """Training diverged and automatic recovery is off or used up."""
