"""Run the whole benchmark suite one benchmark at a time (never two jobs on the same cores).

Full suite: about 4 h on 2 CPU cores, estimated from its parts (modes2d 10 seeds x 7 configs x 2
datasets about 61 min; fashion 15 variants x 3 seeds x 60 s, 60 min; progressive 2 x 240 s about
10 min; throughput about 3 min; evaluation cost under 1 min; conditional 3 pairs x 600 s, 33 min
measured; small_data 18 runs x 600 s two at a time, about 95 min; stacked 4 presets x 3 seeds x 600 s
one at a time, about 2 h 50 min with mode counts, not yet measured (benchmarks/run_long.sh runs it two at a time); finetune 4,000 + 9 x 1,500 G steps, 50 min measured beside other work). `--quick`: a smoke version of
each (8 min 16 s before conditional and small_data were added); outputs carry a `-quick` suffix.

Usage: python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run each benchmark script in turn and report the wall time of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke versions, under 10 minutes in total")
    args = parser.parse_args()
    if args.quick:
        jobs = [
            ["throughput.py", "--steps", "40", "--repeats", "1", "--tag", "quick"],
            ["eval_speed.py", "--n", "2000", "--tag", "quick"],
            ["modes2d.py", "--quick", "--tag", "quick", "--workdir", "/tmp/ganstab-modes2d-quick"],
            ["progressive.py", "--budget", "30", "--eval-every", "200", "--tag", "quick"],
            ["fashion.py", "--quick", "--only", "baseline", "recommended"],
            ["conditional.py", "--quick"],
            ["small_data.py", "--quick"],
            ["stacked.py", "--quick"],
            ["finetune.py", "--quick"],
        ]
    else:
        jobs = [
            ["throughput.py"],
            ["eval_speed.py"],
            ["modes2d.py"],
            ["progressive.py"],
            ["fashion.py"],
            ["conditional.py"],
            ["small_data.py"],
            ["stacked.py"],
            ["finetune.py"],
        ]
    failed = 0
    for job in jobs:
        start = time.perf_counter()
        print(f"=== {' '.join(job)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / job[0]), *job[1:]], cwd=HERE.parent)
        print(f"=== {job[0]}: exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
