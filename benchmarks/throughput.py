"""Throughput of the ganstab loop vs a plain tutorial-style loop, same architecture and batch size.

The reference loop is written the way common tutorials write it: a Dataset that converts each
image with Pillow/NumPy (ToTensor + Normalize re-implemented), a shuffling DataLoader, a
Sigmoid at D's end with BCELoss, label tensors built every step and `.item()` on every loss every
step. Both loops run in this one process, alternating, so their ratio is measured under the same
machine load.

Usage: python benchmarks/throughput.py [--steps 300] [--repeats 3] [--data fashion-mnist|digits]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganstab.config import load_config
from ganstab.train.loop import make_trainer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from modes2d import machine  # noqa: E402  (same machine description in every table)


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


def ganstab_steps(trainer, steps: int, log_every: int = 50) -> float:
    """Run the ganstab phases for `steps` G steps with its usual logging interval; returns seconds."""
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
        if trainer.step % log_every == 0:
            trainer.recorder.flush({"step": trainer.step}, write=False)
    return time.perf_counter() - start


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    """Measured float32 matmul throughput of this machine (GFLOP/s) with torch's current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def step_flops(trainer) -> float:
    """FLOPs of one ganstab train_step (D step + G step), counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return float(counter.get_total_flops())


def bench(preset: str, data: str, steps: int, repeats: int) -> dict:
    """Alternate ganstab and reference runs `repeats` times; return images/s medians and the ratio."""
    cfg = load_config(preset=preset, overrides=[f"data.name={data}", "out=/tmp/ganstab-bench", "log.progress=false",
                                                "train.ema=0"])
    trainer = make_trainer(cfg)
    images = ((trainer.data.train[:, 0].cpu().numpy() + 1) * 127.5).round().astype(np.uint8)
    batch = cfg.train.batch_size
    ours, ref = [], []
    for _ in range(repeats):
        ganstab_steps(trainer, 10)  # warm-up
        ours.append(steps * batch / ganstab_steps(trainer, steps))
        G = make_trainer(cfg).G
        D = make_trainer(cfg).D
        reference_steps(G, D, images, cfg.model.latent_dim, batch, 10, cfg.optim.g_lr, cfg.optim.d_lr,
                        tuple(cfg.optim.g_betas))
        ref.append(steps * batch / reference_steps(G, D, images, cfg.model.latent_dim, batch, steps,
                                                    cfg.optim.g_lr, cfg.optim.d_lr, tuple(cfg.optim.g_betas)))
    out = {"preset": preset, "data": data, "batch": batch, "steps": steps,
           "ganstab_img_s": float(np.median(ours)), "reference_img_s": float(np.median(ref))}
    out["ratio"] = out["ganstab_img_s"] / out["reference_img_s"]
    flops = step_flops(trainer)
    out["step_gflop"] = flops / 1e9
    out["achieved_gflops"] = flops / (batch / out["ganstab_img_s"]) / 1e9
    return out


TARGETS = {"blog": 1.5, "dcgan": 1.2}


def main() -> None:
    """Run the throughput benchmark for the blog MLP and dcgan presets; print and write the table and a plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--tag", default="", help="suffix for the output files (throughput-<tag>.md ...)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_gflops()
    rows = [bench(preset, args.data, args.steps, args.repeats) for preset in TARGETS]
    peak_after = matmul_gflops()
    for row in rows:
        row["fraction_of_matmul_peak"] = row["achieved_gflops"] / max(peak, peak_after)
    info = machine()
    command = "python benchmarks/throughput.py " + " ".join(sys.argv[1:])
    lines = [
        "# Throughput: ganstab's loop against a tutorial-style loop", "",
        f"- Command: `{command.strip()}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {info['cpu']}, {info['cores']} logical cores, torch {info['torch']} with "
        f"{torch.get_num_threads()} threads, Python {info['python']}",
        f"- float32 1024x1024 matmul: {peak:.0f} GFLOP/s before and {peak_after:.0f} GFLOP/s after the loops "
        "(the fraction below uses the larger)",
        f"- Medians of {args.repeats} alternating repeats of {args.steps} G steps each, {args.data}", "",
        "| preset | batch | ganstab img/s | reference img/s | ratio | target | GFLOP/step | achieved GFLOP/s "
        "| of matmul peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['preset']} | {r['batch']} | {r['ganstab_img_s']:.0f} | {r['reference_img_s']:.0f} | "
                     f"{r['ratio']:.2f}x | >= {TARGETS[r['preset']]}x | {r['step_gflop']:.3f} | "
                     f"{r['achieved_gflops']:.1f} | {100 * r['fraction_of_matmul_peak']:.0f} % |")
    text = "\n".join(lines)
    print(text)
    stem = f"throughput-{args.tag}" if args.tag else "throughput"
    results = HERE / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{stem}.md").write_text(text + "\n")
    (results / f"{stem}.json").write_text(json.dumps({"command": command, "matmul_gflops": [peak, peak_after],
                                                      "rows": rows}, indent=2))
    plot(rows, HERE / f"{stem}.png")


def plot(rows: list[dict], path: Path) -> None:
    """Bars of images/s (ganstab vs reference) per preset, with the measured ratio and the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r["reference_img_s"] for r in rows], 0.4, label="tutorial-style reference loop")
    ax.bar(xs + 0.2, [r["ganstab_img_s"] for r in rows], 0.4, label="ganstab loop")
    for x, r in zip(xs, rows):
        ax.text(x + 0.2, r["ganstab_img_s"], f"{r['ratio']:.2f}x (target {TARGETS[r['preset']]}x)",
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [f"{r['preset']} (batch {r['batch']})" for r in rows])
    ax.set_ylabel("images per second")
    ax.set_title("Training throughput on the same networks")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
