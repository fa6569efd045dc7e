"""2-D mode-collapse benchmark with the PacGAN protocol (GUIDE.md section 5) on ring8 and grid25.

Every configuration is trained on both datasets for several seeds; each run logs an eval line
every `--eval-every` steps (so the stability doctor sees an `eval_modes` series) and one at the
end with 2,500 samples. Reported per configuration and dataset: modes captured, high-quality
fraction and reverse KL as mean +- standard error over seeds, seeds that reached all modes,
wall and CPU time per run, and the doctor's findings (counts by severity summed over seeds, and
in how many runs a `mode_collapse*` finding fired). Published rows (PacGAN and VEEGAN Table 1)
are printed beside them and labelled as such; they are not re-run.

Every baseline uses the toy architecture (MLPs of width 128 x depth 3, latent dim 2, batch 256,
3,000 G steps) with its preset's loss, penalty, optimiser, norms, n_critic, EMA and label
settings; `modes2d` is the preset as shipped. `r3gan` is R3GAN's recipe (relativistic pairing loss,
R1 + R2, gamma decayed, Adam beta2 ramped, lr decayed) on `modes2d`'s networks, batch, steps and EMA,
so that the two differ in the loss, regularisation and optimiser schedule only; `r3gan@<gamma>` is the
same with another starting gamma (for a search, on seeds that no table reports: `--first-seed`).

Every run's scores are its final evaluation on the test reference (`eval_split: test`); the
validation scores of the same step are kept beside them (`val_*`), and only they may select.

Usage:
    python benchmarks/modes2d.py                 # 10 seeds, --jobs 2
    python benchmarks/modes2d.py --quick         # 2 seeds, a third of the steps (< 10 minutes)
    python benchmarks/modes2d.py --seeds 3 --configs gan,modes2d --datasets grid25
    python benchmarks/modes2d.py --seeds 3 --configs modes2d,r3gan --tag r3gan
    python benchmarks/modes2d.py --seeds 1 --first-seed 100 --configs r3gan@0.01,r3gan@0.1,r3gan@1 --tag r3gan-gamma
    python benchmarks/modes2d.py --tag r3gan --rescore-test --workdir DIR   # new test scores, no training
Runs go to --workdir (default /tmp/ganstab-modes2d); a run whose result.json is there is reused
with --reuse. `--rescore-test` trains nothing: it replaces the test scores of every run stored in
results/modes2d[-TAG].json by the current code's final test evaluation of the run's exported generator in
--workdir (`common.rescore_final_test`: the test latent seed, the run's eval.n) and rewrites the table.
Outputs: benchmarks/results/modes2d.md, benchmarks/results/modes2d.json and
benchmarks/modes2d.png (or --tag to write modes2d-<tag>.*).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (RESULTS, RescoreMismatch, add_summary, machine, output_stem, rescore_final_test,  # noqa: E402
                    rescore_provenance, write_results)
from ganstab.errors import GanstabError  # noqa: E402

# the blog recipe's two-sided smoothing warns on every config load; the table notes it instead
warnings.filterwarnings("ignore", message="loss.fake_label=")
DATASETS = ("grid25", "ring8")
MODES = {"grid25": 25, "ring8": 8}

#: The toy architecture every baseline is adapted to (the `toy` preset's model and batch).
TOY_ARCH = ["model.arch=toy", "model.hidden=null", "model.latent_dim=2", "model.width=128", "model.depth=3",
            "train.batch_size=256", "train.steps=3000", "data.limit=null"]


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark configuration: a preset plus the overrides that adapt it to 2-D points."""

    preset: str
    overrides: tuple[str, ...]
    note: str


