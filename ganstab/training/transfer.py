"""Fine-tuning: the weights a run starts from (`train.init_from`), read from a run folder, a checkpoint or an export.

A run folder gives its newest valid checkpoint (G, D and G's EMA), or its exported generator when it has no
checkpoint; a `.pt` file is read as a checkpoint (weights_only, checksum-independent) and a `.safetensors`
file as an exported generator (G alone). The Trainer loads what is found (`TrainerState.initialise_from`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from safetensors import SafetensorError
from safetensors.torch import load_file

from ganstab.errors import CheckpointError, ConfigError, one_line
from ganstab.rundir import RunDir, load_checkpoint, newest_valid_checkpoint

__all__ = ["InitWeights", "read_init_weights"]

_WHAT = "give a run folder, a checkpoint (.pt) or an exported generator.safetensors"


@dataclass
class InitWeights:
    """State dicts to start from (D and G's EMA absent for an exported generator) and the file they came from."""

    source: Path
    g: dict[str, Any]
    d: Optional[dict[str, Any]] = None
    g_ema: Optional[dict[str, Any]] = None


def _from_checkpoint(path: Path) -> InitWeights:
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not isinstance(state.get("g"), dict):
        raise CheckpointError(f"train.init_from: {str(path)!r} is not a ganstab checkpoint (no generator weights); "
                              f"{_WHAT}")
    d, g_ema = state.get("d"), state.get("g_ema")
    return InitWeights(path, state["g"], d if isinstance(d, dict) else None,
                       g_ema if isinstance(g_ema, dict) else None)


def _from_export(path: Path) -> InitWeights:
    try:
        return InitWeights(path, load_file(str(path), device="cpu"))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"train.init_from: {str(path)!r} cannot be read ({one_line(exc, 80)}); "
                              "it is truncated or not a safetensors file") from None


def read_init_weights(path: str | Path, warn: Callable[[str], None] = print) -> InitWeights:
    """The weights named by `train.init_from`; one-line errors for a missing, empty or unreadable source."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        newest = newest_valid_checkpoint(run.checkpoints, warn=warn) if run.checkpoints.is_dir() else None
        if newest is not None:
            return _from_checkpoint(newest)
        if run.generator_weights.is_file():
            return _from_export(run.generator_weights)
        raise ConfigError(f"train.init_from: {str(path)!r} holds neither a valid checkpoint nor an exported "
                          f"generator; {_WHAT}")
    if not path.exists():
        raise ConfigError(f"train.init_from: {str(path)!r} does not exist; {_WHAT}")
    if path.suffix == ".pt":
        return _from_checkpoint(path)
    if path.suffix == ".safetensors":
        return _from_export(path)
    raise ConfigError(f"train.init_from: {str(path)!r} is neither a folder, a .pt checkpoint nor a .safetensors "
                      f"file; {_WHAT}")
