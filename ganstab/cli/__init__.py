"""Thin command line: parse, validate, call the library. One module per command family; `main` lists them."""

from ganstab.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
