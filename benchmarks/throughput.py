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
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganstab.pipeline import load_config
from ganstab.pipeline import make_trainer

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


def bench(preset: str, data: str, steps: int, repeats: int, precision: str = "fp32") -> dict:
    """Alternate ganstab and reference runs `repeats` times; return images/s medians and the ratio."""
    cfg = load_config(preset=preset, overrides=[f"data.name={data}", "out=/tmp/ganstab-bench", "log.progress=false",
                                                "train.ema=0", f"train.precision={precision}"])
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
    out = {"preset": preset, "precision": precision, "data": data, "batch": batch, "steps": steps,
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
    parser.add_argument("--bf16", action="store_true",
                        help="also measure ganstab with train.precision=bf16 (reported apart: not the same numerics)")
    parser.add_argument("--tag", default="", help="suffix for the output files (throughput-<tag>.md ...)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_gflops()
    rows = [bench(preset, args.data, args.steps, args.repeats) for preset in TARGETS]
    if args.bf16:
        rows += [bench(preset, args.data, args.steps, args.repeats, "bf16") for preset in TARGETS]
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
        "| preset | ganstab precision | batch | ganstab img/s | reference img/s (fp32) | ratio | target "
        "| GFLOP/step | achieved GFLOP/s | of fp32 matmul peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = f">= {TARGETS[r['preset']]}x" if r["precision"] == "fp32" else "(not comparable)"
        lines.append(f"| {r['preset']} | {r['precision']} | {r['batch']} | {r['ganstab_img_s']:.0f} | "
                     f"{r['reference_img_s']:.0f} | {r['ratio']:.2f}x | {target} | {r['step_gflop']:.3f} | "
                     f"{r['achieved_gflops']:.1f} | {100 * r['fraction_of_matmul_peak']:.0f} % |")
    text = "\n".join(lines)
    print(text)
    png = write_results(output_stem("throughput", args.tag), text,
                        {"command": command, "matmul_gflops": [peak, peak_after], "rows": rows})
    plot(rows, png)


def plot(rows: list[dict], path: Path) -> None:
    """Bars of images/s (ganstab vs reference) per preset, with the measured ratio and the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    bf16 = {r["preset"]: r for r in rows if r["precision"] == "bf16"}
    xs = np.arange(len(fp32))
    ax.bar(xs - 0.27, [r["reference_img_s"] for r in fp32], 0.27, label="tutorial-style reference loop (fp32)")
    ax.bar(xs, [r["ganstab_img_s"] for r in fp32], 0.27, label="ganstab loop (fp32)")
    for x, r in zip(xs, fp32):
        ax.text(x, r["ganstab_img_s"], f"{r['ratio']:.2f}x\n(target {TARGETS[r['preset']]}x)",
                ha="center", va="bottom", fontsize=7)
    if bf16:
        ax.bar(xs + 0.27, [bf16[r["preset"]]["ganstab_img_s"] if r["preset"] in bf16 else 0 for r in fp32], 0.27,
               label="ganstab loop, bf16 autocast")
    ax.set_xticks(xs, [f"{r['preset']} (batch {r['batch']})" for r in fp32])
    ax.set_ylabel("images per second")
    ax.set_title("Training throughput on the same networks")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
