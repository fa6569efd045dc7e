"""The stability doctor measured blind and early: random recipes, frozen defaults, truth from the test reference.

Recipes are drawn at random (seeded) from `SPACE`, a declared space of 2-D mixture runs (grid25, ring8) over
losses, learning rates (bad ones included), Adam betas or RMSProp, n_critic, penalties, clipping, normalisation,
batch size, EMA, label smoothing and network size; none is a preset and no seed is one of modes2d.py's (0-9).
Every run trains to the same budget of `BUDGET` G steps (steps, not seconds: the machine is shared) with
automatic recovery off, so each run is one timeline the doctor watches; its final evaluation is scored on the
test reference.

Before any run, the doctor's defaults (every `doctor.*` value, the expected mode counts of the 2-D data) and
the git commit are written into results/doctor_blind.json; the analysis refuses to score when the code's
defaults differ from them. The verdict is judged as it stood at 25 %, 50 % and 100 % of the budget: the shipped
doctor run offline over the metrics lines up to that step (what a live doctor had seen), checked against the
findings the live doctor wrote by then. The truth of a run is NOT the doctor's rule (see `truth`).

Usage:
    python benchmarks/doctor_blind.py --runs 150 --stop-after-minutes 45   # train, then score
    python benchmarks/doctor_blind.py --recompute                          # score the stored records again
    python benchmarks/doctor_blind.py --rescore-test                       # new final test lines, then score
`--rescore-test` replaces every stored run's final test line by the current code's final test evaluation of the
run's exported generator in --workdir (`common.rescore_final_test`: the test latent seed, the run's eval.n; no
training); the validation lines and the live findings stay as stored, and the verdicts are recomputed as always.
Raw records: results/doctor_blind/run-NNN.jsonl.gz (the run's config, metrics lines and findings lines);
outputs: results/doctor_blind.json and results/doctor_blind.md.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import math
import random
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import RESULTS, RescoreMismatch, machine, rescore_final_test, rescore_provenance  # noqa: E402

from ganstab.config import DoctorConfig, to_dict  # noqa: E402
from ganstab.diagnose import context_from_config, diagnose, verdict  # noqa: E402
from ganstab.diagnose.doctor import EXPECTED_MODES  # noqa: E402
from ganstab.diagnose.findings import Finding  # noqa: E402
from ganstab.errors import CheckpointError, ConfigError  # noqa: E402
from ganstab.rundir import is_test_record, is_training_record  # noqa: E402

STEM = "doctor_blind"
RECORDS = RESULTS / STEM
BUDGET = 4000  # G steps of every run
CUTS = {"at_25": 0.25, "at_50": 0.5, "at_100": 1.0}  # fractions of the budget at which the verdict is judged
SPACE_SEED = 28_100  # run i draws its recipe from random.Random(SPACE_SEED + i)
MAX_DRAWS = 20  # draws of one run tried until the config is accepted

#: Overrides every run shares (not drawn): the toy MLPs on CPU, one thread, the same budget and logging.
FIXED = ["model.arch=toy", "model.hidden=null", f"train.steps={BUDGET}", "train.device=cpu", "train.threads=1",
         "train.recover=false", "log.every=100", f"log.sample_every={BUDGET}", f"log.checkpoint_every={BUDGET}",
         "log.n_samples=16", "log.progress=false", "eval.every=500", "eval.final=true", "eval.n=2500",
         "data.limit=null"]

#: The recipe space: key -> choices (drawn uniformly; a repeated choice is more likely) or ("loguniform", lo, hi).
SPACE: dict[str, Any] = {
    "data.name": ["grid25", "ring8"],
    "loss.kind": ["minimax", "nonsaturating", "wasserstein", "lsgan", "hinge", "relativistic",
                  "relativistic_average"],
    "optim.name": ["adam", "adam", "adam", "rmsprop"],
    "optim.g_lr": ("loguniform", 3e-5, 5e-3),
    "optim.d_lr": ("loguniform", 3e-5, 5e-3),
    "beta1": [0.0, 0.5, 0.5, 0.9],  # both networks' Adam beta1 (adam only)
    "beta2": [0.9, 0.99, 0.999],  # both networks' Adam beta2 (adam only)
    "train.n_critic": [1, 1, 2, 5],
    "train.batch_size": [128, 256],
    "train.ema": [0.0, 5000.0, 20000.0, 20000.0],
    "model.width": [32, 64],
    "model.depth": [2, 3],
    "model.latent_dim": [2, 8],
    "model.g_norm": ["none", "none", "batch", "layer"],
    "model.d_norm": ["none", "none", "spectral", "layer", "batch"],
    # at most one regulariser per recipe, as published recipes do: none, a gradient penalty, R1 or weight clipping
    "regulariser": ["none", "none", "none", "none", "penalty.gp=1.0", "penalty.gp=10.0", "penalty.r1=0.1",
                    "penalty.r1=1.0", "penalty.r1=10.0", "penalty.clip=0.01", "penalty.clip=0.1"],
    "loss.real_label": [1.0, 1.0, 0.9],  # one-sided smoothing; applied to minimax, nonsaturating, lsgan only
}
SMOOTHABLE = {"minimax", "nonsaturating", "lsgan"}

#: The truth rule (fixed before any run; not the doctor's `evaluation.failed`, which asks for fewer than half the
#: modes or under 10 % high-quality samples on the validation reference): on the TEST reference's final
#: evaluation, a run truly failed when it has none, or captures fewer than 80 % of the modes, or fewer than half
#: its samples are high quality, or the reverse KL of its mode histogram exceeds 0.3 nats (evenly spread over
#: 80 % of the modes is 0.22).
TRUTH = {"modes_fraction": 0.8, "hq_fraction": 0.5, "reverse_kl": 0.3}
TRUTH_TEXT = ("truly failed = no final evaluation on the test reference, or on it: modes < 80 % of the centres, "
              "or high-quality fraction < 0.5, or reverse KL of the mode histogram > 0.3 nats")


class FrozenMismatch(SystemExit):
    """The table cannot be scored blind: the code's doctor defaults or the stored runs' settings moved, or no
    result file holds the frozen defaults."""


# ---------------------------------------------------------------------------------------------------------
# the space and one run
# ---------------------------------------------------------------------------------------------------------

def _round3(value: float) -> float:
    return float(f"{value:.3g}")


def draw_recipe(index: int, attempt: int = 0) -> dict[str, Any]:
    """Run `index`'s recipe (its `attempt`-th draw): config key -> value, seed included."""
    rng = random.Random((SPACE_SEED + index) * 100 + attempt)
    drawn: dict[str, Any] = {}
    for key, choices in SPACE.items():
        if isinstance(choices, tuple):
            _, low, high = choices
            drawn[key] = _round3(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            drawn[key] = rng.choice(choices)
    recipe = {k: v for k, v in drawn.items() if k not in ("beta1", "beta2", "loss.real_label", "regulariser")}
    if drawn["regulariser"] != "none":
        key, value = drawn["regulariser"].split("=")
        recipe[key] = float(value)
    if recipe["optim.name"] == "adam":
        betas = [drawn["beta1"], drawn["beta2"]]
        recipe["optim.g_betas"] = recipe["optim.d_betas"] = betas
    if recipe["loss.kind"] in SMOOTHABLE:
        recipe["loss.real_label"] = drawn["loss.real_label"]
    recipe["seed"] = rng.randrange(100, 1_000_000)  # modes2d.py and confusion.py use seeds 0-9
    return recipe


def overrides_of(recipe: Mapping[str, Any], out: Path) -> list[str]:
    """key=value overrides of a recipe (the fixed ones first)."""
    return FIXED + [f"{k}={json.dumps(v)}" for k, v in recipe.items()] + [f"out={out}"]


def accepted_recipe(index: int, out: Path) -> tuple[dict[str, Any], Any, int]:
    """The first draw of run `index` that the config accepts: (recipe, config, attempts refused)."""
    from ganstab.pipeline import load_config

    for attempt in range(MAX_DRAWS):
        recipe = draw_recipe(index, attempt)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return recipe, load_config(overrides=overrides_of(recipe, out)), attempt
        except ConfigError:
            continue
    raise RuntimeError(f"run {index}: no accepted draw in {MAX_DRAWS}")


def train_one(index: int, workdir: Path) -> dict[str, Any]:
    """Train run `index` to the budget and return its stored record (recipe, config, metrics, findings)."""
    import torch

    from ganstab.pipeline import make_trainer
    from ganstab.rundir import RunDir, prepare_out_dir, read_jsonl

    torch.set_num_threads(1)
    out = workdir / f"run-{index:03d}"
    recipe, cfg, refused = accepted_recipe(index, out)
    prepare_out_dir(out, overwrite=True)
    t0, c0 = time.perf_counter(), time.process_time()
    error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            make_trainer(cfg, echo=lambda message: None).run()
        except Exception as exc:  # a diverged recipe is a result, not a benchmark failure
            error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
    run = RunDir(out)
    return {"run": f"run-{index:03d}", "index": index, "recipe": recipe, "refused_draws": refused,
            "config": to_dict(cfg), "error": error, "wall_s": round(time.perf_counter() - t0, 2),
            "cpu_s": round(time.process_time() - c0, 2),
            "metrics": read_jsonl(run.metrics) if run.metrics.is_file() else [],
            "findings": read_jsonl(run.findings) if run.findings.is_file() else []}


def save_record(record: Mapping[str, Any], folder: Path = RECORDS) -> Path:
    """One run as run-NNN.jsonl.gz: a header line (all but the series), then a line per metrics/findings line."""
    folder.mkdir(parents=True, exist_ok=True)
    header = {k: v for k, v in record.items() if k not in ("metrics", "findings")}
    lines = [json.dumps({"run": header}, sort_keys=True)]
    lines += [json.dumps({"metrics": line}, sort_keys=True) for line in record["metrics"]]
    lines += [json.dumps({"finding": line}, sort_keys=True) for line in record["findings"]]
    path = folder / f"{record['run']}.jsonl.gz"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    tmp.replace(path)
    return path


def load_record(path: Path) -> dict[str, Any]:
    """Inverse of `save_record`."""
    record: dict[str, Any] = {"metrics": [], "findings": []}
    for line in gzip.decompress(path.read_bytes()).decode("utf-8").splitlines():
        item = json.loads(line)
        if "run" in item:
            record.update(item["run"])
        elif "metrics" in item:
            record["metrics"].append(item["metrics"])
        else:
            record["findings"].append(item["finding"])
    return record


def load_records(folder: Path = RECORDS) -> list[dict[str, Any]]:
    """Every stored run, in run order."""
    return [load_record(path) for path in sorted(folder.glob("run-*.jsonl.gz"))]


# ---------------------------------------------------------------------------------------------------------
# freezing the doctor
# ---------------------------------------------------------------------------------------------------------

def git_commit() -> dict[str, Any]:
    """HEAD's hash and whether the work tree had changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=False).stdout.strip()
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def doctor_defaults() -> dict[str, Any]:
    """What decides a verdict besides the detector code: every `doctor.*` default and the 2-D mode counts."""
    return {"doctor": DoctorConfig().model_dump(mode="json"), "expected_modes": dict(EXPECTED_MODES)}


def refuse(problem: str) -> None:
    """One line on stderr naming the problem and the fix, then exit status 2."""
    print(f"doctor_blind: {problem}", file=sys.stderr)
    raise FrozenMismatch(2)


def check_frozen(frozen: Mapping[str, Any]) -> None:
    """Refuse to score (one line, exit status 2) when the code's doctor defaults differ from the frozen ones."""
    now = doctor_defaults()
    changed = sorted(k for k in set(now["doctor"]) | set(frozen["doctor"])
                     if now["doctor"].get(k) != frozen["doctor"].get(k))
    if now["expected_modes"] != frozen["expected_modes"]:
        changed.append("expected_modes")
    if changed:
        refuse(f"the doctor's defaults changed since they were frozen ({', '.join(changed[:5])}); "
               f"run the benchmark again (a table of new thresholds on these runs would not be blind)")


# ---------------------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------------------

def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (95 % for z = 1.96); None for no trials."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def final_test_record(metrics: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The final evaluation on the test reference, or None."""
    found = [r for r in metrics if is_test_record(r) and r.get("final") is True]
    return found[-1] if found else None


def truth(metrics: Sequence[Mapping[str, Any]], modes_total: int) -> tuple[bool, str]:
    """(truly failed, why) of a run from its test evaluation alone, by `TRUTH` (not the doctor's rule)."""
    final = final_test_record(metrics)
    if final is None:
        return True, "no final test evaluation"
    modes, hq, rkl = final.get("eval_modes"), final.get("eval_hq_fraction"), final.get("eval_reverse_kl")
    text = f"{modes:.0f}/{modes_total} modes, HQ {hq:.3f}, rKL {rkl:.3f}" if None not in (modes, hq, rkl) \
        else "test evaluation incomplete"
    if None in (modes, hq, rkl):
        return True, text
    failed = (modes < TRUTH["modes_fraction"] * modes_total or hq < TRUTH["hq_fraction"]
              or rkl > TRUTH["reverse_kl"])
    return failed, text


def failure_kinds(metrics: Sequence[Mapping[str, Any]], modes_total: int) -> list[str]:
    """Which parts of the truth rule a run fails: no_final, modes, hq, reverse_kl (empty for a healthy run)."""
    final = final_test_record(metrics)
    if final is None or None in (final.get("eval_modes"), final.get("eval_hq_fraction"),
                                 final.get("eval_reverse_kl")):
        return ["no_final"]
    return [kind for kind, bad in (("modes", final["eval_modes"] < TRUTH["modes_fraction"] * modes_total),
                                   ("hq", final["eval_hq_fraction"] < TRUTH["hq_fraction"]),
                                   ("reverse_kl", final["eval_reverse_kl"] > TRUTH["reverse_kl"])) if bad]


def offline_findings(record: Mapping[str, Any], step: int) -> list[Finding]:
    """The shipped doctor (code defaults) over the metrics lines up to `step` but the test line."""
    seen = [r for r in record["metrics"] if not is_test_record(r) and r.get("step", math.inf) <= step]
    return diagnose(seen, DoctorConfig(), context_from_config(record["config"]))


def live_findings(record: Mapping[str, Any], step: int) -> list[Finding]:
    """The findings the live doctor had written by `step` (each is written at its end step)."""
    return [Finding.from_dict(f) for f in record["findings"] if f["end_step"] <= step]


def first_error(record: Mapping[str, Any]) -> int | None:
    """The step of the live doctor's first error, or None."""
    steps = [f["end_step"] for f in record["findings"] if f["severity"] == "error"]
    return min(steps) if steps else None


def _time_at(record: Mapping[str, Any], step: int) -> float:
    """Seconds of training at the first training line at or after `step` (the last one if none)."""
    lines = [r for r in record["metrics"] if is_training_record(r)]
    later = [r["time"] for r in lines if r["step"] >= step]
    return later[0] if later else lines[-1]["time"]


def judge(record: Mapping[str, Any]) -> dict[str, Any]:
    """One run's truth, its verdict at every cut (offline, and live for the check), and its cost and savings."""
    modes_total = EXPECTED_MODES[record["config"]["data"]["name"]]
    failed, why = truth(record["metrics"], modes_total)
    training = [r for r in record["metrics"] if is_training_record(r)]
    last_step = training[-1]["step"] if training else 0
    row: dict[str, Any] = {"truly_failed": failed, "final": why, "kinds": failure_kinds(record["metrics"], modes_total),
                           "last_step": last_step,
                           "seconds": training[-1]["time"] if training else 0.0, "error": record["error"]}
    for cut, fraction in CUTS.items():
        step = int(BUDGET * fraction)
        offline = offline_findings(record, step)
        row[cut] = {"verdict": verdict(offline), "live": verdict(live_findings(record, step)),
                    "errors": sorted({f.code for f in offline if f.severity == "error"})}
    stop = first_error(record)
    row["first_error_step"] = stop
    if stop is not None and training:
        row["steps_saved"] = last_step - stop
        row["seconds_saved"] = round(row["seconds"] - _time_at(record, stop), 3)
    return row


def rate(successes: int, trials: int) -> dict[str, Any]:
    """A proportion with its 95 % Wilson interval."""
    interval = wilson(successes, trials)
    return {"k": successes, "n": trials, "value": successes / trials if trials else None,
            "low": interval[0] if interval else None, "high": interval[1] if interval else None}


def table(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-run judgements, the confusion counts, precision and recall per cut, and the time saved."""
    runs = {record["run"]: judge(record) for record in records}
    out: dict[str, Any] = {"runs": len(runs), "truly_failed": sum(r["truly_failed"] for r in runs.values()),
                           "per_run": runs}
    for cut, fraction in CUTS.items():
        counts = {f"{v}|{'failed' if t else 'ok'}": 0 for v in ("failed", "warnings", "healthy") for t in (1, 0)}
        for r in runs.values():
            counts[f"{r[cut]['verdict']}|{'failed' if r['truly_failed'] else 'ok'}"] += 1
        tp, fp = counts["failed|failed"], counts["failed|ok"]
        fn = counts["warnings|failed"] + counts["healthy|failed"]
        flagged_tp = tp + counts["warnings|failed"]
        flagged = flagged_tp + fp + counts["warnings|ok"]
        out[cut] = {"step": int(BUDGET * fraction), "counts": counts, "tp": tp, "fp": fp, "fn": fn,
                    "tn": len(runs) - tp - fp - fn, "precision": rate(tp, tp + fp), "recall": rate(tp, tp + fn),
                    "false_alarm_rate": rate(fp, len(runs) - out["truly_failed"]),
                    "flagged_precision": rate(flagged_tp, flagged),
                    "flagged_recall": rate(flagged_tp, out["truly_failed"]),
                    "recall_by_kind": {kind: rate(sum(r[cut]["verdict"] == "failed" for r in runs.values()
                                                      if kind in r["kinds"]),
                                                  sum(kind in r["kinds"] for r in runs.values()))
                                       for kind in ("no_final", "modes", "hq", "reverse_kl")},
                    "live_agrees": sum(r[cut]["verdict"] == r[cut]["live"] for r in runs.values())}
    stopped = [r for r in runs.values() if r["truly_failed"] and r["first_error_step"] is not None]
    wrong = [r for r in runs.values() if not r["truly_failed"] and r["first_error_step"] is not None]
    failed_steps = sum(r["last_step"] for r in runs.values() if r["truly_failed"])
    failed_seconds = sum(r["seconds"] for r in runs.values() if r["truly_failed"])
    out["savings"] = {
        "failed_runs_stopped": len(stopped),
        "steps_saved": sum(r["steps_saved"] for r in stopped),
        "seconds_saved": round(sum(r["seconds_saved"] for r in stopped), 3),
        "failed_steps_trained": failed_steps,
        "failed_seconds_trained": round(failed_seconds, 3),
        "steps_saved_fraction": sum(r["steps_saved"] for r in stopped) / failed_steps if failed_steps else None,
        "median_first_error_step": statistics.median(r["first_error_step"] for r in stopped) if stopped else None,
        "healthy_stopped_wrongly": len(wrong),
        "healthy_runs": len(runs) - out["truly_failed"],
        "healthy_steps_lost": sum(r["steps_saved"] for r in wrong),
    }
    return out


# ---------------------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------------------

def _ci(item: Mapping[str, Any]) -> str:
    if item["value"] is None:
        return "n/a (no runs)"
    return f"{item['value']:.2f} [{item['low']:.2f}, {item['high']:.2f}] ({item['k']}/{item['n']})"


def markdown(result: Mapping[str, Any]) -> str:
    """The table, the confusion counts per cut, the savings and the runs behind the off-diagonal cells."""
    scored = result["table"]
    lines = ["# The doctor measured blind", "",
             f"{scored['runs']} runs drawn from the declared space in benchmarks/doctor_blind.py (seed base "
             f"{SPACE_SEED}), {BUDGET} G steps each, recovery off; {scored['truly_failed']} truly failed. "
             f"Doctor defaults frozen at commit {result['frozen']['git']['commit'][:10]} before the runs.",
             f"Truth ({TRUTH_TEXT}).", ""]
    rescored = result.get("test_rescored")
    if rescored:
        lines += [f"Final test lines re-scored {rescored['date']} at commit {rescored['commit'][:10]} "
                  f"(`{rescored['command']}`, {rescored['seconds']:.0f} s): {rescored['runs_rescored']} runs, each "
                  f"export first reproducing its stored final validation line; {rescored['seed_rule']}. Truly failed "
                  f"before re-scoring: {rescored['truly_failed_before']}.", ""]
    lines += ["| cut | G step | precision of `failed` [95 % CI] | recall of truly failed [95 % CI] | "
              "TP | FP | FN | TN | offline = live |", "|---|---|---|---|---|---|---|---|---|"]
    for cut in CUTS:
        c = scored[cut]
        lines.append(f"| {cut.split('_')[1]} % | {c['step']} | {_ci(c['precision'])} | {_ci(c['recall'])} | "
                     f"{c['tp']} | {c['fp']} | {c['fn']} | {c['tn']} | {c['live_agrees']}/{scored['runs']} |")
    lines += ["", "A warning or an error (verdict `failed` or `warnings`) as the alarm:", "",
              "| cut | precision [95 % CI] | recall [95 % CI] |", "|---|---|---|"]
    lines += [f"| {cut.split('_')[1]} % | {_ci(scored[cut]['flagged_precision'])} | "
              f"{_ci(scored[cut]['flagged_recall'])} |" for cut in CUTS]
    lines += ["", "Recall of `failed` by the part of the truth rule a run fails (a run may fail several):", "",
              "| cut | no final evaluation | modes < 80 % | HQ < 0.5 | reverse KL > 0.3 |", "|---|---|---|---|---|"]
    lines += [f"| {cut.split('_')[1]} % | " + " | ".join(_ci(scored[cut]["recall_by_kind"][kind]) for kind in
                                                          ("no_final", "modes", "hq", "reverse_kl")) + " |"
              for cut in CUTS]
    lines += ["", "Verdict by truth (truly failed / not):", "", "| cut | failed | warnings | healthy |",
              "|---|---|---|---|"]
    for cut in CUTS:
        k = scored[cut]["counts"]
        lines.append(f"| {cut.split('_')[1]} % | " + " | ".join(f"{k[v + '|failed']} / {k[v + '|ok']}"
                                                                   for v in ("failed", "warnings", "healthy")) + " |")
    s = scored["savings"]
    lines += ["", f"Stopping at the live doctor's first error: {s['failed_runs_stopped']} of "
              f"{scored['truly_failed']} truly failed runs stopped, {s['steps_saved']} of their "
              f"{s['failed_steps_trained']} G steps saved ({s['seconds_saved']:.0f} s of "
              f"{s['failed_seconds_trained']:.0f} s training); {s['healthy_stopped_wrongly']} of "
              f"{s['healthy_runs']} healthy runs stopped wrongly ({s['healthy_steps_lost']} G steps not trained).", ""]
    runs = scored["per_run"]
    for title, keep in (("Truly failed, not flagged failed at 100 %", lambda r: r["truly_failed"]
                         and r["at_100"]["verdict"] != "failed"),
                        ("Flagged failed at 100 %, not truly failed", lambda r: not r["truly_failed"]
                         and r["at_100"]["verdict"] == "failed")):
        rows = [(name, r) for name, r in runs.items() if keep(r)]
        if rows:
            lines += [f"## {title}", "", "| run | final test evaluation | verdict 25/50/100 % | errors at 100 % |",
                      "|---|---|---|---|"]
            lines += [f"| {name} | {r['final']} | {r['at_25']['verdict']}/{r['at_50']['verdict']}/"
                      f"{r['at_100']['verdict']} | {', '.join(r['at_100']['errors']) or 'none'} |" for name, r in rows]
            lines.append("")
    moved = (rescored or {}).get("truth_changed")
    if moved:
        lines += ["## Truth changed by the re-scored test line", "",
                  "| run | final test evaluation before | after | truly failed now |", "|---|---|---|---|"]
        lines += [f"| {name} | {m['before']} | {m['after']} | {'yes' if m['truly_failed'] else 'no'} |"
                  for name, m in moved.items()]
        lines.append("")
    return "\n".join(lines)


def _link(value: Any, pointer: str, decimals: int = 2, percent: bool = False) -> str:
    """A figure in the house format: its text links to results/doctor_blind.json and the JSON Pointer holding it."""
    if value is None:
        return "n/a"
    if isinstance(value, int) and not percent:
        text = f"{value:,}"
    else:
        text = f"{100 * value:.{decimals}f} %" if percent else f"{value:.{decimals}f}"
    return f"[{text}](results/{STEM}.json#/table/{pointer})"


def _linked_ci(scored: Mapping[str, Any], cut: str, name: str) -> str:
    item = scored[cut][name]
    base = f"{cut}/{name}"
    if item["value"] is None:
        return "n/a (no runs)"
    return (f"{_link(item['value'], base + '/value')} ({_link(item['low'], base + '/low')}–"
            f"{_link(item['high'], base + '/high')}; {_link(item['k'], base + '/k')}/{_link(item['n'], base + '/n')})")


def results_section(result: Mapping[str, Any]) -> str:
    """The table for benchmarks/RESULTS.md, every figure linked to the key of results/doctor_blind.json holding it."""
    scored = result["table"]
    lines = ["| cut (G step) | precision of `failed` (95 % CI; k/n) | recall of truly failed (95 % CI; k/n) | "
             "TP | FP | FN | TN | alarm = warning or error: precision / recall |",
             "|---|---|---|---|---|---|---|---|"]
    for cut in CUTS:
        c = scored[cut]
        lines.append(f"| {cut.split('_')[1]} % ({_link(c['step'], cut + '/step')}) | "
                     f"{_linked_ci(scored, cut, 'precision')} | {_linked_ci(scored, cut, 'recall')} | "
                     f"{_link(c['tp'], cut + '/tp')} | {_link(c['fp'], cut + '/fp')} | "
                     f"{_link(c['fn'], cut + '/fn')} | {_link(c['tn'], cut + '/tn')} | "
                     f"{_link(c['flagged_precision']['value'], cut + '/flagged_precision/value')} / "
                     f"{_link(c['flagged_recall']['value'], cut + '/flagged_recall/value')} |")
    lines += ["", "| cut | recall: no final evaluation | modes < 80 % | HQ < 0.5 | reverse KL > 0.3 |",
              "|---|---|---|---|---|"]
    for cut in CUTS:
        cells = []
        for kind in ("no_final", "modes", "hq", "reverse_kl"):
            item = scored[cut]["recall_by_kind"][kind]
            base = f"{cut}/recall_by_kind/{kind}"
            cells.append("n/a (no runs)" if item["value"] is None else
                         f"{_link(item['value'], base + '/value')} ({_link(item['k'], base + '/k')}/"
                         f"{_link(item['n'], base + '/n')})")
        lines.append(f"| {cut.split('_')[1]} % | " + " | ".join(cells) + " |")
    saved = scored["savings"]

    def link(key: str, **kw: Any) -> str:
        return _link(saved[key], "savings/" + key, **kw)
    lines += ["", f"Stopping each run at the live doctor's first error: {link('failed_runs_stopped')} of the "
              f"{_link(scored['truly_failed'], 'truly_failed')} truly failed runs stopped (median first error at "
              f"G step {link('median_first_error_step', decimals=0)}), {link('steps_saved')} of their "
              f"{link('failed_steps_trained')} G steps saved "
              f"({link('steps_saved_fraction', decimals=1, percent=True)}), "
              f"{link('seconds_saved', decimals=0)} s of {link('failed_seconds_trained', decimals=0)} s of training; "
              f"{link('healthy_stopped_wrongly')} of the {link('healthy_runs')} healthy runs stopped wrongly "
              f"({link('healthy_steps_lost')} G steps lost)."]
    return "\n".join(lines)


def final_line_index(metrics: Sequence[Mapping[str, Any]], split: str) -> int | None:
    """Index of the last final evaluation line on `split` ("test" or "validation"), or None."""
    found = [i for i, r in enumerate(metrics) if r.get("final") is True and "eval_split" in r
             and (is_test_record(r) if split == "test" else r["eval_split"] == split)]
    return found[-1] if found else None


def rescore_record(record: dict[str, Any], workdir: Path) -> bool:
    """Replace the run's stored final test line by the current code's (`common.rescore_final_test` on its folder in
    `workdir`), keeping its step, time and flags; False (record unchanged) for a run without a final test line."""
    test, validation = final_line_index(record["metrics"], "test"), final_line_index(record["metrics"], "validation")
    if test is None or validation is None:
        return False
    rescored = rescore_final_test(workdir / record["run"], record["metrics"][validation])
    kept = {k: v for k, v in record["metrics"][test].items() if not k.startswith("eval_")}
    record["metrics"][test] = {**kept, **rescored["line"], "rescored_seed": rescored["seed"]}
    return True


def rescore(result: dict[str, Any], workdir: Path, folder: Path = RECORDS) -> dict[str, Any]:
    """Re-score every stored run's final test line, store the records, score the table again and record what
    changed (`test_rescored`: provenance, counts, the runs whose truth moved)."""
    started = time.perf_counter()
    before = result["table"]["per_run"]
    records = load_records(folder)
    done = []
    for record in records:
        if rescore_record(record, workdir):
            done.append(record["run"])
    provenance = rescore_provenance(  # the commit read before the records change
        time.perf_counter() - started, runs_rescored=len(done),
        runs_without_final_test=[r["run"] for r in records if r["run"] not in done], validation_reproduced=len(done),
        truly_failed_before=sum(r["truly_failed"] for r in before.values()))
    for record in records:  # stored only when every run was re-scored (a refusal leaves the records as they were)
        save_record(record, folder)
    result = score(result, folder)
    after = result["table"]["per_run"]
    provenance["truth_changed"] = {run: {"before": before[run]["final"], "after": row["final"],
                                         "truly_failed": row["truly_failed"]}
                                   for run, row in after.items()
                                   if run in before and before[run]["truly_failed"] != row["truly_failed"]}
    result["test_rescored"] = provenance
    return result


def write(result: Mapping[str, Any]) -> None:
    """results/doctor_blind.json and .md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{STEM}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    if "table" in result:
        (RESULTS / f"{STEM}.md").write_text(markdown(result) + "\n", encoding="utf-8")


def score(result: dict[str, Any], folder: Path = RECORDS) -> dict[str, Any]:
    """The result with its table rebuilt from the stored records (refused when the doctor's defaults moved)."""
    check_frozen(result["frozen"])
    records = load_records(folder)
    for record in records:
        if record["config"]["doctor"] != result["frozen"]["doctor"]:
            refuse(f"{record['run']} ran with other doctor settings than the frozen ones; run the benchmark again")
    result["table"] = table(records)
    result["scored"] = {"git": git_commit(),
                        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return result


def main() -> None:
    """Freeze the doctor, train the runs (or reuse the stored ones), score and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=150, help="runs planned (run i uses recipe i)")
    parser.add_argument("--stop-after-minutes", type=float, default=None,
                        help="start no new run after this many minutes (the runs done are scored)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ganstab-doctor-blind"))
    parser.add_argument("--recompute", action="store_true", help="score the stored records again, no training")
    parser.add_argument("--rescore-test", action="store_true",
                        help="replace the stored final test lines by the current code's final test evaluation of each "
                             "run's exported generator in --workdir, then score (no training)")
    parser.add_argument("--section", action="store_true",
                        help="print the table for RESULTS.md with linked figures (from the result file)")
    args = parser.parse_args()
    if args.section:
        print(results_section(json.loads((RESULTS / f"{STEM}.json").read_text(encoding="utf-8"))))
        return
    path = RESULTS / f"{STEM}.json"
    if args.rescore_test:
        if not path.is_file():
            refuse(f"{path} is missing; run the benchmark first (without --rescore-test)")
        try:
            result = rescore(json.loads(path.read_text(encoding="utf-8")), args.workdir)
        except (RescoreMismatch, CheckpointError, ConfigError) as exc:
            refuse(f"cannot re-score: {str(exc).splitlines()[0]}")
        write(result)
        print(markdown(result))
        return
    if args.recompute:
        if not path.is_file():
            refuse(f"{path} is missing; run the benchmark first (without --recompute)")
        result = score(json.loads(path.read_text(encoding="utf-8")))
        write(result)
        print(markdown(result))
        return
    started = time.perf_counter()
    if path.is_file() and any(RECORDS.glob("run-*.jsonl.gz")):
        result = json.loads(path.read_text(encoding="utf-8"))  # go on with the frozen defaults of the first start
        check_frozen(result["frozen"])
    else:
        result = {"frozen": {**doctor_defaults(), "git": git_commit(),
                             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}}
    result.update({
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]), "machine": machine(),
        "git": git_commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "budget_steps": BUDGET, "cuts": {cut: int(BUDGET * f) for cut, f in CUTS.items()}, "fixed": FIXED,
        "space": {k: list(v) for k, v in SPACE.items()}, "space_seed": SPACE_SEED, "truth_rule": TRUTH_TEXT,
        "truth": TRUTH, "runs_planned": args.runs})
    write(result)  # the frozen defaults are on disk before the first run
    for index in range(args.runs):
        if (RECORDS / f"run-{index:03d}.jsonl.gz").is_file():
            continue
        if args.stop_after_minutes is not None and time.perf_counter() - started > 60 * args.stop_after_minutes:
            break
        record = train_one(index, args.workdir)
        save_record(record)
        print(f"run-{index:03d} {record['wall_s']:.0f} s {record['error'] or ''}", flush=True)
    result = score(result)
    result["runs_done"] = result["table"]["runs"]
    write(result)
    print(markdown(result))


if __name__ == "__main__":
    main()
