"""Figures for the HTML report, rendered with matplotlib (Agg) straight to PNG bytes.

Timeline figures (losses, D outputs, gradient norms) carry the doctor's findings as shaded step
ranges coloured by severity and numbered like the findings table, and recoveries as dashed
vertical lines at the step rolled back to.
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Optional, Sequence

from ganstab.diagnose.findings import worst_first
from ganstab.diagnose.series import as_number
from ganstab.rundir import is_metric_key, is_test_record

SEVERITY_COLORS: dict[str, str] = {"error": "#d62728", "warning": "#ff9f1c", "info": "#8c6bb1"}
LINE_COLORS: tuple[str, ...] = ("#1f5f99", "#2a9d4b", "#c44e52", "#8172b2", "#937860", "#da8bc3", "#4c4c4c",
                                "#ccb974", "#64b5cd", "#e07b39")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_png(fig: Any) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def series(records: Sequence[Mapping[str, Any]], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(x, y) of the records where both `x` and `key` are finite numbers."""
    xs, ys = [], []
    for record in records:
        a, b = as_number(record.get(x)), as_number(record.get(key))
        if a is not None and b is not None:
            xs.append(a)
            ys.append(b)
    return xs, ys


def mark_findings(ax: Any, findings: Sequence[Mapping[str, Any]], recoveries: Sequence[Mapping[str, Any]] = (),
                  numbers: bool = True) -> None:
    """Shade each finding's step range by severity (numbered #1, #2, ...) and draw recoveries as dashed lines."""
    for index, finding in enumerate(findings, start=1):
        color = SEVERITY_COLORS.get(str(finding.get("severity")), "#999999")
        start, end = as_number(finding.get("start_step")), as_number(finding.get("end_step"))
        if start is None:
            continue
        end = start if end is None else end
        if end > start:
            ax.axvspan(start, end, color=color, alpha=0.16, linewidth=0)
        ax.axvline(start, color=color, alpha=0.7, linewidth=1.0)
        if numbers:
            ax.annotate(f"#{index}", xy=(start, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -10),
                        textcoords="offset points", fontsize=7, color=color, fontweight="bold")
    for recovery in recoveries:
        step = as_number(recovery.get("step"))
        if step is not None:
            ax.axvline(step, color="#333333", linestyle="--", linewidth=1.0, alpha=0.8)


def _severity_legend(ax, findings: Sequence[Mapping[str, Any]], recoveries: Sequence[Mapping[str, Any]]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    present = [s for s in worst_first() if any(f.get("severity") == s for f in findings)]
    for severity in present:
        handles.append(Patch(color=SEVERITY_COLORS[severity], alpha=0.35))
        labels.append(f"finding: {severity}")
    if recoveries:
        handles.append(Line2D([], [], color="#333333", linestyle="--"))
        labels.append("recovery (rollback)")
    ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)


def timeline_figure(records: Sequence[Mapping[str, Any]], panels: Sequence[tuple[str, Sequence[str]]],
                    findings: Sequence[Mapping[str, Any]] = (), recoveries: Sequence[Mapping[str, Any]] = (),
                    log_panels: Sequence[str] = ()) -> Optional[bytes]:
    """One row of panels (title, keys) over G steps with findings marked; None when no key has data."""
    present = [(title, [k for k in keys if series(records, k)[0]]) for title, keys in panels]
    present = [(title, keys) for title, keys in present if keys]
    if not present:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(5.4 * len(present) if len(present) > 1 else 10.5, 3.3),
                             dpi=100, squeeze=False)
    for ax, (title, keys) in zip(axes[0], present):
        for index, key in enumerate(keys):
            xs, ys = series(records, key)
            ax.plot(xs, ys, label=key, color=LINE_COLORS[index % len(LINE_COLORS)], linewidth=1.4,
                    marker="o" if len(xs) < 25 else None, markersize=3)
        mark_findings(ax, findings, recoveries)
        if title in log_panels and all(v > 0 for k in keys for v in series(records, k)[1]):
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("G step", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        _severity_legend(ax, findings, recoveries)
    width = fig.get_figwidth()
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.2 / width, bottom=0.16, top=0.9, wspace=0.9 / 5.4)
    return to_png(fig)


