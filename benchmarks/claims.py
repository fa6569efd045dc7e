"""Published figures tied to their evidence: find `[FIGURE](file.json#/json/pointer)` links in Markdown, follow
each to the value it names and check that the figure shows that value, rounded to the decimals shown.

A figure is a number with optional sign, thousands separators (`2,819`), exponent (`2.0e-07`), a `±` error
(`0.397 ± 0.015`, linked to a [mean, error] pair or an object with `mean` and one of `se`, `sem`, `std`,
`err`) and a unit suffix from `UNITS`: ` %` shows a fraction as a percentage, ` min` and ` h` show seconds as
minutes and hours, every other unit (`×`, ` s`, ` MiB` ...) is a label and the value is stored in it. Markdown
emphasis around or inside the link text is ignored. The pointer is RFC 6901 (`~1` for `/`, `~0` for `~`), in its
URI-fragment form: percent-encoded characters (`%20` for a space, `%2B` for `+`) are decoded first (RFC 6901 §6).

Tables in a results file are checked too (`unlinked_table_numbers`): every number in a table body cell must
be a linked figure, unless it is in the row's first cell (the row's name), in a column whose header is in
italics (`_batch_`: a configuration, not a result), in a row whose first cell says `published` (a figure
quoted from a paper), or in a table directly below a `<!-- figures: not linked: REASON -->` line.

Current figures only (`older_evaluator_links`, issue #28): README.md, RESULTS.md and docs/ link no figure to a result
file whose image metrics came from an evaluator network older than `CURRENT_EVALUATOR` (the lowest
`ganstab-evaluator-vN` in the file's `eval_features` / `features` values, an `evaluator_version` number, or, for
files written before result files recorded it, `UNRECORDED_EVALUATOR_VERSIONS`). Such tables live in
benchmarks/HISTORY.md, whose figures are checked against their files like any other. The one exception is a
figure that is itself about the old evaluator, the "before" side of a before/after comparison: a
`<!-- figures: older evaluator: REASON -->` line allows older-evaluator links from it to the next heading.

Usage: python benchmarks/claims.py [FILE.md ...]
       (default: README.md, benchmarks/RESULTS.md, benchmarks/HISTORY.md, docs/*.md)
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = ["Figure", "FigureLink", "UNITS", "ERROR_KEYS", "CURRENT_EVALUATOR", "UNRECORDED_EVALUATOR_VERSIONS",
           "parse_figure", "resolve_pointer", "figure_links", "check_link", "check_markdown", "unlinked_table_numbers",
           "recorded_evaluator_version", "older_evaluator_links", "default_files", "main"]

ROOT = Path(__file__).resolve().parents[1]

# unit suffix -> factor from the stored value to the shown one (None: a label, shown as stored)
UNITS: dict[str, float | None] = {
    "%": 100.0, "min": 1 / 60, "h": 1 / 3600,
    "×": None, "x": None, "s": None, "ms": None, "MiB": None, "MB": None, "GiB": None, "GB": None,
    "img/s": None, "GFLOP/s": None, "GFLOP": None, "steps": None, "images": None,
}
ERROR_KEYS = ("se", "sem", "std", "err")

_NUMBER = r"[+\-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+\-−]?\d+)?"
_UNIT = "|".join(sorted((re.escape(u) for u in UNITS), key=len, reverse=True))
_FIGURE = re.compile(rf"^(?P<value>{_NUMBER})(?:\s*±\s*(?P<error>{_NUMBER}))?(?:\s?(?P<unit>{_UNIT}))?$")
# a link whose fragment is a JSON pointer (starts with '/'); ordinary '#anchor' links do not match
_LINK = re.compile(r"\[(?P<text>[^\[\]]*)\]\((?P<path>[^()\s#]+)#(?P<pointer>/[^()\s]*)\)")
_ANY_LINK = re.compile(r"!?\[[^\[\]]*\]\([^()\s]*\)")
_CODE = re.compile(r"`[^`]*`")
_DIGIT_RUN = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?!\w)")  # not inside a name (grid25, R1)
EXEMPT_MARK = re.compile(r"^<!--\s*figures:\s*not linked:\s*(?P<reason>\S.*?)\s*-->$")
OLDER_EVALUATOR_MARK = re.compile(r"^<!--\s*figures:\s*older evaluator:\s*(?P<reason>\S.*?)\s*-->$")
_HEADING = re.compile(r"^#{1,6}\s")
_EVALUATOR_NAME = re.compile(r"ganstab-evaluator-v(?P<version>\d+)(?!\d)")

CURRENT_EVALUATOR = 3  # ganstab.metrics EVALUATOR_VERSION: the shipped networks
# result files written before result files recorded their evaluator (no `eval_features`): the version of the
# evaluator network behind their image metrics, from issue #28's audit (their sections are in benchmarks/HISTORY.md).
# Version 1 until 2026-12-01 22:10 UTC, version 2 until the shipped version 3 (2026-12-05 16:56 UTC).
UNRECORDED_EVALUATOR_VERSIONS: dict[str, int] = {
    "benchmarks/results/fashion.json": 1, "benchmarks/results/fashion-quick.json": 1,
    "benchmarks/results/fashion-doctor.json": 1, "benchmarks/results/progressive.json": 1,
    "benchmarks/results/progressive-quick.json": 1, "benchmarks/results/conditional.json": 1,
    "benchmarks/results/small_data.json": 1, "benchmarks/results/recovery.json": 1,
    "benchmarks/results/long_runs-healthy.json": 1, "benchmarks/results/long_runs-kill-resume.json": 1,
    "benchmarks/results/confusion.json": 1,
    "benchmarks/results/first_run.json": 2, "benchmarks/results/first_run-pairs.json": 2,
    "benchmarks/results/finetune.json": 2, "benchmarks/results/stacked-floor.json": 2,
    "benchmarks/results/tune_fashion.json": 2, "benchmarks/results/tune-fashion-rerun.csv": 2,
    "benchmarks/results/tune-fashion-trials.csv": 2,
}


@dataclass(frozen=True)
class Figure:
    """A parsed figure: the shown value (and error), the decimals of each, the unit and its factor."""

    value: Decimal
    decimals: int
    error: Decimal | None
    error_decimals: int
    unit: str
    exponent: bool


@dataclass(frozen=True)
class FigureLink:
    """One figure link found in a Markdown file: where it is, what it shows and what it points at."""

    markdown: Path
    line: int
    text: str
    path: str
    pointer: str


def _decimal(text: str) -> tuple[Decimal, int, bool]:
    """A number's text as a Decimal, the decimals shown (of the mantissa) and whether it had an exponent."""
    text = text.replace("−", "-").replace(",", "")
    mantissa, _, _ = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return Decimal(text), decimals, "e" in text.lower()


