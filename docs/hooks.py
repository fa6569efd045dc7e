"""MkDocs hook: the CLI and config references generated from the code, and a docstring check of the API pages."""

from __future__ import annotations

import argparse
import html
import importlib
import inspect
import json
import logging
import re
from typing import Any

log = logging.getLogger("mkdocs.plugins.ganstab_docs")

# modules whose public names (`__all__`) the API reference shows; each must have a docstring
API_MODULES = ("ganstab.losses", "ganstab.penalties", "ganstab.augment", "ganstab.metrics.stats", "ganstab.export",
               "ganstab.config")

CLI_MARK = "<!-- ganstab:cli-reference -->"
CONFIG_MARK = "<!-- ganstab:config-reference -->"
# a figure link to a result file outside docs/ ([0.16](../benchmarks/results/finetune.json#/summary/...)): the site
# shows the figure alone (the file is not part of the site); tests/test_claims.py checks the link in the source
OUTSIDE_FIGURE_LINK = re.compile(r"\[(?P<figure>[^\[\]]*)\]\(\.\./[^()\s#]+#/[^()\s]*\)")


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of each direct subcommand of a parser, in the order they were added."""
    out: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    out.append((name, sub))
    return out


def _cli_sections(parser: argparse.ArgumentParser, level: int) -> list[str]:
    """A heading and the --help text of a parser and of every subcommand below it."""
    lines = [f"{'#' * level} `{parser.prog}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for _, sub in _subcommands(parser):
        lines += _cli_sections(sub, min(level + 1, 4))
    return lines


def cli_reference() -> str:
    """Markdown of `ganstab --help` and every command's --help, from `ganstab.cli.main.build_parser()`."""
    from ganstab.cli.main import build_parser

    parser = build_parser()
    parser.formatter_class = argparse.HelpFormatter
    return "\n".join(_cli_sections(parser, 2))


def _type_name(annotation: Any) -> str:
    """A short readable form of a field's type annotation."""
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return re.sub(r"\b(typing|ganstab\.config)\.", "", text)


def _escape(text: str) -> str:
    """Markdown-safe prose: HTML and emphasis characters escaped outside `code spans`."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = html.escape(parts[i], quote=False).replace("*", r"\*").replace("_", r"\_")
    return "`".join(parts)


def config_reference() -> str:
    """Markdown of every config key: type, default, what it applies to and its description (from the schema)."""
    from pydantic import BaseModel

    from ganstab.config import Config, key_help, known_keys, to_dict

    defaults = to_dict(Config())
    lines: list[str] = []
    section = None
    for key in known_keys():
        model: type[BaseModel] = Config
        parts = key.split(".")
        for part in parts[:-1]:
            model = model.model_fields[part].annotation
        field = model.model_fields[parts[-1]]
        head = parts[0] if len(parts) > 1 else "top level"
        if head != section:
            section = head
            doc = inspect.getdoc(model) if len(parts) > 1 else "Keys outside any section."
            lines += [f"## {head}", "", _escape((doc or "").splitlines()[0]), ""]
        node: Any = defaults
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        description, applies = key_help(key)
        lines += [f"### `{key}`", "",
                  f"type `{_type_name(field.annotation)}` · default `{json.dumps(node)}` · applies to: "
                  f"{_escape(applies)}", "", _escape(description), ""]
    return "\n".join(lines)


def _check_docstrings() -> None:
    """Warn (an error under --strict) for each public name of the API modules without a docstring."""
    for name in API_MODULES:
        module = importlib.import_module(name)
        if not (module.__doc__ or "").strip():
            log.warning("module %s has no docstring", name)
        for public in getattr(module, "__all__", []):
            obj = getattr(module, public)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not (obj.__doc__ or "").strip():
                log.warning("%s.%s has no docstring", name, public)


def on_config(config: Any) -> Any:
    """Check the docstrings of the API modules before the build."""
    _check_docstrings()
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the reference markers with the generated text, and figure links out of docs/ with the figure."""
    markdown = OUTSIDE_FIGURE_LINK.sub(lambda match: match["figure"], markdown)
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_reference())
    if CONFIG_MARK in markdown:
        markdown = markdown.replace(CONFIG_MARK, config_reference())
    return markdown