def eval_figure(records: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]] = (),
                columns: int = 3) -> Optional[bytes]:
    """One small panel per `eval_*` key over G steps; None when no evaluation line exists."""
    records = [r for r in records if not is_test_record(r)]  # the curves of validation lines; test: the summary
    keys = sorted({k for r in records for k in r if is_metric_key(k) and series(records, k)[0]})
    if not keys:
        return None
    plt = _pyplot()
    cols = min(columns, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols if cols > 1 else 10.5, 2.7 * rows), dpi=100,
                             squeeze=False)
    for ax, key in zip(axes.flat, keys):
        xs, ys = series(records, key)
        ax.plot(xs, ys, color=LINE_COLORS[0], linewidth=1.4, marker="o", markersize=3)
        mark_findings(ax, [f for f in findings if str(f.get("metric") or "") == key], numbers=False)
        ax.set_title(key[5:], fontsize=10)
        ax.set_xlabel("G step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    width, height = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.3 / height,
                        wspace=0.8 / 3.6, hspace=1.05 / 2.7)
    return to_png(fig)


def bar_chart(variants: Sequence[str], metrics: Sequence[str], stats: Mapping[str, Mapping[str, Mapping[str, Any]]],
              columns: int = 3, highlight: Optional[str] = None) -> Optional[bytes]:
    """Horizontal bars (mean, error bar = s.e.) per variant, one panel per metric; None when empty."""
    metrics = [m for m in metrics if any(stats[v].get(m, {}).get("mean") is not None for v in variants)]
    if not metrics or not variants:
        return None
    plt = _pyplot()
    cols = min(columns, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    longest = max(len(v) for v in variants)
    height = max(1.4, 0.32 * len(variants) + 0.9)
    fig, axes = plt.subplots(rows, cols, figsize=(min(16.0, 3.3 * cols + 0.065 * longest + 0.45), height * rows),
                             dpi=100, squeeze=False, sharey=True)
    positions = list(range(len(variants)))
    for ax, metric in zip(axes.flat, metrics):
        means = [stats[v].get(metric, {}).get("mean") for v in variants]
        errors = [stats[v].get(metric, {}).get("se") or 0.0 for v in variants]
        values = [m if m is not None else 0.0 for m in means]
        colors = [LINE_COLORS[0] if metric != highlight else "#2a9d4b" for _ in variants]
        ax.barh(positions, values, xerr=errors, color=colors, alpha=0.85, capsize=3,
                error_kw={"elinewidth": 1.0, "ecolor": "#333333"})
        for pos, mean in zip(positions, means):
            if mean is None:
                ax.text(0, pos, " n/a", va="center", fontsize=7, color="#777777")
        ax.set_title(metric + (" (main)" if metric == highlight else ""), fontsize=10)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(positions)
    axes[0][0].set_yticklabels(variants)
    axes[0][0].invert_yaxis()
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    width, fig_height = fig.get_figwidth(), fig.get_figheight()
    left = min(0.6, (0.065 * longest + 0.25) / width)  # room for the variant names (fontsize 8)
    fig.subplots_adjust(left=left, right=1 - 0.2 / width, bottom=0.4 / fig_height, top=1 - 0.3 / fig_height,
                        wspace=0.12, hspace=0.75 / height)
    return to_png(fig)


def curve_chart(metric: str, curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]]
                ) -> Optional[bytes]:
    """Mean (band = +- s.e. over seeds) of one metric against images seen, one line per variant."""
    curves = {name: c for name, c in curves.items() if c[0]}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10.5, 4.2), dpi=100)
    for index, (name, (xs, means, errors)) in enumerate(curves.items()):
        color = LINE_COLORS[index % len(LINE_COLORS)]
        ax.plot(xs, means, label=name, color=color, linewidth=1.5, marker="o" if len(xs) < 25 else None,
                markersize=3)
        ax.fill_between(xs, [m - e for m, e in zip(means, errors)], [m + e for m, e in zip(means, errors)],
                        color=color, alpha=0.15, linewidth=0)
    ax.set_title(f"{metric} vs images seen (mean over seeds, band = s.e.)", fontsize=10)
    return _labelled_png(fig, ax, "images seen", metric)


