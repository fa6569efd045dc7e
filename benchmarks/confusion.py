"""The stability doctor's verdicts against what the final evaluations say, over every benchmark run.

Reads the run records of the 2-D benchmark (results/modes2d-<tag>.json), the Fashion-MNIST benchmark
(results/fashion-<tag>.json) and the long healthy runs (results/long_runs-healthy.json), and tabulates the
doctor's verdict of each run (failed: an error; warnings: a warning; else healthy) against whether the
run truly failed. The verdict is the shipped doctor's (its default thresholds, not those stored in each
run's config.yaml) over each saved run folder's metrics.jsonl (the runs' own live findings may include
episodes a recovery rolled back). "Truly failed" is fixed here, before the table, from the final evaluation alone:

- 2-D data (PacGAN protocol): fewer than half the modes captured, or under 10 % high-quality samples;
- images: coverage below 0.03 (Naeem et al. 2020: under 3 % of the real test images' neighbourhoods
  hold a generated sample), whatever the precision.

The goals (issue #14): every truly failed run flagged (verdict `failed`); no run of a healthy preset
(`modes2d`, `hinge-sn`, the default recipe, `small-data`) with a warning or an error.

Usage: python benchmarks/confusion.py [--modes2d-tag 3seeds] [--fashion-tag doctor]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import RESULTS, add_summary, output_stem, write_results  # noqa: E402

from ganstab.diagnose import diagnose_run, verdict  # noqa: E402

RUNS = HERE / "runs"
HEALTHY_PRESETS = {"modes2d", "hinge-sn", "default", "small-data"}
FAILED_COVERAGE = 0.03
MODES = {"ring8": 8, "grid25": 25}


def doctor(run_dir: Path) -> tuple[str, list[str]]:
    """The shipped doctor's verdict (default thresholds) and findings above info over a run folder's metrics."""
    findings = diagnose_run(run_dir)
    return verdict(findings), sorted({f"{f.code} ({f.severity})" for f in findings if f.severity != "info"})


def modes2d_runs(tag: str) -> list[dict[str, Any]]:
    """(benchmark, case, seed, verdict, truly failed, why, healthy preset, findings) per 2-D run."""
    path = RESULTS / f"modes2d-{tag}.json"
    out = []
    for run in json.loads(path.read_text())["runs"]:
        flagged, codes = doctor(RUNS / "modes2d" / f"{run['config']}-{run['data']}-s{run['seed']}")
        modes, hq = run.get("modes"), run.get("hq_fraction")
        failed = modes is None or modes < MODES[run["data"]] / 2 or hq < 0.10
        why = "no final evaluation" if modes is None else f"{modes:.0f}/{MODES[run['data']]} modes, HQ {hq:.2f}"
        out.append({"benchmark": f"modes2d-{tag}", "case": f"{run['config']} {run['data']}", "seed": run["seed"],
                    "verdict": flagged, "failed": failed, "final": why, "healthy_preset": run["config"] in
                    HEALTHY_PRESETS, "findings": codes})
    return out


def fashion_runs(tag: str) -> list[dict[str, Any]]:
    """The same per Fashion-MNIST benchmark run (each trick alone at 60 s)."""
    out = []
    for row in json.loads((RESULTS / output_stem("fashion", tag)).with_suffix(".json").read_text())["rows"]:
        final = row["final"]
        coverage = final.get("coverage")
        flagged, codes = doctor(RUNS / "fashion" / row["variant"] / f"seed{row['seed']}")
        out.append({"benchmark": "fashion", "case": row["variant"], "seed": row["seed"], "verdict": flagged,
                    "failed": coverage is None or coverage < FAILED_COVERAGE,
                    "final": f"FD {final.get('fd', float('nan')):.3g}, precision {final.get('precision', 0):.3f}, "
                             f"coverage {coverage if coverage is None else f'{coverage:.3f}'}",
                    "healthy_preset": False, "findings": codes})
    return out


def long_runs() -> list[dict[str, Any]]:
    """The same per long healthy run (10,000 steps at the defaults)."""
    path = RESULTS / "long_runs-healthy.json"
    if not path.is_file():
        return []
    out = []
    for key, run in json.loads(path.read_text())["healthy"].items():
        name, seed = key.split("/")
        preset = name.rsplit("-", 1)[0]
        coverage = run.get("coverage")
        flagged, codes = doctor(RUNS / "long_runs-healthy" / name / f"seed{seed}")
        out.append({"benchmark": "long_runs", "case": name, "seed": int(seed), "verdict": flagged,
                    "failed": coverage is None or coverage < FAILED_COVERAGE,
                    "final": f"FD {run['fd']:.3g}, precision {run['precision']:.3f}, coverage {coverage:.3f}"
                    if coverage is not None else "no final evaluation",
                    "healthy_preset": preset in HEALTHY_PRESETS, "findings": codes})
    return out


def markdown(runs: list[dict[str, Any]], tag: str, fashion_tag: str) -> str:
    """The confusion table, the goals' check and the runs behind every off-diagonal cell."""
    lines = ["# The doctor's verdicts against the final evaluations", "",
             f"Runs: results/modes2d-{tag}.json, results/{output_stem('fashion', fashion_tag)}.json, "
             "results/long_runs-healthy.json "
             f"({len(runs)} runs). Truly failed: 2-D, fewer than half the modes or under 10 % high-quality samples; "
             f"images, final coverage below {FAILED_COVERAGE}.", "",
             "| verdict | truly failed | not failed |", "|---|---|---|"]
    for flag in ("failed", "warnings", "healthy"):
        bad = sum(r["verdict"] == flag and r["failed"] for r in runs)
        good = sum(r["verdict"] == flag and not r["failed"] for r in runs)
        lines.append(f"| {flag} | {bad} | {good} |")
    missed = [r for r in runs if r["failed"] and r["verdict"] != "failed"]
    alarms = [r for r in runs if r["healthy_preset"] and r["verdict"] != "healthy"]
    healthy_total = sum(r["healthy_preset"] for r in runs)
    lines += ["", f"- Truly failed runs not flagged `failed`: {len(missed)} of {sum(r['failed'] for r in runs)}.",
              f"- Healthy-preset runs with a warning or an error: {len(alarms)} of {healthy_total}.", ""]
    for title, rows in (("Truly failed, not flagged failed", missed), ("Healthy presets flagged", alarms),
                        ("Flagged failed, not truly failed", [r for r in runs if r["verdict"] == "failed"
                                                              and not r["failed"]])):
        if rows:
            lines += [f"## {title}", "", "| benchmark | case | seed | verdict | final evaluation | findings above info |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {r['benchmark']} | {r['case']} | {r['seed']} | {r['verdict']} | {r['final']} | "
                      f"{', '.join(r['findings']) or 'none'} |" for r in rows]
            lines.append("")
    return "\n".join(lines)


