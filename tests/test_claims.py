"""Published figures against their result files (benchmarks/claims.py): the parser, the pointer, the rounding
rule, the exact messages, the table rule, the evaluator-version rule, and every figure link in README.md,
benchmarks/RESULTS.md, benchmarks/HISTORY.md and docs/."""

from __future__ import annotations

import importlib.util
import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ganstab_bench_claims", ROOT / "benchmarks" / "claims.py")
claims = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = claims  # dataclasses look their module up
_spec.loader.exec_module(claims)


def write(tmp_path: Path, markdown: str, result: object, name: str = "r.json") -> Path:
    """A Markdown file beside a result file in tmp_path; returns the Markdown file's path."""
    (tmp_path / name).write_text(json.dumps(result), encoding="utf-8")
    md = tmp_path / "RESULTS.md"
    md.write_text(markdown, encoding="utf-8")
    return md


# --- the figure parser -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value, decimals, error, unit", [
    ("0.397", "0.397", 3, None, ""),
    ("**0.160**", "0.160", 3, None, ""),
    ("2,819", "2819", 0, None, ""),
    ("86.1 %", "86.1", 1, None, "%"),
    ("−6.7 %", "-6.7", 1, None, "%"),
    ("+31 %", "31", 0, None, "%"),
    ("1.26×", "1.26", 2, None, "×"),
    ("0.397 ± 0.015", "0.397", 3, "0.015", ""),
    ("50.4 min", "50.4", 1, None, "min"),
    ("639 MiB", "639", 0, None, "MiB"),
    ("2.0e-07", "2.0e-07", 1, None, ""),
])
def test_parse_figure_reads_value_decimals_error_and_unit(text, value, decimals, error, unit):
    figure = claims.parse_figure(text)
    assert figure.value == Decimal(value)
    assert figure.decimals == decimals
    assert figure.error == (Decimal(error) if error else None)
    assert figure.unit == unit


@pytest.mark.parametrize("text", ["results", "0.3 0.4", "12 parsecs", "", "1,23", "v2"])
def test_parse_figure_refuses_text_that_is_not_a_figure(text):
    assert claims.parse_figure(text) is None


# --- the JSON pointer --------------------------------------------------------------------------------------

def test_resolve_pointer_follows_rfc6901_with_escapes():
    document = {"a/b": {"m~n": [10, 20, {"": 3}]}, "runs": {"lr0.5/True/0": {"fd": 1.5}}, "~1": 4, "/": 5}
    assert claims.resolve_pointer(document, "/~01") == 4       # '~0' first would make it '/' (RFC 6901 §4)
    assert claims.resolve_pointer(document, "/a~1b/m~0n/1") == 20
    assert claims.resolve_pointer(document, "/a~1b/m~0n/2/") == 3
    assert claims.resolve_pointer(document, "/runs/lr0.5~1True~10/fd") == 1.5
    assert claims.resolve_pointer(document, "") is document


@pytest.mark.parametrize("pointer, message", [
    ("/a~1b/x", "no 'x' in /a~1b (an object)"),
    ("/a~1b/m~0n/3", "no '3' in /a~1b/m~0n (a list of 3)"),
    ("/a~1b/m~0n/01", "no '01' in /a~1b/m~0n (a list of 3)"),
    ("/a~1b/m~0n/0/k", "no 'k' in /a~1b/m~0n/0 (the value 10)"),
])
def test_resolve_pointer_names_the_missing_token(pointer, message):
    with pytest.raises(KeyError) as info:
        claims.resolve_pointer({"a/b": {"m~n": [10, 20, 30]}}, pointer)
    assert info.value.args[0] == message


# --- rounding: the figure equals the value rounded to the decimals shown -----------------------------------