def parse_figure(text: str) -> Figure | None:
    """The figure a link's text shows (emphasis stripped), or None if the text is not a figure."""
    match = _FIGURE.match(text.replace("*", "").replace("_", "").strip())
    if not match:
        return None
    value, decimals, exponent = _decimal(match["value"])
    error, error_decimals = None, 0
    if match["error"]:
        error, error_decimals, _ = _decimal(match["error"])
    return Figure(value, decimals, error, error_decimals, match["unit"] or "", exponent)


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at an RFC 6901 JSON pointer; KeyError naming the first token that is missing."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise KeyError(f"pointer {pointer!r} does not start with '/'")
    node = document
    walked = ""
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and re.fullmatch(r"0|[1-9]\d*", token) and int(token) < len(node):
            node = node[int(token)]
        else:
            kind = f"a list of {len(node)}" if isinstance(node, list) else (
                "an object" if isinstance(node, dict) else f"the value {json.dumps(node)}")
            raise KeyError(f"no {token!r} in {walked or '/'} ({kind})")
        walked += "/" + raw
    return node


def figure_links(markdown: Path, text: str | None = None) -> list[FigureLink]:
    """Every figure link (a link whose fragment is a JSON pointer, outside `code`) in a Markdown file, in order."""
    text = markdown.read_text(encoding="utf-8") if text is None else text
    links = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = _CODE.sub(lambda code: " " * len(code.group(0)), line)  # a link shown as `code` is an example
        for match in _LINK.finditer(line):
            links.append(FigureLink(markdown, number, match["text"], match["path"], match["pointer"]))
    return links


def _rounds_to(value: float, shown: Decimal, decimals: int, exponent: bool) -> bool:
    """Whether `value` rounded to the decimals shown gives `shown` (a tie may round either way)."""
    exact = Decimal(repr(float(value)))
    if exponent:
        text = f"{float(value):.{decimals}e}"
        if Decimal(text) == shown:
            return True
        scale = Decimal(1).scaleb(shown.adjusted() - decimals)
    else:
        scale = Decimal(1).scaleb(-decimals)
    return abs(exact - shown) <= scale / 2


