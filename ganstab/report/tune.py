"""The HTML report of a tuning study, built from plain data (the study is read by `ganstab.tune`).

Self-contained like the other reports: every figure and sample grid is inlined as a data URI.
Sections: summary, optimisation history, the trade-off of FD against recall over all trials
(feasible and infeasible marked, the winner ringed), parameter importances, the best trials' final
samples and objective curves, the re-run of the top configurations with fresh seeds, and every trial.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ganstab.report import figures as figs
from ganstab.report.html import cards, esc, fmt, img_tag, page, sample_paths, section, table
from ganstab.rundir import REPORT_FILE, atomic_write, read_records

__all__ = ["TuneView", "TUNE_SECTIONS", "TRADEOFF_AXES", "tradeoff_points", "tune_report_html", "write_tune_report"]

TUNE_SECTIONS: tuple[str, ...] = ("summary", "history", "tradeoff", "importance", "best", "rerun", "trials")
TRADEOFF_AXES: tuple[str, str] = ("recall", "fd")  # x, y: diversity traded for fidelity


@dataclass
class TuneView:
    """What the tune report shows: the trials as rows, importances, the best runs and the re-run table."""

    out: Path
    metric: str
    higher_is_better: bool
    trials: list[dict[str, Any]] = field(default_factory=list)  # number, state, value, params, duration, run, note
    importances: Optional[dict[str, float]] = None
    importance_note: str = ""
    best_runs: list[tuple[str, Path]] = field(default_factory=list)  # (label, run folder), best first
    rerun: list[dict[str, Any]] = field(default_factory=list)  # rank, trial, search_value, mean, se, n, params
    winner: Optional[str] = None
    constraints: list[str] = field(default_factory=list)  # as written: 'recall>=0.3'
    winner_trial: Optional[int] = None


def _summary(view: TuneView) -> str:
    states: dict[str, int] = {}
    for row in view.trials:
        states[row["state"]] = states.get(row["state"], 0) + 1
    items = [("trials", str(len(view.trials)))] + [(state.lower(), str(n)) for state, n in sorted(states.items())]
    items.append(("objective", f"{view.metric} ({'max' if view.higher_is_better else 'min'})"))
    items.append(("constraints", ", ".join(view.constraints) or "none"))
    if view.winner:
        items.append(("winner after re-runs", view.winner))
    return cards(items) + ('<p>The winner is written to <code>best.yaml</code>: train it with '
                           '<code>ganstab train --config best.yaml</code>.</p>' if view.winner else "")


def _history(view: TuneView) -> str:
    done = [r for r in view.trials if r["state"] == "COMPLETE" and r["value"] is not None]
    numbers, values, best = [], [], []
    pick = max if view.higher_is_better else min
    for row in sorted(done, key=lambda r: r["number"]):
        numbers.append(row["number"])
        values.append(float(row["value"]))
        feasible = [float(r["value"]) for r in done if r["number"] <= row["number"] and r.get("feasible") is not False]
        best.append(pick(feasible) if feasible else math.nan)  # an infeasible trial is never the best so far
    return img_tag(figs.history_figure(numbers, values, best, view.metric, view.higher_is_better),
                   "optimisation history")


def _status(row: dict[str, Any], constrained: bool) -> str:
    """'stopped' (pruned or failed), else 'completed' in a study without constraints (every trial counts), else
    'feasible' or 'infeasible'."""
    if row["state"] != "COMPLETE":
        return "stopped"
    if not constrained:
        return "completed"
    return "infeasible" if row.get("feasible") is False else "feasible"


def tradeoff_points(view: TuneView) -> tuple[list[tuple[float, float, str]], Optional[tuple[float, float]]]:
    """((recall, fd, status) of every trial that logged both, (recall, fd) of the winner or None)."""
    x_name, y_name = TRADEOFF_AXES
    points, chosen = [], None
    for row in view.trials:
        scores = row.get("scores") or {}
        if scores.get(x_name) is None or scores.get(y_name) is None:
            continue
        points.append((float(scores[x_name]), float(scores[y_name]), _status(row, bool(view.constraints))))
        if row["number"] == view.winner_trial:
            chosen = (float(scores[x_name]), float(scores[y_name]))
    return points, chosen


def _tradeoff(view: TuneView) -> str:
    points, chosen = tradeoff_points(view)
    x_name, y_name = TRADEOFF_AXES
    if not points:
        return (f'<p class="note">No trial logged both {x_name} and {y_name} (2-D mixtures are scored by modes '
                "captured instead).</p>")
    png = figs.tradeoff_figure(points, f"{x_name} (higher: more of the data covered)",
                               f"{y_name} (lower is better)", chosen)
    return (f"<p>Every trial's final (or, when pruned, last) evaluation: {y_name} against {x_name}, so the price "
            "of a lower FD in diversity shows. Constraints: " + esc(", ".join(view.constraints) or "none") + ".</p>"
            + img_tag(png, f"{y_name} against {x_name} of all trials"))


def _importance(view: TuneView) -> str:
    if not view.importances:
        return f'<p class="note">{esc(view.importance_note or "No importances.")}</p>'
    return img_tag(figs.importance_figure(view.importances), "parameter importances")


def _best(view: TuneView) -> str:
    if not view.best_runs:
        return '<p class="note">No completed trial.</p>'
    figures = []
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for label, run in view.best_runs:
        paths = sample_paths(run)
        if paths:
            png = paths[-1].read_bytes()
            figures.append(f'<figure>{img_tag(png, f"final samples of {label}", "grid")}'
                           f"<figcaption>{esc(label)}</figcaption></figure>")
        curves[label] = figs.series(read_records(run), f"eval_{view.metric}")
    grids = f'<div class="grids">{"".join(figures)}</div>' if figures else '<p class="note">No sample grids.</p>'
    return grids + img_tag(figs.curves_figure(view.metric, curves), f"{view.metric} over training")


def _rerun(view: TuneView) -> str:
    if not view.rerun:
        return '<p class="note">No re-runs (no completed trial, or --rerun-seeds 0).</p>'
    rows = [[esc(r["rank"]), esc(r["trial"]), esc(fmt(r["search_value"])), esc(fmt(r["mean"])),
             esc(fmt(r["se"], 2)), esc(r["n"]), esc(json.dumps(r["params"]))] for r in view.rerun]
    return ("<p>The top configurations re-trained with fresh seeds, ranked by their mean on the validation reference "
            "(it chooses the winner, so it never reads the test reference): the search's own "
            "value is one lucky draw (the winner's curse).</p>" +
            table(["rank", "trial", "search value", "mean (validation)", "s.e.", "seeds", "params"], rows,
                  [True, True, True, True, True, True, False]))


def _trials(view: TuneView) -> str:
    """Every trial; the feasible column only when the study has constraints (without, every trial counts)."""
    feasible = {None: "", True: "yes", False: "no"}
    judged = bool(view.constraints)
    rows = [[esc(r["number"]), esc(r["state"]), esc(fmt(r["value"])),
             *([esc(feasible[r.get("feasible")])] if judged else []),
             esc(fmt(r["duration"], 3)), esc(json.dumps(r["params"])), esc(r.get("note", ""))] for r in view.trials]
    return table(["trial", "state", view.metric, *(["feasible"] if judged else []), "seconds", "params", "note"], rows,
                 [True, False, True, *([False] if judged else []), True, False, False])


def tune_report_html(view: TuneView) -> str:
    """The HTML page of a tuning study."""
    builders = {"summary": ("Summary", _summary), "history": ("Optimisation history", _history),
                "tradeoff": ("Trade-off: FD against recall", _tradeoff),
                "importance": ("Parameter importances", _importance), "best": ("Best trials", _best),
                "rerun": ("Re-runs with fresh seeds", _rerun), "trials": ("Trials", _trials)}
    sections = [section(key, title, lambda build=build: build(view)) for key, (title, build) in builders.items()]
    short = {"summary": "Summary", "history": "History", "tradeoff": "Trade-off", "importance": "Importances", "best": "Best",
             "rerun": "Re-runs", "trials": "Trials"}
    nav = [(key, short[key]) for key in TUNE_SECTIONS]
    subtitle = esc(f"{len(view.trials)} trials · objective {view.metric} · {view.out.resolve()}")
    return page(f"ganstab tune: {view.out.resolve().name}", subtitle, nav, sections)


def write_tune_report(view: TuneView) -> Path:
    """Write OUT/report.html of a tuning study."""
    return atomic_write(view.out / REPORT_FILE, tune_report_html(view))
