"""Kill test: SIGKILL at random moments (often mid-checkpoint) always leaves a valid checkpoint to resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ganstab.training.checkpoint import list_checkpoints, load_checkpoint, newest_valid_checkpoint, verify_checkpoint

pytestmark = pytest.mark.slow

ARGS = ["eval.final=false", "log.progress=false", "log.every=1", "log.checkpoint_every=1", "log.keep_checkpoints=3",
        "log.sample_every=100000", "train.steps=100000", "train.batch_size=32", "model.width=48",
        "train.threads=1", "train.ema=0"]


def _steps_logged(run: Path) -> int:
    steps = [0]
    for line in (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass  # a torn last line is expected after SIGKILL
    return max(steps)


def _start(run: Path, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ganstab", "train", *ARGS]
    cmd += ["--resume", str(run)] if resume else [f"out={run}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def test_sigkill_twenty_times_always_resumes(tmp_path: Path) -> None:
    rng = random.Random(1234)
    run = tmp_path / "run"
    resumed_from: list[int] = []
    for kill in range(20):
        proc = _start(run, resume=kill > 0)
        # wait until the process trains (a checkpoint newer than what we resumed from), then kill at random
        deadline = time.time() + 60
        start_ckpts = len(list_checkpoints(run / "checkpoints"))
        while time.time() < deadline and proc.poll() is None:
            if _steps_logged(run) > (resumed_from[-1] if resumed_from else 0) + 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reached = _steps_logged(run)
        newest = newest_valid_checkpoint(run / "checkpoints", warn=lambda m: None)
        assert newest is not None, f"kill {kill}: no valid checkpoint (had {start_ckpts})"
        state = load_checkpoint(newest)
        # lost at most one checkpoint interval (checkpoint_every=1): the step logged last, or the one before
        assert state["step"] >= reached - 1, (kill, state["step"], reached)
        for path in list_checkpoints(run / "checkpoints"):
            problem = verify_checkpoint(path)
            if problem is not None:  # only the newest may be torn, and it is then skipped, not used
                assert path.name > newest.name, (path, problem)
        resumed_from.append(state["step"])
    assert resumed_from == sorted(resumed_from)
    # a final resume finishes cleanly after a SIGTERM (saved checkpoint, message, exit 128 + 15 = 143)
    proc = _start(run, resume=True)
    time.sleep(0.1)
    deadline = time.time() + 60
    while time.time() < deadline and _steps_logged(run) <= resumed_from[-1] + 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert f"Resume with: ganstab train --resume {run}" in out
    assert verify_checkpoint(newest_valid_checkpoint(run / "checkpoints")) is None
