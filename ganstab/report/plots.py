"""Training curves from metrics.jsonl as PNG plots (losses, D outputs, gradient norms, eval metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ganstab.rundir import RunDir, is_eval_record, is_metric_key, read_jsonl
from ganstab.sampling import save_figure

PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("losses", ("loss_d", "loss_g")),
    ("discriminator outputs", ("d_real", "d_fake")),
    ("gradient norms", ("grad_norm_d", "grad_norm_g")),
    ("penalties", ("gp", "r1", "drift", "r2", "lecam")),
    ("D accuracy", ("d_acc",)),
    ("D overfitting r_t and ADA p", ("d_real_sign", "ada_rt", "augment_p")),
)


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for rec in records:
        if key in rec and rec[key] is not None and "step" in rec:
            xs.append(rec["step"])
            ys.append(rec[key])
    return xs, ys


def plot_panels(records: Sequence[dict[str, Any]], path: Path,
                panels: Sequence[tuple[str, Sequence[str]]] = PANELS, title: str = "") -> Path | None:
    """One figure with a panel per group of keys that has data; None when nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [(name, [k for k in keys if _series(records, k)[0]]) for name, keys in panels]
    present = [(name, keys) for name, keys in present if keys]
    if not present:
        return None
    cols = 2 if len(present) > 1 else 1
    rows = (len(present) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.0 * rows), dpi=90, squeeze=False)
    for ax, (name, keys) in zip(axes.flat, present):
        for key in keys:
            xs, ys = _series(records, key)
            ax.plot(xs, ys, label=key, linewidth=1.2, marker="o" if len(xs) < 20 else None, markersize=3)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("G step", fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        if name == "gradient norms":
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def plot_run(run_dir: Path) -> list[Path]:
    """Write plots/training.png (and plots/eval.png when evaluation lines exist) for a run."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    records = read_jsonl(run.metrics)
    written = []
    train_path = plot_panels([r for r in records if "loss_d" in r or "loss_g" in r],
                             run.plots / "training.png", title=run_dir.name)
    if train_path is not None:
        written.append(train_path)
    eval_records = [r for r in records if is_eval_record(r)]
    if eval_records:
        keys = sorted({k for r in eval_records for k in r if is_metric_key(k) and isinstance(r[k], (int, float))})
        eval_path = plot_panels(eval_records, run.plots / "eval.png",
                                panels=[(k[5:], (k,)) for k in keys],
                                title=f"{run_dir.name}: evaluation (validation reference)")
        if eval_path is not None:
            written.append(eval_path)
    return written
