"""The shipped evaluators: test accuracy, real-vs-real FD floor, and a first run's evaluator cost before and after.

For each bundled data set (digits, Fashion-MNIST) the evaluator that a default run uses (eval.evaluator=auto: the
shipped network) is loaded through `RunEvaluator` at the default eval.n; recorded are its accuracy on the whole
real test split, and `fd_real` (the FD between the reference split and other real images, as `eval_fd_real`) of
the validation and the test reference. Then the first-run cost on Fashion-MNIST: building the run's evaluator
with an empty cache, before (eval.evaluator=train: the network trained on first use, as every run did until the
shipped ones) and after (eval.evaluator=auto: the shipped weights loaded), alternating `--repeats` times on one
thread; the ratio of the means is the figure (wall times on a shared machine are noisy).

Usage: python benchmarks/shipped_evaluator.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine, write_results  # noqa: E402
from train_evaluator import git_commit  # noqa: E402

from ganstab.config import DataConfig, EvalConfig  # noqa: E402
from ganstab.data import make_dataset  # noqa: E402
from ganstab.metrics.run_eval import RunEvaluator  # noqa: E402
from ganstab.metrics.shipped import RECIPES  # noqa: E402

CPU = torch.device("cpu")


def build(data: Any, choice: str, messages: list[str]) -> tuple[RunEvaluator, float]:
    """A run's evaluator at the defaults with an empty cache, and the seconds it took to build."""
    defaults = EvalConfig()
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        scorer = RunEvaluator(data, defaults.n, CPU, Path(cache), defaults.evaluator_epochs, echo=messages.append,
                              evaluator_images=defaults.evaluator_images, val_n=defaults.val_n, evaluator=choice)
        return scorer, time.perf_counter() - started


def shipped_figures(name: str) -> dict[str, Any]:
    """Accuracy on the whole test split and the FD floor of both references of the shipped evaluator of `name`."""
    data = make_dataset(DataConfig(name=name), 0)
    messages: list[str] = []
    scorer, seconds = build(data, "shipped", messages)
    test, test_labels = data.evaluator_data()[2:]
    accuracy = float((scorer.evaluator.class_probs(test).argmax(dim=1) == test_labels).double().mean())
    validation, final = scorer.split_reference("validation"), scorer.split_reference("test")
    return {"features": scorer.features_name(), "test_accuracy": accuracy, "test_images": int(test.shape[0]),
            "eval_n": scorer.n, "fd_real_validation": validation.fd_real, "validation_n": validation.size,
            "fd_real_test": final.fd_real, "test_reference_n": final.size, "load_seconds": round(seconds, 2),
            "messages": messages}


def main() -> None:
    """Measure and write results/shipped_evaluator.md/json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    commit, started = git_commit(), time.perf_counter()
    shipped = {name: shipped_figures(name) for name in RECIPES}
    for name, row in shipped.items():
        print(name, row, flush=True)
    fashion = make_dataset(DataConfig(name="fashion-mnist"), 0)
    cost: dict[str, list[float]] = {"before": [], "after": []}
    accuracy_before = None
    for repeat in range(args.repeats):
        for kind, choice in (("before", "train"), ("after", "auto")):
            messages: list[str] = []
            scorer, seconds = build(fashion, choice, messages)
            cost[kind].append(round(seconds, 2))
            if kind == "before":
                accuracy_before = scorer.test_accuracy
            print(f"fashion-mnist {kind} {repeat}: {seconds:.1f}s ({messages[-1]})", flush=True)
    before, after = statistics.fmean(cost["before"]), statistics.fmean(cost["after"])
    first_run = {"before_seconds": cost["before"], "after_seconds": cost["after"], "before_mean": before,
                 "after_mean": after, "ratio": after / before, "before_test_accuracy": accuracy_before,
                 "what": "seconds to build a default Fashion-MNIST run's RunEvaluator with an empty cache (evaluator, "
                         "validation reference, real-vs-real baseline), one thread, alternating"}
    date = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    payload = {"command": f"python benchmarks/shipped_evaluator.py {' '.join(sys.argv[1:])}".strip(),
               "machine": machine(), "date": date, "commit": commit,
               "minutes": round((time.perf_counter() - started) / 60, 1), "shipped": shipped,
               "first_run": {"fashion-mnist": first_run}}
    lines = ["# Shipped evaluators: accuracy, FD floor, first-run cost", "",
             f"Run {date} on {machine()} at {commit[:12]}; `{payload['command']}` took {payload['minutes']} min "
             "(one thread, a shared and noisy machine).", "",
             "| data | evaluator | test accuracy | fd_real, validation (n) | fd_real, test (n) |", "|---|---|---|---|---|"]
    for name, row in shipped.items():
        lines.append(f"| {name} | {row['features']} | {100 * row['test_accuracy']:.2f} % of {row['test_images']:,} | "
                     f"{row['fd_real_validation']:.4f} ({row['validation_n']:,}) | {row['fd_real_test']:.4f} "
                     f"({row['test_reference_n']:,}) |")
    lines += ["", f"First-run evaluator cost, Fashion-MNIST, {args.repeats} alternating pairs: before (trained on "
                  f"first use) {before:.1f} s, after (shipped weights) {after:.1f} s, ratio {after / before:.3f}."]
    write_results("shipped_evaluator", "\n".join(lines), payload)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