def _number(value: Any) -> float | None:
    """A JSON value as a float if it is a number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _load(path: Path) -> Any:
    """A result file's content: JSON, or a CSV as a list of rows (numbers parsed) for the pointer."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        rows = []
        for row in csv.DictReader(text.splitlines()):
            parsed = {}
            for key, cell in row.items():
                try:
                    parsed[key] = float(cell)
                except (TypeError, ValueError):
                    parsed[key] = cell
            rows.append(parsed)
        return rows
    return json.loads(text)


def _split_error(value: Any) -> tuple[Any, Any]:
    """(mean, error) of a [mean, error] pair or an object with `mean` and an error key; (value, None) else."""
    if isinstance(value, list) and len(value) == 2:
        return value[0], value[1]
    if isinstance(value, dict) and "mean" in value:
        for key in ERROR_KEYS:
            if key in value:
                return value["mean"], value[key]
    return value, None


def check_link(link: FigureLink, root: Path = ROOT, cache: dict[Path, Any] | None = None) -> str | None:
    """None when the figure shows the value its pointer names, else one line saying what disagrees or is missing."""
    cache = {} if cache is None else cache
    where = f"{_relative(link.markdown, root)}:{link.line}: figure {link.text!r} -> {link.path}#{link.pointer}"
    figure = parse_figure(link.text)
    if figure is None:
        return f"{where}: the link text is not a figure (a number with optional ±, thousands separators, unit)"
    target = (link.markdown.parent / link.path).resolve()
    if target.suffix not in (".json", ".csv"):
        return f"{where}: {link.path} is not a .json (or .csv) result file; point the figure at the file holding it"
    if target not in cache:
        if not target.is_file():
            return f"{where}: the file {_relative(target, root)} does not exist"
        try:
            cache[target] = _load(target)
        except (ValueError, UnicodeDecodeError) as exc:
            return f"{where}: {_relative(target, root)} is not valid {target.suffix[1:].upper()}: {exc}"
    try:
        stored = resolve_pointer(cache[target], unquote(link.pointer))  # the fragment form (RFC 6901 section 6)
    except KeyError as exc:
        return f"{where}: {_relative(target, root)} has no such key: {exc.args[0]}"
    mean, error = _split_error(stored) if figure.error is not None else (stored, None)
    value = _number(mean)
    if value is None:
        return f"{where}: the file holds {json.dumps(stored)[:80]}, not a number"
    factor = UNITS.get(figure.unit) or 1.0
    shown_ok = _rounds_to(value * factor, figure.value, figure.decimals, figure.exponent)
    if figure.error is not None:
        error_value = _number(error)
        if error_value is None:
            return (f"{where}: the figure has a ± error but the file holds {json.dumps(stored)[:80]}, not a "
                    f"[mean, error] pair or an object with 'mean' and one of {', '.join(ERROR_KEYS)}")
        if not (shown_ok and _rounds_to(error_value * factor, figure.error, figure.error_decimals, False)):
            return f"{where}: the file holds {value!r} ± {error_value!r}"
    elif not shown_ok:
        return f"{where}: the file holds {value!r}"
    return None