def history_figure(numbers: Sequence[int], values: Sequence[float], best: Sequence[float], metric: str,
                   higher_is_better: bool) -> Optional[bytes]:
    """Each completed trial's value (dots) and the best so far (a step line) against the trial number."""
    if not numbers:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10.5, 3.6), dpi=100)
    ax.plot(numbers, values, "o", color=LINE_COLORS[0], markersize=5, label=f"{metric} of a trial")
    ax.step(numbers, best, where="post", color=LINE_COLORS[2], linewidth=1.6, label="best so far")
    ax.set_xlabel("trial", fontsize=9)
    ax.set_ylabel(f"{metric} ({'higher' if higher_is_better else 'lower'} is better)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return to_png(fig)


def importance_figure(importances: Mapping[str, float]) -> Optional[bytes]:
    """Horizontal bars of parameter importances, the most important on top."""
    if not importances:
        return None
    names = list(importances)[::-1]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10.5, 0.9 + 0.35 * len(names)), dpi=100)
    ax.barh(names, [importances[n] for n in names], color=LINE_COLORS[0])
    ax.set_xlabel("importance (optuna.importance.get_param_importances, normalised to sum 1)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return to_png(fig)


def curves_figure(metric: str, curves: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> Optional[bytes]:
    """One line per run of a metric against G steps; None when no run has a point."""
    curves = {name: c for name, c in curves.items() if c[0]}
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10.5, 3.8), dpi=100)
    for index, (name, (xs, ys)) in enumerate(curves.items()):
        ax.plot(xs, ys, label=name, color=LINE_COLORS[index % len(LINE_COLORS)], linewidth=1.5, marker="o",
                markersize=3)
    return _labelled_png(fig, ax, "G step", metric)


TRADEOFF_STYLES: dict[str, tuple[str, str, str]] = {  # status -> (marker, colour, legend label)
    "feasible": ("o", LINE_COLORS[0], "feasible"),
    "infeasible": ("x", LINE_COLORS[2], "infeasible (breaks a constraint)"),
    "completed": ("o", LINE_COLORS[0], "completed (no constraints)"),
    "stopped": ("^", "#9a9a9a", "pruned or failed (last evaluation)"),
}


def tradeoff_figure(points: Sequence[tuple[float, float, str]], x_label: str, y_label: str,
                    chosen: Optional[tuple[float, float]] = None) -> Optional[bytes]:
    """A scatter of trials (x, y, status: feasible | infeasible | completed | stopped), the chosen one ringed;
    None when no trial has both values."""
    points = [(x, y, status) for x, y, status in points if as_number(x) is not None and as_number(y) is not None]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10.5, 4.2), dpi=100)
    for status, (marker, color, label) in TRADEOFF_STYLES.items():
        mine = [(x, y) for x, y, s in points if s == status]
        if mine:
            ax.scatter([x for x, _ in mine], [y for _, y in mine], marker=marker, color=color, s=28, label=label)
    if chosen is not None and as_number(chosen[0]) is not None and as_number(chosen[1]) is not None:
        ax.scatter([chosen[0]], [chosen[1]], marker="o", s=180, facecolors="none", edgecolors=LINE_COLORS[1],
                   linewidths=2.0, label="chosen (winner)")
    return _labelled_png(fig, ax, x_label, y_label)


def _labelled_png(fig: Any, ax: Any, x_label: str, y_label: str) -> bytes:
    """Axis labels, a light grid and the legend right of the axes; the figure as PNG bytes (closed)."""
    ax.set_xlabel(x_label, fontsize=9)
    ax.set_ylabel(y_label, fontsize=9)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return to_png(fig)
