"""Train the evaluators shipped with ganstab (ganstab/metrics/weights/<name>.safetensors + .json).

For each data set, the evaluator network is trained with its recipe (`ganstab.metrics.shipped.RECIPES`: all
training images, several epochs, random shifts) on the CPU with one thread and a fixed seed, tested on the
whole test split, and written with the data's sha256 (over the evaluator's training and test tensors), the
weights file's sha256, the command, the machine, the date and the git commit.

Usage: python benchmarks/train_evaluator.py [--data digits fashion-mnist] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine  # noqa: E402

from ganstab.config import DataConfig  # noqa: E402
from ganstab.data import make_dataset  # noqa: E402
from ganstab.metrics.evaluator import train_evaluator  # noqa: E402
from ganstab.metrics.shipped import RECIPES, WEIGHTS_DIR, data_digest  # noqa: E402
from ganstab.rundir import sha256_file  # noqa: E402


def git_commit() -> str:
    """The checkout's commit (with '+dirty' when files differ from it)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def ship(name: str, out: Path, changes: dict | None = None) -> dict:
    """Train the evaluator of data set `name` with its recipe (with `changes`) and write it to `out`; return its
    JSON."""
    changes = changes or {}
    commit = git_commit()  # when training starts: the code that trains
    torch.manual_seed(0)
    train, labels, test, test_labels = make_dataset(DataConfig(name=name), 0).evaluator_data()
    started = time.perf_counter()
    evaluator = train_evaluator(train, labels, test_images=test, test_labels=test_labels, device="cpu",
                                progress=lambda line: print(f"{name}: {line}", flush=True), **{**RECIPES[name], **changes})
    seconds = time.perf_counter() - started
    evaluator.data_hash = data_digest(train, labels, test, test_labels)
    weights_path, json_path = evaluator.save(out / name)
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    meta.update(data_sha256=evaluator.data_hash, weights_sha256=sha256_file(weights_path),
                train_images=int(train.shape[0]), test_images=int(test.shape[0]), seconds=round(seconds, 1),
                threads=torch.get_num_threads(), command=" ".join(["python benchmarks/train_evaluator.py --data", name,
                                  *(f"--set {key}={json.dumps(value)}" for key, value in changes.items())]),
                machine=machine(), date=f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
                commit=commit)
    json_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{name}: test accuracy {evaluator.test_accuracy:.4f} in {seconds:.0f}s, "
          f"{weights_path.stat().st_size:,} bytes -> {weights_path}", flush=True)
    return meta


def main() -> None:
    """Train and write every requested shipped evaluator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder of the files (default: the package's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="change one setting of the recipe (a trial; the shipped files use the recipe as is)")
    args = parser.parse_args()
    changes = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name in args.data:
        ship(name, args.out, changes)


if __name__ == "__main__":
    main()
