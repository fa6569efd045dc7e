"""The demo's numbers: `ganstab train` at its defaults (digits), its final validation and test lines and the doctor.

The figures quoted in docs/getting-started.md come from this file's output, so they can be re-measured after the
code changes: python benchmarks/demo.py  ->  benchmarks/results/demo.{md,json}
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ganstab.rundir import RunDir, is_test_record, read_jsonl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import git_commit, machine, write_results  # noqa: E402

KEYS = ("fd", "kid", "precision", "recall", "density", "coverage", "class_kl", "fd_real")


def main() -> None:
    """Train the demo once into a temporary folder and write its final lines and verdict."""
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "digits"
        command = [sys.executable, "-m", "ganstab", "train", f"out={out}", "log.progress=false"]
        clock = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - clock
        doctor = subprocess.run([sys.executable, "-m", "ganstab", "doctor", str(out)], capture_output=True, text=True)
        lines = [r for r in read_jsonl(RunDir(out).metrics) if r.get("final")]
    test = [r for r in lines if is_test_record(r)][-1]
    validation = [r for r in lines if not is_test_record(r)][-1]
    verdict = [line for line in doctor.stdout.splitlines() if line.startswith("verdict: ")][-1].split(": ", 1)[1]
    pick = lambda record: {k: record.get(f"eval_{k}") for k in KEYS}  # noqa: E731
    payload = {"command": "python benchmarks/demo.py (runs: ganstab train out=TMP log.progress=false)",
               "date": started.strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(), "machine": machine(),
               "wall_seconds": round(wall, 1), "step": test["step"], "verdict": verdict,
               "features": test.get("eval_features"),
               "test": {**pick(test), "reference_n": test.get("eval_reference_n"), "n": test.get("eval_n")},
               "validation": {**pick(validation), "reference_n": validation.get("eval_reference_n")}}
    text = (f"# The demo (`ganstab train` at its defaults)\n\n{payload['date']}, commit {payload['commit']}, "
            f"{payload['features']}\n\n| split | FD | coverage | recall |\n|---|---|---|---|\n"
            + "".join(f"| {split} | {payload[split]['fd']:.3f} | {payload[split]['coverage']:.3f} | "
                      f"{payload[split]['recall']:.3f} |\n" for split in ("validation", "test"))
            + f"\ndoctor: {verdict}; wall {payload['wall_seconds']} s (machine possibly shared)\n")
    write_results("demo", text, payload)
    print(text)


if __name__ == "__main__":
    main()