def summarise(payload: dict) -> dict:
    """From the stored runs: the confusion counts per verdict, the truly failed runs missed and the healthy-preset
    runs flagged (with their totals)."""
    runs = payload["runs"]
    return {"verdicts": {flag: {"truly_failed": sum(r["verdict"] == flag and r["failed"] for r in runs),
                                "not_failed": sum(r["verdict"] == flag and not r["failed"] for r in runs)}
                         for flag in ("failed", "warnings", "healthy")},
            "missed": sum(r["failed"] and r["verdict"] != "failed" for r in runs),
            "truly_failed": sum(r["failed"] for r in runs),
            "healthy_preset_alarms": sum(r["healthy_preset"] and r["verdict"] != "healthy" for r in runs),
            "healthy_preset_runs": sum(r["healthy_preset"] for r in runs)}

def main() -> None:
    """Read the benchmark records and write results/confusion.md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes2d-tag", default="3seeds")
    parser.add_argument("--fashion-tag", default="doctor")
    parser.add_argument("--summarise", action="store_true",
                        help="only recompute the summary key of the stored results/confusion.json from its runs")
    args = parser.parse_args()
    if args.summarise:
        add_summary("confusion", summarise)
        return
    runs = modes2d_runs(args.modes2d_tag) + fashion_runs(args.fashion_tag) + long_runs()
    text = markdown(runs, args.modes2d_tag, args.fashion_tag)
    write_results("confusion", text, {"runs": runs})
    add_summary("confusion", summarise)
    print(text)


if __name__ == "__main__":
    main()
