"""Crash-safe checkpoints: atomic writes with a checksum, newest-valid lookup, safe loading.

Layout: `checkpoints/ckpt_0000500.pt` plus `ckpt_0000500.pt.sha256` (written after the data file,
both through temp file + fsync + rename). A checkpoint counts only when its checksum file exists and
matches, so a crash at any moment leaves the previous checkpoint as the newest valid one. Loading
uses `torch.load(weights_only=True)`: a file that would need to unpickle code is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganstab.rundir import CHECKPOINT_FORMAT as FORMAT
from ganstab.rundir import (atomic_write, checkpoint_name, keep_as_good, list_checkpoints, load_checkpoint,
                            newest_valid_before, newest_valid_checkpoint, sha256_file, verify_checkpoint)

__all__ = ["FORMAT", "keep_as_good", "newest_valid_before", "sha256_file", "seed_everything", "rng_state", "set_rng_state", "checkpoint_path", "save_checkpoint",
           "list_checkpoints", "verify_checkpoint", "load_checkpoint", "newest_valid_checkpoint"]


def seed_everything(seed: int) -> None:
    """Seed torch's, numpy's and python's global generators, so that a run (and user code in its hooks) repeats."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and every CUDA device), numpy and python, as weights_only-safe values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]),
                   "gauss": py_state[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(folder: Path, step: int) -> Path:
    """The file name of the checkpoint taken after `step` G steps."""
    return Path(folder) / checkpoint_name(step)


def save_checkpoint(folder: Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    """Write a checkpoint atomically with its checksum file, then prune to the newest `keep`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".ckpt_*.tmp-*"):  # left by a process killed mid-write
        if not stale.name.endswith(f"-{os.getpid()}"):
            try:
                stale.unlink()
            except OSError:
                pass
    path = checkpoint_path(folder, step)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    data = buffer.getvalue()
    atomic_write(path, data)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n".encode())
    for old in list_checkpoints(folder)[:-keep]:
        for victim in (old, old.with_name(old.name + ".sha256")):
            try:
                victim.unlink()
            except OSError:
                pass
    return path
