"""Time and peak memory of a full image evaluation (features + every metric) with the evaluator network.

Usage: python benchmarks/eval_speed.py [--n 10000] [--device cpu] [--threads 2] [--size 28] [--channels 1]

Real images are the first n of the Fashion-MNIST test split and fakes the first n of the train
split when the IDX files exist (and size/channels are 28/1), otherwise uniform noise in [-1, 1].
The evaluator is the one ganstab ships for Fashion-MNIST (ganstab/metrics/weights/, what every default
Fashion-MNIST run loads) at 1x28x28; --train-epochs > 0 instead trains one on the Fashion-MNIST train split
first (not counted in the table), and other sizes or channels use a freshly initialised network (the cost does
not depend on the weights, but the metric values of an untrained network mean little).
Memory is the process's peak resident set size (resource.getrusage), which also covers torch's
native allocations that tracemalloc cannot see; it is reported after each phase.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ganstab import metrics
from ganstab.metrics.shipped import shipped_paths

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import git_commit, machine, output_stem, write_results  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")


def read_idx_gz(path: Path) -> np.ndarray:
    """Minimal reader for an unsigned-byte IDX file compressed with gzip."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    if raw[2] != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX files are supported")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_images(n: int, size: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(real, fake) image tensors in [-1, 1] and a description of their source."""
    test_file, train_file = FASHION / "t10k-images-idx3-ubyte.gz", FASHION / "train-images-idx3-ubyte.gz"
    if size == 28 and channels == 1 and test_file.exists() and train_file.exists() and n <= 10_000:
        real = torch.from_numpy(read_idx_gz(test_file)[:n].copy()).float()[:, None] / 127.5 - 1
        fake = torch.from_numpy(read_idx_gz(train_file)[:n].copy()).float()[:, None] / 127.5 - 1
        return real, fake, "Fashion-MNIST test vs train"
    generator = torch.Generator().manual_seed(seed)
    real = torch.rand(n, channels, size, size, generator=generator) * 2 - 1
    fake = torch.rand(n, channels, size, size, generator=generator) * 2 - 1
    return real, fake, "uniform noise"


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def timed(rows: list[tuple[str, float, float]], name: str, fn: Callable[[], object], device: torch.device) -> object:
    """Run fn, append (name, seconds, peak RSS MiB) to rows and return fn's result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    rows.append((name, time.perf_counter() - start, peak_rss_mib()))
    return result


def plot(rows: list[tuple[str, float, float]], path: Path, n: int) -> None:
    """Horizontal bars: seconds per evaluation phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    names = [name for name, _, _ in rows][::-1]
    ax.barh(names, [seconds for _, seconds, _ in rows][::-1])
    ax.set_xlabel("seconds")
    ax.set_title(f"Evaluation of {n:,} real vs {n:,} generated images")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="real and fake images each")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 keeps the default)")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix for the output files (eval_speed-<tag>.md ...)")
    parser.add_argument("--train-epochs", type=int, default=0, help="train the evaluator first (Fashion-MNIST only)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    real, fake, source = load_images(args.n, args.size, args.channels, args.seed)
    settings = metrics.EvaluatorSettings(
        kind="classifier", in_channels=args.channels, height=args.size, width=args.size, num_classes=10
    )
    if args.train_epochs > 0 and source.startswith("Fashion"):
        train_images = torch.from_numpy(read_idx_gz(FASHION / "train-images-idx3-ubyte.gz").copy()).float()[:, None]
        train_labels = torch.from_numpy(read_idx_gz(FASHION / "train-labels-idx1-ubyte.gz").astype(np.int64))
        evaluator = metrics.train_evaluator(
            train_images / 127.5 - 1, train_labels, epochs=args.train_epochs, seed=args.seed, device=device
        )
        del train_images, train_labels
        source += f", evaluator trained {args.train_epochs} epochs"
    elif (args.channels, args.size) == (1, 28) and shipped_paths("fashion-mnist")[0].is_file():
        evaluator = metrics.Evaluator.load(shipped_paths("fashion-mnist")[0], device=device)
        source += ", the shipped Fashion-MNIST evaluator"
    else:
        evaluator = metrics.Evaluator(settings, device=device)
        source += ", untrained evaluator"
    # how every metric line names this network (ganstab/metrics/run_eval.py: RunEvaluator.features_name)
    eval_features = (f"ganstab-evaluator-v{evaluator.settings.version}-{evaluator.settings.kind}-"
                     f"{evaluator.weights_sha256()[:12]}")
    baseline = peak_rss_mib()
    rows: list[tuple[str, float, float]] = []

    reference = timed(rows, "real features + probs", lambda: metrics.prepare_reference(evaluator, real, args.batch_size), device)
    fake_out = timed(rows, "fake features + probs", lambda: evaluator.features_and_probs(fake, args.batch_size), device)
    fake_features, fake_probs = fake_out  # type: ignore[misc]
    timed(rows, "fd", lambda: metrics.frechet_distance(reference.features, fake_features), device)  # type: ignore[union-attr]
    timed(rows, "kid (100 x 1000)", lambda: metrics.kid(reference.features, fake_features), device)  # type: ignore[union-attr]
    timed(rows, "precision/recall/density/coverage", lambda: metrics.manifold_metrics(reference.features, fake_features), device)  # type: ignore[union-attr]
    timed(rows, "class_kl + is", lambda: (metrics.class_kl(fake_probs, reference.class_distribution), metrics.inception_score(fake_probs)), device)  # type: ignore[union-attr]
    result = timed(rows, "evaluate_images (all of the above)", lambda: metrics.evaluate_images(evaluator, real, fake, batch_size=args.batch_size), device)

    info = machine()
    command = f"python benchmarks/eval_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}"
    date = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    lines = [
        "# Evaluation cost", "",
        f"- Command: `{command}`", f"- Date: {date}, commit {git_commit()}",
        f"- Machine: {info['cpu']}, {info['cores']} logical cores, torch {info['torch']} with "
        f"{torch.get_num_threads()} threads, device {device}",
        f"- {args.n} real vs {args.n} generated images ({source}, {args.channels}x{args.size}x{args.size}); "
        f"peak RSS before evaluating {baseline:.0f} MiB; evaluator `{eval_features}`", "",
        "| phase | seconds | peak RSS so far (MiB) |", "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {seconds:.2f} | {rss:.0f} |" for name, seconds, rss in rows]
    lines += ["", "metrics: " + ", ".join(f"{key} {value:.4g}" for key, value in result.items())]  # type: ignore[union-attr]
    text = "\n".join(lines)
    print(text)
    png = write_results(output_stem("eval_speed", args.tag), text,
                        {"command": command, "date": date, "commit": git_commit(), "machine": info, "source": source,
                         "n": args.n, "baseline_rss_mib": baseline, "eval_features": eval_features,
                         "threads": torch.get_num_threads(), "metrics": {key: float(value) for key, value in result.items()},  # type: ignore[union-attr]
                         "phases": {name: {"seconds": seconds, "peak_rss_mib": rss}
                                                                        for name, seconds, rss in rows}})
    plot(rows, png, args.n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
