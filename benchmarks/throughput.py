"""Throughput of the whole `ganstab train` command against a whole tutorial-style training script.

Both sides are timed as processes, start to exit, and alternate: `python -m ganstab train --preset P
data.name=D train.steps=N log.progress=false out=...` (everything the command does: imports, data, the
training with its logging, checkpoints, evaluations, samples, plots, report and export), then this file run
as `python benchmarks/throughput.py reference --preset P --steps N` (imports, data, the same networks, the
tutorial loop). The reference loop is written the way common tutorials write it: a Dataset that converts
each image with Pillow/NumPy (ToTensor + Normalize re-implemented), a shuffling DataLoader, a Sigmoid at D's
end with BCELoss, label tensors built every step and `.item()` on every loss every step.

Usage: python benchmarks/throughput.py [--steps 300] [--repeats 3] [--data fashion-mnist|digits]
       python benchmarks/throughput.py reference --preset blog [--steps 300] [--data fashion-mnist]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import ganstab
from ganstab.data import make_dataset
from ganstab.models import build_discriminator, build_generator
from ganstab.pipeline import load_config
from ganstab.rundir import is_eval_record, is_test_record, read_records

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine, output_stem, write_results  # noqa: E402

class TutorialDataset(torch.utils.data.Dataset):
    """Per-item uint8 -> PIL -> float array -> normalised tensor, like transforms.Compose([ToTensor, Normalize])."""

    def __init__(self, images_uint8: np.ndarray) -> None:
        self.images = images_uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        img = Image.fromarray(self.images[i])
        arr = np.asarray(img, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(arr)[None]
        return (tensor - 0.5) / 0.5


def reference_steps(G: nn.Module, D: nn.Module, images_uint8: np.ndarray, latent: int, batch: int, steps: int,
                    g_lr: float, d_lr: float, betas: tuple[float, float]) -> float:
    """Run the tutorial loop for `steps` G steps; returns seconds."""
    D_sig = nn.Sequential(D, nn.Sigmoid())
    loader = torch.utils.data.DataLoader(TutorialDataset(images_uint8), batch_size=batch, shuffle=True,
                                         drop_last=True)
    opt_g = torch.optim.Adam(G.parameters(), lr=g_lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=d_lr, betas=betas)
    bce = nn.BCELoss()
    done = 0
    log = []
    start = time.perf_counter()
    while done < steps:
        for real in loader:
            real_labels = torch.ones(real.size(0))
            fake_labels = torch.zeros(real.size(0))
            z = torch.randn(real.size(0), latent)
            fake = G(z)
            d_loss = bce(D_sig(real).view(-1), real_labels) + bce(D_sig(fake.detach()).view(-1), fake_labels)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = bce(D_sig(fake).view(-1), real_labels)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            log.append((d_loss.item(), g_loss.item()))
            done += 1
            if done >= steps:
                break
    return time.perf_counter() - start


def reference_main(argv: list[str]) -> None:
    """The whole reference script: load the data, build the preset's networks, run the tutorial loop."""
    parser = argparse.ArgumentParser(prog="throughput.py reference")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data", default="fashion-mnist")
    args = parser.parse_args(argv)
    cfg = load_config(preset=args.preset, overrides=[f"data.name={args.data}"])
    torch.manual_seed(cfg.seed)
    data = make_dataset(cfg.data, cfg.seed)
    images = ((data.train[:, 0].numpy() + 1) * 127.5).round().astype(np.uint8)
    G = build_generator(cfg.model, data.shape, cfg, 0)
    D = build_discriminator(cfg.model, data.shape, cfg, 0)
    reference_steps(G, D, images, cfg.model.latent_dim, cfg.train.batch_size, args.steps, cfg.optim.g_lr,
                    cfg.optim.d_lr, tuple(cfg.optim.g_betas))


def ganstab_command(preset: str, data: str, steps: int, out: Path) -> list[str]:
    """The `ganstab train` command a user would type for `steps` G steps of a preset (progress bar off)."""
    return [sys.executable, "-m", "ganstab", "train", "--preset", preset, f"data.name={data}", f"train.steps={steps}",
            "log.progress=false", f"out={out}", "--overwrite"]


def reference_command(preset: str, data: str, steps: int) -> list[str]:
    """The whole reference script for the same preset, data and G steps."""
    return [sys.executable, str(Path(__file__).resolve()), "reference", "--preset", preset, "--steps", str(steps),
            "--data", data]


def wall_seconds(command: list[str]) -> float:
    """Seconds from starting a command to its exit (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=HERE.parent, env=command_env())
    return time.perf_counter() - start


def command_env() -> dict[str, str]:
    """This environment with this checkout first on PYTHONPATH, so both processes import its ganstab."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(ganstab.__file__).resolve().parents[1]) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def evaluation_seconds(run_dir: Path) -> float:
    """Seconds a finished run spent in its evaluations (the `eval_time` of every validation and test line)."""
    return sum(float(r.get("eval_time", 0.0)) for r in read_records(run_dir) if is_eval_record(r) or is_test_record(r))