@pytest.mark.parametrize("text, stored, ok", [
    ("0.397", 0.3971, True),
    ("0.397", 0.39749, True),
    ("0.397", 0.39751, False),
    ("0.397", 0.3965, True),          # a tie may round either way
    ("0.396", 0.3965, True),
    ("0.396", 0.39651, False),
    ("0.40", 0.397, True),
    ("0.4", 0.397, True),
    ("0.39", 0.397, False),
    ("2,819", 2819.4, True),
    ("2,819", 2819.6, False),
    ("86.1 %", 0.861, True),
    ("86.1 %", 0.8606, True),
    ("86.1 %", 0.8604, False),
    ("86 %", 0.861, True),
    ("−6.7 %", -0.067, True),
    ("−6.7 %", 0.067, False),
    ("50.4 min", 3024.0, True),
    ("50.4 min", 3030.0, False),
    ("2.0e-07", 2.04e-07, True),
    ("2.0e-07", 2.06e-07, False),
    ("1.26×", 1.2564, True),
    ("3", 3, True),
    ("3", True, False),
])
def test_figure_matches_the_stored_value_rounded_to_its_decimals(tmp_path, text, stored, ok):
    md = write(tmp_path, f"x [{text}](r.json#/v) y\n", {"v": stored})
    problems = claims.check_markdown(md, root=tmp_path)
    assert (problems == []) is ok, problems


@pytest.mark.parametrize("stored, ok", [
    ([0.397, 0.015], True),
    ({"mean": 0.3971, "se": 0.0149}, True),
    ({"mean": 0.397, "std": 0.016}, False),
    ({"mean": 0.398, "sem": 0.015}, False),
])
def test_plus_minus_figure_checks_mean_and_error(tmp_path, stored, ok):
    md = write(tmp_path, "[0.397 ± 0.015](r.json#/fd)\n", {"fd": stored})
    assert (claims.check_markdown(md, root=tmp_path) == []) is ok


# --- one exact line per problem ----------------------------------------------------------------------------