CONFIGS: dict[str, BenchConfig] = {
    "blog": BenchConfig("blog", tuple(TOY_ARCH),
                        "BN in G and D, G lr 1e-3 / D lr 1e-4, betas (0.5, 0.999), labels 0.9/0.1, nonsaturating"),
    "gan": BenchConfig("toy", (), "the `toy` preset: plain nonsaturating GAN, lr 1e-3 both, betas (0.5, 0.999)"),
    "wgan-gp": BenchConfig("wgan-gp", tuple(TOY_ARCH),
                           "Wasserstein + GP 10, n_critic 5, lr 1e-4, betas (0, 0.9), BN in G, layer norm in D"),
    "wgan-clip": BenchConfig("wgan-clip", tuple(TOY_ARCH),
                             "Wasserstein + clipping 0.01, n_critic 5, RMSProp lr 5e-5, BN in G"),
    "lsgan": BenchConfig("lsgan", tuple(TOY_ARCH), "least squares, BN in G and D, lr 2e-4, betas (0.5, 0.999)"),
    "hinge-sn": BenchConfig("hinge-sn", tuple(TOY_ARCH),
                            "hinge, spectral norm in D, BN in G, D 4e-4 / G 1e-4, betas (0, 0.9), EMA 10k images"),
    "modes2d": BenchConfig("modes2d", (), "the `modes2d` preset as shipped"),
}

#: R3GAN on 2-D: the starting gamma of R1 and R2, set by a rule, not searched: the R1 weight that `modes2d` uses on
#: these networks, for R1 and R2 alike; both decay to a tenth as in R3GAN's recipes (benchmarks/HISTORY.md, section
#: "R3GAN's recipe against modes2d").
R3GAN_2D_GAMMA = 0.1
#: images seen over which R3GAN's schedules run: the whole modes2d budget, 10,000 G steps x 2 real batches of 256
#: (the relativistic G step draws a real batch too, and images_seen counts it)
R3GAN_2D_IMAGES = 10_000 * 2 * 256


def r3gan_2d(gamma: float) -> BenchConfig:
    """R3GAN's recipe on `modes2d`'s networks and budget: RpGAN + R1 + R2 (gamma -> gamma/10), lr/4, beta2 ramp."""
    moves = (("gamma_r1", "penalty.r1", gamma / 10), ("gamma_r2", "penalty.r2", gamma / 10),
             ("lr_g", "optim.g_lr", 2.5e-4), ("lr_d", "optim.d_lr", 2.5e-4),
             ("beta2_g", "optim.g_beta2", 0.99), ("beta2_d", "optim.d_beta2", 0.99))
    overrides = ["loss.kind=relativistic", f"penalty.r1={gamma:g}", f"penalty.r2={gamma:g}",
                 "optim.g_betas=[0.0,0.9]", "optim.d_betas=[0.0,0.9]"]
    for name, key, end in moves:
        overrides += [f"schedule.{name}.key={key}", f"schedule.{name}.end={end:g}",
                      f"schedule.{name}.images={R3GAN_2D_IMAGES}", f"schedule.{name}.kind=cosine"]
    note = (f"preset `modes2d` (toy MLPs, batch 256, 10k steps, EMA 20k) with R3GAN's recipe: relativistic pairing "
            f"loss, R1 = R2 = {gamma:g} -> {gamma / 10:g}, lr 1e-3 -> 2.5e-4, betas (0, 0.9 -> 0.99), all cosine over "
            f"the run's {R3GAN_2D_IMAGES:,} images seen")
    return BenchConfig("modes2d", tuple(overrides), note)


def bench_config(name: str) -> BenchConfig:
    """The configuration named `name`: one of CONFIGS, `r3gan` (gamma R3GAN_2D_GAMMA) or `r3gan@<gamma>`."""
    if name in CONFIGS:
        return CONFIGS[name]
    if name == "r3gan":
        return r3gan_2d(R3GAN_2D_GAMMA)
    if name.startswith("r3gan@"):
        try:
            gamma = float(name[len("r3gan@"):])
        except ValueError:
            gamma = -1.0
        if gamma > 0 and math.isfinite(gamma):
            return r3gan_2d(gamma)
    raise ValueError(f"unknown config {name!r}; known: {', '.join(CONFIGS)}, r3gan, r3gan@<gamma > 0>")

