"""Registers the optional subcommands (eval, doctor, report, ablate) with the CLI."""

from __future__ import annotations