def bench(preset: str, data: str, steps: int, repeats: int, workdir: Path) -> dict:
    """Alternate the whole ganstab command and the whole reference script `repeats` times; medians and ratio."""
    cfg = load_config(preset=preset, overrides=[f"data.name={data}"])
    batch = cfg.train.batch_size
    ours_cmd = ganstab_command(preset, data, steps, workdir / preset)
    ref_cmd = reference_command(preset, data, steps)
    ours, ref, ratios, evals = [], [], [], []
    for i in range(repeats):
        pair = [("ganstab", ours_cmd), ("reference", ref_cmd)]
        if i % 2:
            pair.reverse()
        seconds = {name: wall_seconds(command) for name, command in pair}
        evals.append(evaluation_seconds(workdir / preset))
        ours.append(seconds["ganstab"])
        ref.append(seconds["reference"])
        ratios.append(seconds["reference"] / seconds["ganstab"])
    out = {"preset": preset, "data": data, "batch": batch, "steps": steps,
           "ganstab_command": " ".join(["python"] + ours_cmd[1:]).replace(str(workdir), "TMP"),
           "reference_command": " ".join(["python", "benchmarks/throughput.py"] + ref_cmd[2:]),
           "ganstab_wall_s": ours, "reference_wall_s": ref, "ratios": ratios,
           "ganstab_wall_s_median": statistics.median(ours), "reference_wall_s_median": statistics.median(ref),
           "ratio_median": statistics.median(ratios), "ganstab_eval_s": evals,
           "ganstab_eval_s_median": statistics.median(evals)}
    out["ganstab_img_s"] = steps * batch / out["ganstab_wall_s_median"]
    out["reference_img_s"] = steps * batch / out["reference_wall_s_median"]
    return out


TARGETS = {"blog": 1.5, "dcgan": 1.2}


def git_commit() -> str:
    """The checkout's commit (with '+dirty' when the tree has changes), or 'unknown'."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def main() -> None:
    """Time the whole commands for the blog MLP and dcgan presets, alternating; print and write the table and a plot."""
    if sys.argv[1:2] == ["reference"]:
        reference_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--tag", default="", help="suffix for the output files (throughput-<tag>.md ...)")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="ganstab-throughput-") as tmp:
        rows = {preset: bench(preset, args.data, args.steps, args.repeats, Path(tmp)) for preset in TARGETS}
    info = machine()
    command = ("python benchmarks/throughput.py " + " ".join(sys.argv[1:])).strip()
    lines = [
        "# Throughput: the whole `ganstab train` command against a whole tutorial-style script", "",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC, commit {git_commit()}",
        f"- Machine: {info['cpu']}, {info['cores']} logical cores, torch {info['torch']}, Python {info['python']}",
        f"- Each side a whole process, start to exit, {args.steps} G steps of {args.data}; {args.repeats} "
        "alternating pairs (the order swapped every pair); medians, and the median of the per-pair ratios", "",
        "| preset | batch | ganstab train (s) | of which evaluations (s) | reference script (s) | "
        "ratio (reference / ganstab) | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset, r in rows.items():
        lines.append(f"| {preset} | {r['batch']} | {r['ganstab_wall_s_median']:.1f} | {r['ganstab_eval_s_median']:.1f} | "
                     f"{r['reference_wall_s_median']:.1f} | {r['ratio_median']:.2f}x | >= {TARGETS[preset]}x |")
    lines += ["", "Commands:", ""] + [f"- `{r['ganstab_command']}`\n- `{r['reference_command']}`"
                                      for r in rows.values()]
    text = "\n".join(lines)
    print(text)
    payload = {"command": command, "date": f"{started:%Y-%m-%d %H:%M} UTC", "commit": git_commit(),
               "machine": info, "rows": rows}
    png = write_results(output_stem("throughput", args.tag), text, payload)
    plot(list(rows.values()), png)


def plot(rows: list[dict], path: Path) -> None:
    """Bars of whole-command seconds (ganstab vs reference) per preset, with the measured ratio and the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r["reference_wall_s_median"] for r in rows], 0.4, label="tutorial-style reference script")
    ax.bar(xs + 0.2, [r["ganstab_wall_s_median"] for r in rows], 0.4, label="ganstab train")
    for x, r in zip(xs, rows):
        ax.text(x + 0.2, r["ganstab_wall_s_median"], f"{r['ratio_median']:.2f}x\n(target {TARGETS[r['preset']]}x)",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [f"{r['preset']}, {r['steps']} steps (batch {r['batch']})" for r in rows])
    ax.set_ylabel("seconds, process start to exit")
    ax.set_title("Whole training commands on the same networks")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