#: Published numbers (not re-run): (source, config, dataset, modes, hq %, reverse KL or None).
PUBLISHED = [
    ("PacGAN Table 1", "GAN", "grid25", 17.3, 94.8, None),
    ("PacGAN Table 1", "PacGAN4", "grid25", 24.8, 93.6, 0.04),
    ("PacGAN Table 1", "PacGAN2", "ring8", 7.9, 95.6, 0.07),
    ("VEEGAN Table 1", "VEEGAN", "grid25", 24.6, 40.0, None),
    ("VEEGAN Table 1", "VEEGAN", "ring8", 8.0, 52.9, None),
]


def run_overrides(name: str, data: str, seed: int, out: Path, quick: bool, eval_every: int) -> tuple[str, list[str]]:
    """The preset and key=value overrides of one benchmark run."""
    from ganstab.pipeline import load_config

    bench = bench_config(name)
    overrides = list(bench.overrides) + [f"data.name={data}", f"seed={seed}"]
    steps = load_config(preset=bench.preset, overrides=overrides).train.steps
    if quick:
        steps = max(eval_every, steps // 3)
    overrides += [f"train.steps={steps}", "train.threads=1", "train.device=cpu", f"out={out}",
                  f"eval.every={eval_every}", "eval.final=true", "eval.n=2500",
                  f"log.sample_every={steps}", "log.checkpoint_every=1000", "log.progress=false"]
    return bench.preset, overrides


def count_findings(path: Path) -> dict[str, Any]:
    """Findings of a run by severity, their codes, and whether a mode-collapse finding fired."""
    by_severity: dict[str, int] = {}
    codes: list[str] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                finding = json.loads(line)
            except json.JSONDecodeError:
                continue
            sev = str(finding.get("severity", "unknown"))
            by_severity[sev] = by_severity.get(sev, 0) + 1
            codes.append(str(finding.get("code", "")))
    return {"by_severity": by_severity, "codes": codes,
            "mode_collapse": any(c.startswith("mode_collapse") for c in codes)}


def final_scores(evals: list[dict[str, Any]], steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The final evaluation's validation line and its test line at `steps` ({} for a missing one)."""
    # the final eval lines count even if something after them (plots, report) failed
    final = [e for e in evals if e["step"] == steps and e.get("final")]
    validation = [e for e in final if e.get("eval_split") == "validation"]
    test = [e for e in final if e.get("eval_split") == "test"]
    return (validation[-1] if validation else {}), (test[-1] if test else {})


def run_one(job: tuple[str, str, int, str, bool, int]) -> dict[str, Any]:
    """Train one (config, dataset, seed) in this worker process and return its scores and costs."""
    name, data, seed, workdir, quick, eval_every = job
    import torch

    from ganstab.pipeline import load_config
    from ganstab.train import train

    torch.set_num_threads(1)
    out = Path(workdir) / f"{name}-{data}-s{seed}"
    preset, overrides = run_overrides(name, data, seed, out, quick, eval_every)
    cfg = load_config(preset=preset, overrides=overrides)
    t0, c0 = time.perf_counter(), time.process_time()
    error = None
    try:
        result = train(cfg, overwrite=True, echo=lambda message: None)
        steps = result.steps
    except Exception as exc:  # a diverged baseline is a result, not a benchmark failure
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        steps = None
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    evals = []
    metrics = out / "metrics.jsonl"
    if metrics.exists():
        evals = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if '"eval_modes"' in line]
    validation, test = final_scores(evals, cfg.train.steps)
    record = {
        "config": name, "data": data, "seed": seed, "preset": preset, "overrides": overrides, "steps": steps,
        "modes": test.get("eval_modes"), "hq_fraction": test.get("eval_hq_fraction"),
        "reverse_kl": test.get("eval_reverse_kl"), "eval_split": test.get("eval_split"),
        "val_modes": validation.get("eval_modes"), "val_hq_fraction": validation.get("eval_hq_fraction"),
        "val_reverse_kl": validation.get("eval_reverse_kl"), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "eval_series": [(e["step"], e["eval_modes"], e["eval_hq_fraction"]) for e in evals
                        if e.get("eval_split") != "test"],
        "findings": count_findings(out / "findings.jsonl"), "error": error,
    }
    (out / "result.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (config, dataset), configs in order of first record: means +- s.e., all-mode seeds, times, findings."""
    rows = []
    for name in dict.fromkeys(r["config"] for r in records):
        for data in DATASETS:
            runs = [r for r in records if r["config"] == name and r["data"] == data]
            if not runs:
                continue
            ok = [r for r in runs if r["modes"] is not None]
            row: dict[str, Any] = {"config": name, "data": data, "seeds": len(runs), "failed": len(runs) - len(ok)}
            # a failed (diverged) run counts as 0 modes, 0 HQ and the worst reverse KL, log K
            modes = [r["modes"] if r["modes"] is not None else 0.0 for r in runs]
            hq = [100 * r["hq_fraction"] if r["hq_fraction"] is not None else 0.0 for r in runs]
            rkl = [r["reverse_kl"] if r["reverse_kl"] is not None else math.log(MODES[data]) for r in runs]
            row["modes"], row["modes_se"] = mean_se(modes)
            row["hq"], row["hq_se"] = mean_se(hq)
            row["rkl"], row["rkl_se"] = mean_se(rkl)
            row["all_modes"] = sum(1 for m in modes if m >= MODES[data])
            row["hq_by_seed"] = {str(r["seed"]): r["hq_fraction"] or 0.0 for r in runs}
            val_modes = [r.get("val_modes") or 0.0 for r in runs]
            val_hq = [100 * r["val_hq_fraction"] if r.get("val_hq_fraction") is not None else 0.0 for r in runs]
            row["val_modes"], row["val_modes_se"] = mean_se(val_modes)
            row["val_hq"], row["val_hq_se"] = mean_se(val_hq)
            row["wall_s"] = sum(r["wall_s"] for r in runs) / len(runs)
            row["wall_max_s"] = max(r["wall_s"] for r in runs)
            row["cpu_s"] = sum(r["cpu_s"] for r in runs) / len(runs)
            severities: dict[str, int] = {}
            for r in runs:
                for sev, n in r["findings"]["by_severity"].items():
                    severities[sev] = severities.get(sev, 0) + n
            row["findings"] = severities
            row["collapse_runs"] = sum(1 for r in runs if r["findings"]["mode_collapse"])
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The rows keyed by dataset then config, each score as {mean, se} (HQ as a fraction): stable keys to cite."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["data"], {})[r["config"]] = {
            "modes": {"mean": r["modes"], "se": r["modes_se"]},
            "hq_fraction": {"mean": r["hq"] / 100, "se": r["hq_se"] / 100, "min": min(r["hq_by_seed"].values()),
                            "max": max(r["hq_by_seed"].values()), "by_seed": r["hq_by_seed"]},
            "reverse_kl": {"mean": r["rkl"], "se": r["rkl_se"]},
            "val_modes": {"mean": r["val_modes"], "se": r["val_modes_se"]},
            "val_hq_fraction": {"mean": r["val_hq"] / 100, "se": r["val_hq_se"] / 100},
            "all_modes": r["all_modes"], "seeds": r["seeds"], "failed": r["failed"], "cpu_s": r["cpu_s"]}
    return out


def git_commit() -> str:
    """The checkout's HEAD commit, with '+dirty' when tracked files differ from it ('unknown' outside git)."""
    try:
        head = subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _findings_text(row: dict[str, Any]) -> str:
    sev = row["findings"]
    parts = [f"{sev[k]} {k}" for k in ("error", "warning", "info") if sev.get(k)]
    parts += [f"{n} {k}" for k, n in sev.items() if k not in ("error", "warning", "info")]
    return ", ".join(parts) or "none"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], rescored: Optional[dict[str, Any]] = None) -> str:
    """The results table with the published rows, the command, date and machine (and the re-scoring, if any)."""
    m = meta["machine"]
    lines = [
        "# 2-D mode collapse (PacGAN protocol)",
        "",
        f"- Command: `{meta['command']}`",
        f"- Commit: {meta.get('commit', 'unknown')}",
        f"- Date: {meta['date']}; wall time of this invocation {meta['total_wall_s'] / 60:.1f} min "
        f"({meta.get('reused_runs', 0)} runs reused from --workdir)",
        f"- Machine: {m['cpu']}, {m['cores']} logical cores (shared), torch {m['torch']}, Python {m['python']}; "
        f"{meta['jobs']} worker processes, each `train.threads=1`",
        "- Protocol: ring8 (radius 1, std 0.01) and grid25 ({-4,-2,0,2,4}^2, std 0.05); 2,500 samples from the "
        "sampling network (EMA copy when enabled); high quality = within 3 std of the nearest mode; a mode is "
        "captured when at least one HQ sample is nearest to it; reverse KL of the HQ samples' mode histogram "
        "against uniform. Scores are the final evaluation on the test reference; `val` columns are the same "
        "step on the validation reference (the only ones a choice may use).",
        f"- Seeds per row: {meta['seeds']} (seeds {meta.get('first_seed', 0)}–{meta.get('first_seed', 0) + meta['seeds'] - 1}){' (quick mode: a third of the steps)' if meta['quick'] else ''}; "
        "values are mean ± standard error over seeds; `all` = seeds that captured every mode; time = mean wall "
        "time per run (max in brackets) while the listed number of runs shared the machine.",
        f"- Doctor: eval every {meta['eval_every']} steps; findings summed over seeds by severity; "
        "`collapse` = runs in which a `mode_collapse*` finding fired.",
    ]
    if meta.get("note"):
        lines.append(f"- Note: {meta['note']}")
    if rescored:
        lines.append(f"- Test scores re-scored {rescored['date']} at commit {rescored['commit'][:10]} "
                     f"(`{rescored['command']}`, {rescored['seconds']:.0f} s, {rescored['runs_rescored']} runs, each "
                     f"export first reproducing its stored final validation line): {rescored['seed_rule']}.")
    lines += [
        "",
        "| config | data | modes | HQ % | reverse KL | all | val modes | val HQ % | time/run s | CPU s "
        "| doctor findings | collapse |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        failed = f" ({r['failed']} failed)" if r["failed"] else ""
        lines.append(
            f"| {r['config']} | {r['data']} | {r['modes']:.2f} ± {r['modes_se']:.2f} | {r['hq']:.1f} ± {r['hq_se']:.1f} "
            f"| {r['rkl']:.3f} ± {r['rkl_se']:.3f} | {r['all_modes']}/{r['seeds']}{failed} "
            f"| {r['val_modes']:.2f} ± {r['val_modes_se']:.2f} | {r['val_hq']:.1f} ± {r['val_hq_se']:.1f} "
            f"| {r['wall_s']:.0f} ({r['wall_max_s']:.0f}) | {r['cpu_s']:.0f} | {_findings_text(r)} "
            f"| {r['collapse_runs']}/{r['seeds']} |")
    for source, name, data, modes, hq, rkl in PUBLISHED:
        rkl_text = f"{rkl:.2f}" if rkl is not None else "–"
        lines.append(f"| {name} (published, {source}; not re-run) | {data} | {modes} | {hq} | {rkl_text} "
                     "| – | – | – | – | – | – | – |")
    lines += ["", "Configurations (all on the toy architecture unless noted):", ""]
    for name in dict.fromkeys(r["config"] for r in rows):
        bench = bench_config(name)
        lines.append(f"- `{name}`: preset `{bench.preset}`; {bench.note}.")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Bar chart of modes captured and HQ % per configuration, one panel row per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data_names = [d for d in DATASETS if any(r["data"] == d for r in rows)]
    fig, axes = plt.subplots(len(data_names), 2, figsize=(11, 3.4 * len(data_names)), squeeze=False)
    for i, data in enumerate(data_names):
        sub = [r for r in rows if r["data"] == data]
        names = [r["config"] for r in sub]
        x = range(len(sub))
        ax = axes[i][0]
        ax.bar(x, [r["modes"] for r in sub], yerr=[r["modes_se"] for r in sub], capsize=3, color="tab:blue")
        ax.axhline(MODES[data], color="k", lw=0.8, ls="--")
        ax.set_ylabel(f"{data}: modes captured")
        ax.set_ylim(0, MODES[data] * 1.08)
        ax = axes[i][1]
        ax.bar(x, [r["hq"] for r in sub], yerr=[r["hq_se"] for r in sub], capsize=3, color="tab:orange")
        ax.set_ylabel(f"{data}: high-quality %")
        ax.set_ylim(0, 105)
        for ax in axes[i]:
            ax.set_xticks(list(x))
            ax.set_xticklabels(names, rotation=30, ha="right")
    fig.suptitle("PacGAN protocol: mean ± standard error over seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 10; 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="2 seeds and a third of the steps")
    p.add_argument("--jobs", type=int, default=2, help="parallel worker processes (each train.threads=1)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed (a search uses seeds no table reports)")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help="comma-separated subset of " + ",".join(CONFIGS) + ",r3gan,r3gan@<gamma>")
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of ring8,grid25")
    p.add_argument("--eval-every", type=int, default=500, help="steps between eval lines (the doctor's series)")
    p.add_argument("--workdir", default="/tmp/ganstab-modes2d", help="folder for the run folders")
    p.add_argument("--reuse", action="store_true", help="reuse runs whose result.json is in --workdir")
    p.add_argument("--note", default="", help="a line added to the markdown header (e.g. how runs were reused)")
    p.add_argument("--tag", default="", help="suffix for the output files (modes2d-<tag>.md ...)")
    p.add_argument("--rescore-test", action="store_true",
                   help="train nothing: re-score the final test line of every run stored in results/modes2d[-TAG].json "
                        "from its exported generator in --workdir, then rewrite the table, JSON and plot")
    p.add_argument("--summarise", action="store_true",
                   help="only recompute the summary key of the stored results/modes2d[-TAG].json from its rows")
    args = p.parse_args(argv)
    if args.seeds is None:
        args.seeds = 2 if args.quick else 10
    return args


def summarise(payload: dict) -> dict:
    """The stored table rows keyed by `config/data`, and each run's index in `runs` keyed by `config/data/seed`."""
    return {"rows": {f"{row['config']}/{row['data']}": row for row in payload["rows"]},
            "run_index": {f"{run['config']}/{run['data']}/{run['seed']}": n for n, run in enumerate(payload["runs"])}}


def final_lines(out: Path, steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored final validation and test lines of the run in `out` (see `final_scores`)."""
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else []
    return final_scores([json.loads(line) for line in lines if '"eval_modes"' in line], steps)


def rescore_runs(payload: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Replace every stored run's test scores by the current code's final test evaluation of its exported generator
    (`common.rescore_final_test`); rows, table and `test_rescored` rebuilt; validation scores, times, findings kept."""
    started = time.perf_counter()
    runs = [dict(run) for run in payload["runs"]]
    for run in runs:
        out = workdir / f"{run['config']}-{run['data']}-s{run['seed']}"
        validation, _ = final_lines(out, run["steps"]) if run["steps"] is not None else ({}, {})
        if not validation:
            continue  # a run that stopped early has no final line to re-score
        if validation.get("eval_modes") != run["val_modes"]:
            raise RescoreMismatch(f"{out}: its final validation line is not the stored run's ({run['val_modes']} "
                                  f"modes stored, {validation.get('eval_modes')} in the folder); pass the --workdir "
                                  "that ran it")
        rescored = rescore_final_test(out, validation)
        line = rescored["line"]
        run.update({"modes": line["eval_modes"], "hq_fraction": line["eval_hq_fraction"],
                    "reverse_kl": line["eval_reverse_kl"], "eval_split": line["eval_split"],
                    "test_seed": rescored["seed"]})
    rows = summarize(runs)
    rescored = rescore_provenance(time.perf_counter() - started, runs_rescored=sum("test_seed" in r for r in runs))
    return {**payload, "table": table(rows), "rows": rows, "runs": runs, "test_rescored": rescored}


def main(argv: Optional[list[str]] = None) -> int:
    """Run every (config, dataset, seed), then write the table, JSON and plot."""
    args = parse_args(argv)
    if args.summarise:
        add_summary(output_stem("modes2d", args.tag), summarise)
        return 0
    if args.rescore_test:
        stem = output_stem("modes2d", args.tag)
        path = RESULTS / f"{stem}.json"
        if not path.is_file():
            print(f"modes2d.py: {path} is missing; run the benchmark first (without --rescore-test)", file=sys.stderr)
            return 2
        try:
            payload = rescore_runs(json.loads(path.read_text(encoding="utf-8")), Path(args.workdir))
        except (RescoreMismatch, GanstabError) as exc:
            print(f"modes2d.py: cannot re-score: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
        text = markdown(payload["rows"], payload["meta"], payload["test_rescored"])
        print(text)
        plot(payload["rows"], write_results(stem, text, payload))
        add_summary(stem, summarise)
        return 0
    names = [c for c in args.configs.split(",") if c]
    data_names = [d for d in args.datasets.split(",") if d]
    for name in names:
        try:
            bench_config(name)
        except ValueError as exc:
            print(f"modes2d.py: {exc}", file=sys.stderr)
            return 2
    for data in data_names:
        if data not in DATASETS:
            print(f"modes2d.py: unknown dataset {data!r}; known: {', '.join(DATASETS)}", file=sys.stderr)
            return 2
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # seed-major order: an interrupted benchmark still has every configuration at the same seeds
    jobs = [(n, d, s, str(workdir), args.quick, args.eval_every)
            for s in range(args.first_seed, args.first_seed + args.seeds) for n in names for d in data_names]
    records, todo = [], []
    for job in jobs:
        cached = workdir / f"{job[0]}-{job[1]}-s{job[2]}" / "result.json"
        if args.reuse and cached.exists():
            records.append(json.loads(cached.read_text(encoding="utf-8")))
        else:
            todo.append(job)
    t0 = time.perf_counter()
    with get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for rec in pool.imap_unordered(run_one, todo):
            records.append(rec)
            modes = "failed" if rec["modes"] is None else f"modes={rec['modes']:.0f} hq={rec['hq_fraction']:.3f} " \
                                                          f"rkl={rec['reverse_kl']:.3f}"
            print(f"[{len(records)}/{len(jobs)}] {rec['config']} {rec['data']} seed {rec['seed']}: {modes} "
                  f"wall {rec['wall_s']:.0f}s cpu {rec['cpu_s']:.0f}s findings {rec['findings']['by_severity']}",
                  flush=True)
    total = time.perf_counter() - t0
    rows = summarize(records)
    meta = {"command": "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]))] + sys.argv[1:]),
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": machine(), "commit": git_commit(), "jobs": args.jobs, "seeds": args.seeds,
            "first_seed": args.first_seed, "quick": args.quick,
            "eval_every": args.eval_every, "total_wall_s": total, "note": args.note,
            "reused_runs": len(records) - len(todo)}
    text = markdown(rows, meta)
    print(text)
    published = [dict(zip(("source", "config", "data", "modes", "hq", "reverse_kl"), p)) for p in PUBLISHED]
    png = write_results(output_stem("modes2d", args.tag), text,
                        {"meta": meta, "table": table(rows), "rows": rows, "published": published, "runs": records})
    add_summary(output_stem("modes2d", args.tag), summarise)
    plot(rows, png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
