"""Run the whole benchmark suite one benchmark at a time (never two jobs on the same cores).

Full suite: several hours on 2 CPU cores (modes2d 10 seeds x 7 configs x 2 datasets; fashion
14 variants x 3 seeds x 120 s; progressive 2 x 240 s; throughput; evaluation cost).
`--quick`: a smoke version of each that finishes in under 10 minutes.

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
            ["throughput.py", "--steps", "40", "--repeats", "1"],
            ["eval_speed.py", "--n", "2000"],
            ["modes2d.py", "--quick", "--tag", "quick", "--workdir", "/tmp/ganstab-modes2d-quick"],
            ["progressive.py", "--budget", "30", "--eval-every", "200", "--tag", "quick"],
            ["fashion.py", "--quick", "--only", "baseline", "recommended"],
        ]
    else:
        jobs = [
            ["throughput.py"],
            ["eval_speed.py"],
            ["modes2d.py"],
            ["progressive.py"],
            ["fashion.py"],
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