def _relative(path: Path, root: Path) -> str:
    """A path relative to the checkout when it is inside it, else as given."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def check_markdown(markdown: Path, root: Path = ROOT) -> list[str]:
    """One line per figure link in the file whose figure and stored value disagree or whose file/key is missing."""
    cache: dict[Path, Any] = {}
    return [problem for link in figure_links(markdown) if (problem := check_link(link, root, cache))]


def _cells(row: str) -> list[str]:
    """The cells of a Markdown table row (outer pipes dropped; escaped pipes kept inside a cell)."""
    body = row.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", body)]


def unlinked_table_numbers(markdown: Path, text: str | None = None, root: Path = ROOT) -> list[str]:
    """One line per table cell holding a number that is neither a figure link nor exempt (see the module doc)."""
    text = markdown.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    problems = []
    i = 0
    while i < len(lines):
        if not (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
                and re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", lines[i + 1])):
            i += 1
            continue
        above = lines[i - 1].strip() if i > 0 else ""
        exempt_table = bool(EXEMPT_MARK.match(above))
        header = _cells(lines[i])
        config_columns = {k for k, cell in enumerate(header) if re.fullmatch(r"_[^_].*_", cell)}
        j = i + 2
        while j < len(lines) and lines[j].lstrip().startswith("|"):
            cells = _cells(lines[j])
            if not exempt_table and not (cells and "published" in cells[0].lower()):
                for k, cell in enumerate(cells[1:], start=1):
                    if k in config_columns:
                        continue
                    rest = _ANY_LINK.sub(" ", _CODE.sub(" ", cell))
                    numbers = _DIGIT_RUN.findall(rest)
                    if numbers:
                        column = header[k] if k < len(header) else f"column {k + 1}"
                        problems.append(f"{_relative(markdown, root)}:{j + 1}: table column {column!r} shows "
                                        f"{', '.join(numbers)} without a figure link: link it to its result file, "
                                        "or mark the column (header in _italics_) as configuration")
            j += 1
        i = j
    return problems


def _evaluator_versions(node: Any) -> list[int]:
    """Every evaluator version named in a document: `eval_features` / `features` strings and `evaluator_version`."""
    if isinstance(node, list):
        return [v for item in node for v in _evaluator_versions(item)]
    if not isinstance(node, dict):
        return []
    versions = []
    for key, value in node.items():
        if key in ("eval_features", "features") and isinstance(value, str):
            versions += [int(m["version"]) for m in _EVALUATOR_NAME.finditer(value)]
        elif key == "evaluator_version" and _number(value) is not None:
            versions.append(int(value))
        else:
            versions += _evaluator_versions(value)
    return versions


def recorded_evaluator_version(path: Path, root: Path = ROOT, document: Any = None,
                               unrecorded: dict[str, int] | None = None) -> int | None:
    """The evaluator version behind a result file's image metrics (lowest named), else the audit table's, else None."""
    document = _load(path) if document is None else document
    versions = _evaluator_versions(document)
    if versions:
        return min(versions)
    table = UNRECORDED_EVALUATOR_VERSIONS if unrecorded is None else unrecorded
    return table.get(_relative(path, root))


def _older_evaluator_allowed(lines: list[str]) -> set[int]:
    """Line numbers (1-based) from a `figures: older evaluator` marker line to the next heading."""
    allowed, active = set(), False
    for number, line in enumerate(lines, start=1):
        if _HEADING.match(line):
            active = False
        if OLDER_EVALUATOR_MARK.match(line.strip()):
            active = True
        if active:
            allowed.add(number)
    return allowed


def older_evaluator_links(markdown: Path, text: str | None = None, root: Path = ROOT,
                          unrecorded: dict[str, int] | None = None) -> list[str]:
    """One line per figure link to a result file of an evaluator older than CURRENT_EVALUATOR, outside marked parts."""
    text = markdown.read_text(encoding="utf-8") if text is None else text
    allowed = _older_evaluator_allowed(text.splitlines())
    versions: dict[Path, int | None] = {}
    problems = []
    for link in figure_links(markdown, text):
        target = (markdown.parent / link.path).resolve()
        if link.line in allowed or target.suffix not in (".json", ".csv") or not target.is_file():
            continue  # a missing or unreadable file is check_link's problem
        if target not in versions:
            try:
                versions[target] = recorded_evaluator_version(target, root, unrecorded=unrecorded)
            except (ValueError, UnicodeDecodeError):
                versions[target] = None
        version = versions[target]
        if version is not None and version < CURRENT_EVALUATOR:
            problems.append(
                f"{_relative(markdown, root)}:{link.line}: figure {link.text!r} -> {link.path}#{link.pointer}: "
                f"{_relative(target, root)} was scored with evaluator version {version}, older than "
                f"{CURRENT_EVALUATOR}: re-measure it or move the figure to benchmarks/HISTORY.md (the before side "
                "of a comparison: a '<!-- figures: older evaluator: REASON -->' line above it, up to the next heading)")
    return problems


def default_files(root: Path = ROOT) -> list[Path]:
    """The Markdown files whose figures are checked: README.md, benchmarks/RESULTS.md and HISTORY.md, docs/*.md."""
    return [root / "README.md", root / "benchmarks" / "RESULTS.md", root / "benchmarks" / "HISTORY.md",
            *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    """Print each disagreeing or dangling figure, unlinked results-table number and older-evaluator link; 1 if any."""
    args = sys.argv[1:] if argv is None else argv
    files = [Path(a) for a in args] or default_files()
    problems = []
    for path in files:
        problems += check_markdown(path)
        if path.name in ("RESULTS.md", "HISTORY.md"):
            problems += unlinked_table_numbers(path)
        if path.name != "HISTORY.md":
            problems += older_evaluator_links(path)
    for problem in problems:
        print(problem)
    links = sum(len(figure_links(path)) for path in files)
    print(f"{links} figure links in {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