def test_messages_name_the_file_line_figure_pointer_and_what_was_found(tmp_path):
    (tmp_path / "other.md").write_text("", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    md = write(tmp_path, "\n".join([
        "title",
        "[0.40](r.json#/arms/scratch/fd) and [0.50](r.json#/arms/scratch/fd)",
        "[7](missing.json#/a)",
        "[0.1](r.json#/arms/finetune)",
        "[fast](r.json#/arms/scratch/fd)",
        "[1](other.md#/a)",
        "[1](r.json#/arms/nobody/fd)",
        "[1](bad.json#/a)",
        "[0.4 ± 0.1](r.json#/arms/scratch/fd)",
        "[see](#/not-a-figure-link-target) [section](r.json#anchor)",
    ]) + "\n", {"arms": {"scratch": {"fd": 0.397}, "finetune": {"fd": 0.16}}})
    assert claims.check_markdown(md, root=tmp_path) == [
        "RESULTS.md:2: figure '0.50' -> r.json#/arms/scratch/fd: the file holds 0.397",
        "RESULTS.md:3: figure '7' -> missing.json#/a: the file missing.json does not exist",
        "RESULTS.md:4: figure '0.1' -> r.json#/arms/finetune: the file holds {\"fd\": 0.16}, not a number",
        "RESULTS.md:5: figure 'fast' -> r.json#/arms/scratch/fd: the link text is not a figure (a number with "
        "optional ±, thousands separators, unit)",
        "RESULTS.md:6: figure '1' -> other.md#/a: other.md is not a .json (or .csv) result file; point the figure "
        "at the file holding it",
        "RESULTS.md:7: figure '1' -> r.json#/arms/nobody/fd: r.json has no such key: no 'nobody' in /arms "
        "(an object)",
        "RESULTS.md:8: figure '1' -> bad.json#/a: bad.json is not valid JSON: Expecting property name enclosed "
        "in double quotes: line 1 column 2 (char 1)",
        "RESULTS.md:9: figure '0.4 ± 0.1' -> r.json#/arms/scratch/fd: the figure has a ± error but the file holds "
        "0.397, not a [mean, error] pair or an object with 'mean' and one of se, sem, std, err",
    ]


def test_figure_links_are_found_only_where_the_fragment_is_a_pointer(tmp_path):
    md = tmp_path / "a.md"
    md.write_text("[x](#sec) [1.5](r.json#/a) ![img](p.png) [2](sub/r.json#/b/0)\n`[9](r.json#/code)`\n[3](r.json#/c~1d)\n")
    links = claims.figure_links(md)
    assert [(link.line, link.text, link.path, link.pointer) for link in links] == [
        (1, "1.5", "r.json", "/a"), (1, "2", "sub/r.json", "/b/0"), (3, "3", "r.json", "/c~1d")]


def test_csv_rows_are_addressed_by_index_and_column(tmp_path):
    (tmp_path / "t.csv").write_text("trial,fd\n80,0.3214\n82,0.331\n", encoding="utf-8")
    md = tmp_path / "RESULTS.md"
    md.write_text("[0.321](t.csv#/0/fd) [0.33](t.csv#/1/fd) [0.34](t.csv#/1/fd)\n", encoding="utf-8")
    assert claims.check_markdown(md, root=tmp_path) == [
        "RESULTS.md:1: figure '0.34' -> t.csv#/1/fd: the file holds 0.331"]


# --- tables: every number linked, or exempt ----------------------------------------------------------------

TABLE = """intro 3 numbers in prose are not checked

| arm (3 seeds) | _batch_ | FD | verdicts |
|---|---|---|---|
| scratch 1 | 64 | [0.397](r.json#/fd) | healthy 3 on grid25 with R1 |
| finetune | 32 | **[0.16](r.json#/fd2)** (2 failed) | healthy |
| FreezeD — published (Mo et al.) | 64 | 0.5 | |

<!-- figures: not linked: an old table kept for its history -->
| a | b |
|---|---|
| x | 1.5 |

| a | b |
| --- | ---: |
| x | [`v2`](#/x) `3` ![p](p1.png) |
"""


def test_unlinked_table_numbers_are_reported_and_exemptions_respected(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text(TABLE, encoding="utf-8")
    assert claims.unlinked_table_numbers(md, root=tmp_path) == [
        "RESULTS.md:5: table column 'verdicts' shows 3 without a figure link: link it to its result file, or mark "
        "the column (header in _italics_) as configuration",
        "RESULTS.md:6: table column 'FD' shows 2 without a figure link: link it to its result file, or mark the "
        "column (header in _italics_) as configuration",
    ]


# --- current figures only: no link to a result file of an older evaluator ----------------------------------

def test_recorded_evaluator_version_reads_the_file_then_the_audit_table(tmp_path):
    files = {
        "v3.json": {"eval_features": "ganstab-evaluator-v3-classifier-aeefde1b663f", "fd": 0.2},
        "mixed.json": {"shipped": {"a": {"features": "ganstab-evaluator-v3-classifier-x"},
                                   "b": {"features": "stacked-ganstab-evaluator-v2-classifier-y"}}},
        "runs.json": {"runs": [{"eval_features": "ganstab-evaluator-v12-z"}, {"eval_features": "ganstab-evaluator-v4"}]},
        "number.json": {"evaluator_version": 2},
        "inception.json": {"eval_features": "inception-v3-pool3", "evaluator_version": True},
        "old.json": {"fd": 5.9, "evaluator_accuracy": 0.92},
        "none.json": {"modes": 25},
    }
    for name, document in files.items():
        (tmp_path / name).write_text(json.dumps(document), encoding="utf-8")
    (tmp_path / "old.csv").write_text("trial,value\n1,0.3\n", encoding="utf-8")
    table = {"old.json": 1, "old.csv": 2, "v3.json": 1}
    versions = {name: claims.recorded_evaluator_version(tmp_path / name, root=tmp_path, unrecorded=table)
                for name in [*files, "old.csv"]}
    assert versions == {"v3.json": 3, "mixed.json": 2, "runs.json": 4, "number.json": 2, "inception.json": None,
                        "old.json": 1, "none.json": None, "old.csv": 2}


OLDER = """# Results

fresh [0.21](v3.json#/fd) and old [5.9](old.json#/fd) and `[5.9](old.json#/fd)`

## Evaluator
<!-- figures: older evaluator: the before side of the comparison -->
before [5.9](old.json#/fd)

### after
again [5.9](old.json#/fd) and [1](missing.json#/fd) and [2](none.json#/modes)
<!-- figures: older evaluator: -->
[5.9](old.json#/fd)
"""


def test_older_evaluator_links_name_each_figure_and_respect_the_marker_up_to_the_next_heading(tmp_path):
    (tmp_path / "v3.json").write_text(json.dumps({"eval_features": "ganstab-evaluator-v3-c", "fd": 0.21}))
    (tmp_path / "old.json").write_text(json.dumps({"fd": 5.9}))
    (tmp_path / "none.json").write_text(json.dumps({"modes": 2}))
    md = tmp_path / "RESULTS.md"
    md.write_text(OLDER, encoding="utf-8")
    tail = ("old.json was scored with evaluator version 1, older than 3: re-measure it or move the figure to "
            "benchmarks/HISTORY.md (the before side of a comparison: a '<!-- figures: older evaluator: REASON -->' "
            "line above it, up to the next heading)")
    assert claims.older_evaluator_links(md, root=tmp_path, unrecorded={"old.json": 1}) == [
        f"RESULTS.md:3: figure '5.9' -> old.json#/fd: {tail}",
        f"RESULTS.md:10: figure '5.9' -> old.json#/fd: {tail}",
        f"RESULTS.md:12: figure '5.9' -> old.json#/fd: {tail}",   # a marker with no reason is no marker
    ]
    assert claims.older_evaluator_links(md, root=tmp_path, unrecorded={}) == []


def test_a_version_2_figure_put_back_into_results_is_refused():
    results = ROOT / "benchmarks" / "RESULTS.md"
    text = results.read_text(encoding="utf-8")
    assert "(results/finetune.json#/summary/finetune/fd/mean)" not in text
    lines = text.splitlines()
    line = next(n for n, row in enumerate(lines, start=1) if row.startswith("**Fine-tuning on 100 images"))
    lines[line - 1] = "Fine-tuning: FD [0.160](results/finetune.json#/summary/finetune/fd/mean) from a trained run."
    text = "\n".join(lines) + "\n"
    assert claims.older_evaluator_links(results, text=text) == [
        f"benchmarks/RESULTS.md:{line}: figure '0.160' -> results/finetune.json#/summary/finetune/fd/mean: "
        "benchmarks/results/finetune.json was scored with evaluator version 2, older than 3: re-measure it or move "
        "the figure to benchmarks/HISTORY.md (the before side of a comparison: a '<!-- figures: older evaluator: "
        "REASON -->' line above it, up to the next heading)"]


@pytest.mark.parametrize("markdown", [path for path in claims.default_files() if path.name != "HISTORY.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_results_readme_and_docs_link_no_figure_of_an_older_evaluator(markdown):
    assert claims.older_evaluator_links(markdown) == []


def test_the_older_evaluator_marker_is_used_only_where_the_audit_put_it():
    marked = {}
    for path in claims.default_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        found = [n for n, line in enumerate(lines, start=1) if claims.OLDER_EVALUATOR_MARK.match(line.strip())]
        if found:
            marked[path.relative_to(ROOT).as_posix()] = len(found)
    assert marked == {"benchmarks/RESULTS.md": 1}


def test_every_result_file_with_an_evaluator_records_its_version_and_the_audit_table_names_real_files():
    for relative in claims.UNRECORDED_EVALUATOR_VERSIONS:
        assert (ROOT / relative).is_file(), relative
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "evaluator_accuracy" in document:
            assert claims.recorded_evaluator_version(path) is not None, path.name
    assert claims.recorded_evaluator_version(ROOT / "benchmarks/results/shipped_evaluator.json") == 3
    assert claims.recorded_evaluator_version(ROOT / "benchmarks/results/stacked-floor-v3.json") == 3
    assert claims.recorded_evaluator_version(ROOT / "benchmarks/results/modes2d.json") is None


# --- the published files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("markdown", claims.default_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_published_figure_agrees_with_its_result_file(markdown):
    assert claims.check_markdown(markdown) == []


@pytest.mark.parametrize("name", ["RESULTS.md", "HISTORY.md"])
def test_every_number_in_a_results_table_is_linked_or_exempt(name):
    assert claims.unlinked_table_numbers(ROOT / "benchmarks" / name) == []


def test_the_results_and_readme_carry_figure_links():
    counts = {path.name: len(claims.figure_links(path)) for path in claims.default_files()}
    assert counts["RESULTS.md"] >= 100
    assert counts["HISTORY.md"] >= 900
    assert counts["README.md"] >= 2


# --- the summaries the figures point at, recomputed from stored rows ---------------------------------------

def _bench_module(name: str):
    """A benchmark script imported by path (benchmarks/ is not a package; its scripts import `common`)."""
    bench_dir = str(ROOT / "benchmarks")
    if bench_dir not in sys.path:
        sys.path.insert(0, bench_dir)
    spec = importlib.util.spec_from_file_location(f"ganstab_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_summary_stats_mean_standard_error_and_count_of_the_finite_numbers():
    common = _bench_module("common")
    stats = common.summary_stats([1.0, 2.0, 3.0, None, float("nan"), True])
    assert stats["n"] == 3
    assert stats["mean"] == pytest.approx(2.0, abs=1e-12)
    assert stats["se"] == pytest.approx(1.0 / 3 ** 0.5, abs=1e-12)  # stdev of 1, 2, 3 is 1
    assert common.summary_stats([4.5]) == {"mean": 4.5, "se": 0.0, "n": 1}
    assert common.summary_stats([None, "x"]) is None


def test_confusion_summary_counts_verdicts_against_truth():
    confusion = _bench_module("confusion")
    runs = [{"verdict": "failed", "failed": True, "healthy_preset": False},
            {"verdict": "failed", "failed": False, "healthy_preset": True},
            {"verdict": "warnings", "failed": True, "healthy_preset": False},
            {"verdict": "healthy", "failed": False, "healthy_preset": True},
            {"verdict": "healthy", "failed": False, "healthy_preset": False}]
    assert confusion.summarise({"runs": runs}) == {
        "verdicts": {"failed": {"truly_failed": 1, "not_failed": 1}, "warnings": {"truly_failed": 1, "not_failed": 0},
                     "healthy": {"truly_failed": 0, "not_failed": 2}},
        "missed": 1, "truly_failed": 2, "healthy_preset_alarms": 1, "healthy_preset_runs": 2}


def test_fashion_summary_groups_variants_and_aligns_on_the_images_every_run_reached():
    fashion = _bench_module("fashion")
    keys = {key: None for key in fashion.KEYS}

    def row(variant, steps, fds_at):
        points = [{**keys, "images_seen": images, "time": images / 1000, "fd": fd} for images, fd in fds_at]
        return {"variant": variant, "steps": steps, "images_seen": points[-1]["images_seen"],
                "final": {**keys, "fd": fds_at[-1][1]}, "points": points}

    payload = {"rows": [row("a", 100, [(16, 9.0), (32, 5.0), (40, 4.0)]),
                        row("a", 300, [(16, 7.0), (32, 3.0)]),
                        row("progressive", 10, [(8, 50.0)])]}
    summary = fashion.summarise(payload, eval_images=16)
    assert summary["equal_images"] == 32          # both 'a' runs reached 32; the slow variant is left out
    a = summary["variants"]["a"]
    assert a["steps"] == {"mean": 200.0, "se": 100.0, "n": 2}
    assert a["final"]["fd"]["mean"] == pytest.approx(3.5, abs=1e-12)
    assert a["at_equal_images"]["fd"] == {"mean": 4.0, "se": 1.0, "n": 2}
    assert a["at_equal_images"]["time"]["mean"] == pytest.approx(0.032, abs=1e-12)
    assert summary["variants"]["progressive"]["at_equal_images"]["fd"] is None


def test_a_pointer_in_its_uri_fragment_form_is_percent_decoded(tmp_path):
    # RFC 6901 section 6: in a URI fragment a key with a space, '+' or parentheses is percent-encoded
    md = write(tmp_path, "\n".join([
        "[1.68](r.json#/phases/real%20features%20%2B%20probs/seconds)",
        "[5.43](r.json#/phases/evaluate_images%20%28all%29/seconds)",
        "[1.69](r.json#/phases/real%20features%20%2B%20probs/seconds)",
    ]) + "\n", {"phases": {"real features + probs": {"seconds": 1.6812}, "evaluate_images (all)": {"seconds": 5.429}}})
    assert claims.check_markdown(md, root=tmp_path) == [
        "RESULTS.md:3: figure '1.69' -> r.json#/phases/real%20features%20%2B%20probs/seconds: the file holds 1.6812",
    ]
