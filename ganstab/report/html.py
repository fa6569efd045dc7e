"""Self-contained HTML reports of a run or an ablation (PNG images inlined as base64, no scripts).

`write_report(path)` decides by the folder's contents: a run directory (config.yaml) gets its
configuration, training curves with the doctor's findings marked on the timeline, evaluation
curves, sample grids over time, findings and recoveries; an ablation folder (ablation.json) gets
the ranked summary table with mean +- standard error, bar charts with error bars, the main metric
against images seen, budget tables and links to every run's own report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

from ganstab.config import Config, read_yaml, to_dict
from ganstab.diagnose import Finding, read_finding_lines, verdict
from ganstab.diagnose.findings import worst_first
from ganstab.errors import ReportError
from ganstab.report import figures as figs
from ganstab.rundir import (REPORT_FILE, RunDir, atomic_write, is_ablation_dir, is_run_dir, is_test_record, read_jsonl,
                            read_metrics, skipped_note)
from ganstab.summary import FINAL_SPLIT, RANKING_SPLIT, main_curve, snapshot, split_of, summarize

__all__ = ["write_report", "run_report_html", "ablation_report_html", "sample_paths", "RUN_SECTIONS",
           "ABLATION_SECTIONS", "REPORT_FILE", "ReportError", "is_run_dir", "is_ablation_dir"]
MAX_SAMPLE_GRIDS = 12
RUN_SECTIONS: tuple[str, ...] = ("summary", "config", "losses", "d-outputs", "augment", "grad-norms", "metrics", "samples",
                                 "findings", "recoveries")
ABLATION_SECTIONS: tuple[str, ...] = ("summary", "bars", "curve", "budgets", "runs", "skipped")

_CSS = """
:root { --fg:#1d232b; --muted:#5d6875; --line:#dfe3e8; --bg:#ffffff; --panel:#f6f8fa; --accent:#1f5f99; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#17324d; color:#fff; padding:18px 32px 12px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .sub { color:#c7d5e3; font-size:13px; }
nav { display:flex; flex-wrap:wrap; gap:4px 14px; padding:8px 32px; background:#eef2f6;
      border-bottom:1px solid var(--line); font-size:13px; position:sticky; top:0; }
nav a { color:var(--accent); text-decoration:none; }
main { max-width:1180px; margin:0 auto; padding:8px 32px 40px; }
section { margin:22px 0 8px; }
h2 { font-size:17px; margin:0 0 10px; padding-bottom:4px; border-bottom:2px solid var(--line); }
.cards { display:flex; flex-wrap:wrap; gap:10px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:8px 12px; min-width:120px; }
.card .k { color:var(--muted); font-size:11px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:17px; font-weight:600; }
.card.error .v { color:#c62828; } .card.warning .v { color:#d97a00; }
img.plot { max-width:100%; height:auto; display:block; border:1px solid var(--line); border-radius:4px; }
.grids { display:grid; grid-template-columns:repeat(auto-fill, minmax(300px, 1fr)); gap:12px; }
figure { margin:0; background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:6px; }
figure img { width:100%; height:auto; display:block; image-rendering:pixelated; }
figcaption { font-size:12px; color:var(--muted); text-align:center; padding-top:4px; }
table { border-collapse:collapse; font-size:12.5px; }
th, td { border:1px solid var(--line); padding:4px 8px; text-align:left; vertical-align:top; }
th { background:#eef2f6; font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tr.changed td:nth-child(2) { font-weight:600; color:#0b5394; }
.scroll { overflow-x:auto; }
.pair { display:flex; flex-wrap:wrap; gap:0 24px; align-items:flex-start; }
.cfg { columns:2 460px; column-gap:24px; }
.cfg table { width:100%; break-inside:avoid; margin-bottom:10px; }
.sev { display:inline-block; padding:1px 7px; border-radius:9px; color:#fff; font-size:11px; font-weight:600; }
.sev.error { background:#d62728; } .sev.warning { background:#e08a00; } .sev.info { background:#8c6bb1; }
.note { color:var(--muted); font-style:italic; }
.best td { background:#eef8ee; }
details { margin-top:10px; } summary { cursor:pointer; color:var(--accent); }
code { background:var(--panel); padding:0 3px; border-radius:3px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:20px; }
"""


# --------------------------------------------------------------------------------------------- helpers
def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    """A data: URI for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(png: Optional[bytes], alt: str, css: str = "plot") -> str:
    """An <img> with the PNG inlined, or a note when there is nothing to show."""
    if not png:
        return f'<p class="note">{esc(alt)}: no data.</p>'
    return f'<img class="{css}" alt="{esc(alt)}" src="{data_uri(png)}">'


def fmt(value: Any, digits: int = 4) -> str:
    """A short human form of a number (ints as ints, floats with `digits` significant digits)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def mean_se_text(stats: Optional[Mapping[str, Any]]) -> str:
    """'mean ± s.e.' (or 'mean' when one run, 'n/a' when none)."""
    if not stats or stats.get("mean") is None:
        return "n/a"
    text = fmt(stats["mean"])
    if stats.get("se") is not None:
        text += f" ± {fmt(stats['se'], 2)}"
    return text


def section(section_id: str, title: str, build: Callable[[], str]) -> str:
    """A <section id=...> whose body comes from `build`; a failing builder leaves a note, not a crash."""
    try:
        body = build()
    except Exception as exc:  # a broken piece must not lose the rest of the report
        body = f'<p class="note">This section could not be rendered: {esc(type(exc).__name__)}: {esc(exc)}</p>'
    return f'<section id="{esc(section_id)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


def page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], sections: Sequence[str]) -> str:
    """A complete HTML document with inline CSS, a navigation bar and the sections."""
    links = " ".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in nav)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{esc(title)}</h1><div class=\"sub\">{subtitle}</div></header>\n"
        f"<nav>{links}</nav>\n<main>\n" + "\n".join(sections) + "\n</main>\n"
        f"<footer>written by ganstab on {esc(stamp)}</footer>\n</body>\n</html>\n"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] = (),
          row_classes: Sequence[str] = ()) -> str:
    """An HTML table; cells are inserted as given (escape them first), numeric columns right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cls = f' class="{row_classes[index]}"' if index < len(row_classes) and row_classes[index] else ""
        cells = "".join(
            f'<td class="num">{c}</td>' if (i < len(numeric) and numeric[i]) else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def cards(items: Sequence[tuple[str, str]], classes: Mapping[str, str] | None = None) -> str:
    """A row of small key/value cards."""
    classes = classes or {}
    return '<div class="cards">' + "".join(
        f'<div class="card {esc(classes.get(k, ""))}"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>'
        for k, v in items
    ) + "</div>"


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted key: value}."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# ------------------------------------------------------------------------------------------ run report
def _run_config(run_dir: Path) -> dict:
    try:
        data = read_yaml(RunDir(run_dir).config)  # with its limits: an alias bomb is refused, not rendered
    except Exception:  # the report shows what it can
        return {}
    return data if isinstance(data, dict) else {}


def _default_config() -> dict:
    return to_dict(Config())


def sample_paths(run_dir: Path, limit: int = MAX_SAMPLE_GRIDS) -> list[Path]:
    """Up to `limit` sample grids evenly spread over the run, always with the first and the last."""
    paths = sorted(RunDir(run_dir).samples.glob("*.png"))
    if len(paths) <= limit:
        return paths
    picks = sorted({round(i * (len(paths) - 1) / (limit - 1)) for i in range(limit)})
    return [paths[i] for i in picks]


def _step_of_sample(path: Path) -> str:
    digits = "".join(c for c in path.stem if c.isdigit())
    return str(int(digits)) if digits else path.stem


def _config_section(config: dict) -> str:
    if not config:
        return '<p class="note">config.yaml could not be read.</p>'
    defaults = flatten(_default_config())
    flat = flatten(config)
    changed = [(k, v) for k, v in flat.items() if k != "out" and (k not in defaults or defaults[k] != v)]

    def shown(value: Any) -> str:
        return esc(json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else value)

    rows = [[f"<code>{esc(k)}</code>", shown(v), shown(defaults.get(k, "")) if k in defaults else ""]
            for k, v in changed]
    half = (len(rows) + 1) // 2 if len(rows) > 8 else len(rows)
    halves = [rows[:half], rows[half:]] if rows[half:] else [rows]
    head = (f"<p>{len(changed)} setting{'s' if len(changed) != 1 else ''} differ from the defaults "
            f"(output folder <code>{esc(config.get('out', ''))}</code>):</p><div class=\"pair\">"
            + "".join(table(["key", "value", "default"], part) for part in halves) + "</div>"
            if changed else "<p>Every setting is at its default.</p>")
    groups: dict[str, list[tuple[str, Any]]] = {}
    for key, value in flat.items():
        groups.setdefault(key.split(".")[0] if "." in key else "run", []).append((key, value))
    blocks = []
    for group, items in groups.items():
        keys = {k for k, _ in changed}
        rows = [[f"<code>{esc(k)}</code>", shown(v)] for k, v in items]
        blocks.append(table([esc(group), "value"], rows, row_classes=["changed" if k in keys else "" for k, _ in items]))
    return (head + '<details><summary>Full resolved config (config.yaml; changed values in bold)</summary>'
            f'<div class="cfg">{"".join(blocks)}</div></details>')


def _findings_table(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return '<p>No findings: the doctor saw no problem in this run.</p>'
    rows = []
    for index, f in enumerate(findings, start=1):
        severity = esc(f.get("severity", "?"))
        evidence = ", ".join(f"{esc(k)}={esc(fmt(v))}" for k, v in (f.get("evidence") or {}).items())
        about = f" [{esc(f['metric'])}]" if f.get("metric") else ""
        rows.append([f"#{index}", f'<span class="sev {severity}">{severity}</span>',
                     f"{esc(f.get('start_step'))}&ndash;{esc(f.get('end_step'))}",
                     f"<code>{esc(f.get('code', ''))}</code>{about}", esc(f.get("message", "")),
                     esc(f.get("advice", "")), evidence])
    counts = {s: sum(1 for f in findings if f.get("severity") == s) for s in worst_first()}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n)
    return (f"<p>{len(findings)} finding{'s' if len(findings) != 1 else ''} ({esc(summary)}); the numbers mark "
            "their step ranges on the training curves above.</p>"
            + table(["#", "severity", "steps", "code", "message", "advice", "evidence"], rows))


def _recoveries_table(recoveries: Sequence[Mapping[str, Any]]) -> str:
    events = [r for r in recoveries if "after_step" not in r]
    if not events:
        return "<p>No automatic recoveries were needed.</p>"
    after = {r.get("recovery"): r for r in recoveries if "after_step" in r}
    rows = []
    for i, r in enumerate(events, start=1):
        then = after.get(r.get("recovery", i))
        rows.append([str(i), esc(r.get("step")), esc(r.get("reason", "")),
                     esc(r.get("remedy", "scaled both learning rates")), esc(fmt(r.get("lr_g"))),
                     esc(fmt(r.get("lr_d"))),
                     esc(f"{then['metric']} {fmt(then['value'])} at step {then['after_step']}") if then else "—"])
    return ("<p>Each recovery rolled back to the step shown (dashed lines on the curves) and applied the remedy "
            "of its failure.</p>" + table(["#", "rolled back to step", "reason", "remedy", "lr_g", "lr_d",
                                           "main metric afterwards"], rows,
                                          numeric=[True, True, False, False, True, True, False]))


def _samples_section(run_dir: Path, kind: str) -> str:
    paths = sample_paths(run_dir)
    if not paths:
        return '<p class="note">No sample grids in samples/.</p>'
    total = len(list(RunDir(run_dir).samples.glob("*.png")))
    figures = []
    for path in paths:
        png = path.read_bytes()
        figures.append(f'<figure><img alt="samples at step {esc(_step_of_sample(path))}" src="{data_uri(png)}">'
                       f"<figcaption>step {esc(_step_of_sample(path))}</figcaption></figure>")
    what = ("scatter plots of generated points (dots) over the true modes" if kind == "points"
            else "grids from a fixed noise batch")
    shown = f"{len(paths)} of {total}" if total > len(paths) else f"{total}"
    return f"<p>{shown} sample {what}, in training order.</p><div class=\"grids\">{''.join(figures)}</div>"


def _summary_cards(records: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]],
                   recoveries: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    split = FINAL_SPLIT if any(is_test_record(r) for r in records) else RANKING_SPLIT
    final = snapshot(records, findings, split=split)
    outcome = verdict([Finding.from_dict(f) for f in findings])
    items = [("verdict", outcome), ("steps", fmt(max((r.get("step") or 0 for r in records), default=0))),
             ("images seen", fmt(int(final.get("images_seen") or 0))),
             ("training time", f"{fmt(final.get('wall_time'), 3)} s" if final.get("wall_time") is not None else "n/a")]
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        if key in final:
            items.append((key, fmt(final[key])))
    for key in sorted(k for k in final if k.startswith("eval_")):
        items.append((f"{key} ({split})", fmt(final[key])))
    classes = {"verdict": {"failed": "error", "warnings": "warning"}.get(outcome, "")}
    for severity in worst_first():
        count = int(final.get(f"findings_{severity}") or 0)
        items.append((f"{severity}s", str(count)))
        if count and severity != "info":
            classes[f"{severity}s"] = severity
    items.append(("recoveries", str(len(recoveries))))
    status = "finished" if meta.get("finished") else "not finished (no generator.json yet)"
    problem = f" {meta['problem']}" if meta.get("problem") else ""
    scored = ("Evaluation values are the final evaluation's on the test reference." if split == FINAL_SPLIT else
              "No final test line yet: evaluation values are the last on the validation reference.")
    return cards(items, classes) + (f'<p class="note">Run status: {esc(status)}. Values are from the last logged '
                                    f'lines. {esc(scored)}{esc(problem)}</p>')


def run_report_html(run_dir: str | Path, warn: Optional[Callable[[str], None]] = None) -> str:
    """The HTML report of one run directory; `warn` gets one note per file with damaged lines (read once)."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    config = _run_config(run_dir)
    found = read_metrics(run_dir)  # damaged lines are skipped: the report shows the rest and says so
    records = found.records
    finding_lines = read_finding_lines(run.findings)
    for lines in (found, finding_lines):
        if lines.skipped and warn is not None:
            warn(skipped_note(lines.skipped))
    problem = " ".join(skipped_note(lines.skipped) + "." for lines in (found, finding_lines) if lines.skipped)
    findings = finding_lines.records
    recoveries = read_jsonl(run.recoveries)
    train_records = [r for r in records if "loss_d" in r or "loss_g" in r]
    kind = "points" if (config.get("data") or {}).get("name") in ("ring8", "grid25") else "images"
    meta_path = run.generator_meta
    if meta_path.is_file():
        try:
            described = json.loads(meta_path.read_bytes().decode("utf-8"))
            kind = str(described["data"]["kind"]) if isinstance(described, dict) else kind
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, OSError):
            pass
    meta = {"finished": meta_path.is_file(), "problem": problem}

    def curves(panels, log_panels=()) -> Callable[[], str]:
        return lambda: img_tag(figs.timeline_figure(train_records, panels, findings, recoveries, log_panels),
                               " / ".join(t for t, _ in panels))

    sections = [
        section("summary", "Summary", lambda: _summary_cards(records, findings, recoveries, meta)),
        section("config", "Configuration", lambda: _config_section(config)),
        section("losses", "Losses", curves([("losses", ("loss_d", "loss_g")), ("penalties", ("gp", "r1", "drift", "r2", "lecam"))])),
        section("d-outputs", "Discriminator outputs: D(x) and D(G(z))",
                curves([("mean D logit: d_real = D(x), d_fake = D(G(z))", ("d_real", "d_fake")),
                        ("D accuracy", ("d_acc",))])),
        section("augment", "Discriminator overfitting and augmentation",
                curves([("r_t = E[sign(D(x))]", ("d_real_sign", "ada_rt")), ("ADA probability", ("augment_p",))])),
        section("grad-norms", "Gradient norms", curves([("gradient norms", ("grad_norm_d", "grad_norm_g"))],
                                                       ("gradient norms",))),
        section("metrics", "Evaluation metrics (validation reference; the final test values are in the summary)",
                lambda: img_tag(figs.eval_figure(records, findings), "evaluation metrics (set eval.every to log them)")),
        section("samples", "Samples over time", lambda: _samples_section(run_dir, kind)),
        section("findings", "Doctor's findings", lambda: _findings_table(findings)),
        section("recoveries", "Recoveries", lambda: _recoveries_table(recoveries)),
    ]
    data, model, loss = config.get("data") or {}, config.get("model") or {}, config.get("loss") or {}
    subtitle = esc(f"data {data.get('name', '?')} · arch {model.get('arch', '?')} · loss {loss.get('kind', '?')} · "
                   f"seed {config.get('seed', '?')} · {run_dir.resolve()}")
    nav = [("summary", "Summary"), ("config", "Config"), ("losses", "Losses"), ("d-outputs", "D outputs"),
           ("augment", "Augment"), ("grad-norms", "Grad norms"), ("metrics", "Metrics"), ("samples", "Samples"),
           ("findings", f"Findings ({len(findings)})"), ("recoveries", f"Recoveries ({len(recoveries)})")]
    return page(f"ganstab run: {run_dir.resolve().name}", subtitle, nav, sections)


# ------------------------------------------------------------------------------------- ablation report
_TRAINING_ORDER = ("loss_d", "loss_g", "d_real", "d_fake", "d_acc", "d_real_sign", "augment_p", "grad_norm_d", "grad_norm_g", "gp", "r1", "drift",
                   "r2", "lecam")


def _metric_order(names: Sequence[str], main: str) -> list[str]:
    """Main metric first, then eval_*, losses and D statistics, findings, time."""
    def key(name: str) -> tuple:
        if name == main:
            return (0, name)
        if name.startswith("eval_"):
            return (1, name)
        if name.startswith("findings_"):
            order = worst_first()
            return (3, order.index(name[9:]) if name[9:] in order else 9, name)
        if name in ("wall_time", "images_seen"):
            return (4, name)
        return (2, _TRAINING_ORDER.index(name) if name in _TRAINING_ORDER else len(_TRAINING_ORDER), name)

    return sorted(names, key=key)


def _href(*parts: str) -> str:
    return "/".join(urllib.parse.quote(p) for p in parts)


class _AblationView(NamedTuple):
    """What every section of an ablation report reads."""

    out: Path
    summary: Mapping[str, Any]
    variants: list
    names: list
    stats: dict
    main: str
    metric_names: list


def _ablation_summary_section(view: _AblationView) -> str:
    """The ranked table of final metrics, mean ± s.e."""
    if not view.variants:
        return '<p class="note">No valid variant.</p>'
    keys = ", ".join(f"{k} ({d} is better)" for k, d in view.summary["ranking_keys"])
    scored = view.main.startswith("eval_")
    rows, classes = [], []
    for v in view.variants:
        row = [str(v["rank"]), f'<a href="#runs-{esc(v["name"])}">{esc(v["name"])}</a>', str(len(v["runs"]))]
        row += [esc(mean_se_text(v["validation"].get(view.main)))] if scored else []
        row += [esc(mean_se_text(v["final"].get(m))) for m in view.metric_names]
        rows.append(row)
        classes.append("best" if v["rank"] == 1 and v["runs"] else "")
    headers = (["rank", "variant", "runs"] + ([f"<code>{esc(view.main)}</code> ({RANKING_SPLIT}) ★"] if scored else [])
               + [f"<code>{esc(m)}</code>" + _split_label("final", m) + (" ★" if m == view.main and not scored else "")
                  for m in view.metric_names])
    note = (f" The ranking reads the final evaluation on the {RANKING_SPLIT} reference (★); the reported evaluation "
            f"metrics are the final evaluation's on the disjoint {FINAL_SPLIT} reference, which no ranking reads."
            if scored else " No evaluation metric was logged (set eval.every), so variants are ranked by the doctor's "
            "error count, then by name.")
    return (f"<p>Ranked by {esc(keys)}, then by name.{esc(note)} Cells are mean ± standard error over seeds "
            f"(final values: last training line, the final evaluation, findings by severity, training "
            f"time in seconds).</p>"
            + table(headers, rows, numeric=[True, False, True] + [True] * (len(view.metric_names) + scored),
                    row_classes=classes))


def _split_label(scope: str, metric: str) -> str:
    """' (test)' or ' (validation)' after an evaluation metric's name (`split_of`), '' after any other."""
    split = split_of(scope, metric)
    return f" ({split})" if split else ""


def _ablation_bars_section(view: _AblationView) -> str:
    """Bar charts of the final metrics with error bars."""
    label = {m: m + _split_label("final", m) for m in view.metric_names}
    stats = {name: {label.get(m, m): value for m, value in metrics.items()} for name, metrics in view.stats.items()}
    png = figs.bar_chart(view.names, [label[m] for m in view.metric_names], stats,
                         highlight=label.get(view.main, view.main))
    return (f"<p>Final values (evaluation metrics: the final evaluation on the {FINAL_SPLIT} reference), mean with "
            "error bars of ± one standard error over seeds.</p>" + img_tag(png, "bar chart of the final metrics"))


def _ablation_curve_section(view: _AblationView) -> str:
    """The main metric against images seen, per variant."""
    metric, curves = main_curve(view.out, view.summary)
    why = "" if metric == view.main else " (no evaluation metric was logged, so G's loss is shown)"
    where = f" on the {RANKING_SPLIT} reference (the evaluations during training)" if metric.startswith("eval_") else ""
    return f"<p><code>{esc(metric)}</code>{esc(where)} against real images seen{esc(why)}.</p>" + img_tag(
        figs.curve_chart(metric, curves), f"{metric} against images seen")


def _ablation_budgets_section(view: _AblationView) -> str:
    """The main metric at fixed budgets of images seen and of time."""
    blocks = []
    for axis, label in (("images_seen", "images seen"), ("wall_time", "training time (s)")):
        budgets = view.summary["budgets"].get(axis) or []
        if not budgets:
            continue
        headers = ["variant"] + [f"{esc(label)} ≤ {esc(fmt(b, 3))} ({int(f * 100)}%)"
                                 for f, b in zip(view.summary["budget_fractions"], budgets)]
        rows = [[esc(v["name"])] + [esc(mean_se_text(item["metrics"].get(view.main))) for item in v[axis]]
                for v in view.variants]
        blocks.append(f"<h3>{esc(view.main + _split_label(axis, view.main))} at budgets of {esc(label)}</h3>"
                      + table(headers, rows, numeric=[False] + [True] * len(budgets)))
    if not blocks:
        return '<p class="note">No finished runs yet.</p>'
    return ("<p>Budgets are 25/50/100 % of the smallest run's total; each run contributes its values at the "
            "last logged line within the budget.</p>" + "".join(blocks))


def _ablation_runs_section(view: _AblationView) -> str:
    """Links to every run's own report."""
    items = []
    for v in view.variants:
        links = []
        for rel in v["runs"] + v["unfinished"]:
            target = view.out / rel / REPORT_FILE
            name = rel.split("/")[-1]
            if target.is_file():
                links.append(f'<a href="{esc(_href(*rel.split("/"), REPORT_FILE))}">{esc(name)}</a>')
            else:
                state = "unfinished" if rel in v["unfinished"] else "no report"
                links.append(f'{esc(name)} <span class="note">({state})</span>')
        labels = ", ".join(f"<code>{esc(label)}</code>" for label in v.get("labels", [])) or "base config"
        items.append(f'<li id="runs-{esc(v["name"])}"><b>{esc(v["name"])}</b> ({labels}): {" · ".join(links)}</li>')
    return f"<ul>{''.join(items)}</ul>" if items else '<p class="note">No runs.</p>'


def _ablation_skipped_section(view: _AblationView) -> str:
    """Invalid variants and unfinished runs."""
    parts = []
    if view.summary.get("invalid"):
        rows = [[esc(i["variant"]), esc(i["reason"])] for i in view.summary["invalid"]]
        parts.append("<p>Variants that break a config rule were not trained:</p>" + table(["variant", "reason"], rows))
    unfinished = [rel for v in view.variants for rel in v["unfinished"]]
    if unfinished:
        parts.append("<p>Runs without a generator.json (failed, interrupted or still running) are left out of "
                     "the statistics: " + ", ".join(f"<code>{esc(r)}</code>" for r in unfinished) + ".</p>")
    return "".join(parts) or "<p>Nothing was skipped.</p>"


def ablation_report_html(out: str | Path, summary: Optional[Mapping[str, Any]] = None) -> str:
    """The HTML report of an ablation folder (summary recomputed from the runs when not given)."""
    out = Path(out)
    if summary is None:
        summary = summarize(out)
    variants = list(summary["variants"])
    names = [v["name"] for v in variants]
    stats = {v["name"]: v["final"] for v in variants}
    main = summary["main_metric"]
    metric_names = _metric_order(sorted({m for s in stats.values() for m, v in s.items() if v.get("n")}), main)
    n_runs = sum(len(v["runs"]) for v in variants)
    view = _AblationView(out, summary, variants, names, stats, main, metric_names)

    sections = [
        section("summary", "Ranking and summary", lambda: _ablation_summary_section(view)),
        section("bars", "Final metrics per variant", lambda: _ablation_bars_section(view)),
        section("curve", "Main metric over training", lambda: _ablation_curve_section(view)),
        section("budgets", "At fixed budgets", lambda: _ablation_budgets_section(view)),
        section("runs", "Runs", lambda: _ablation_runs_section(view)),
        section("skipped", "Skipped", lambda: _ablation_skipped_section(view)),
    ]
    subtitle = esc(f"{len(variants)} variants × {len(summary.get('seeds', []))} seeds, {n_runs} finished runs · "
                   f"main metric {main} ({summary['direction']} is better) · {out.resolve()}")
    nav = [("summary", "Summary"), ("bars", "Bars"), ("curve", "Curve"), ("budgets", "Budgets"), ("runs", "Runs"),
           ("skipped", "Skipped")]
    return page(f"ganstab ablation: {out.resolve().name}", subtitle, nav, sections)


# ---------------------------------------------------------------------------------------------- entry
def write_report(path: str | Path, summary: Optional[Mapping[str, Any]] = None,
                 warn: Optional[Callable[[str], None]] = None) -> Path:
    """Write PATH/report.html for a run directory or an ablation folder (a run's damaged lines noted to `warn`);
    ReportError for anything else."""
    path = Path(path)
    if is_ablation_dir(path):
        text = ablation_report_html(path, summary)
    elif is_run_dir(path):
        text = run_report_html(path, warn)
    else:
        raise ReportError(f"{str(path)!r} is neither a run directory (no config.yaml) nor an ablation folder "
                          "(no ablation.json); pass a folder written by 'ganstab train' or 'ganstab ablate'")
    return atomic_write(path / REPORT_FILE, text)
