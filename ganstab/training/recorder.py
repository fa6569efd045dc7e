"""One small recorder: `record(name, value)` accumulates, `flush(step)` writes a metrics.jsonl line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ganstab.rundir import append_jsonl

__all__ = ["Recorder", "clean_record"]


def clean_record(values: dict[str, Any]) -> dict[str, Any]:
    """Replace NaN/Inf by null and list their keys under 'nonfinite' (JSON has no NaN)."""
    out: dict[str, Any] = {}
    bad: list[str] = []
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(key)
            value = None
        out[key] = value
    if bad:
        out["nonfinite"] = bad
    return out


class Recorder:
    """Collects scalars between flushes (tensors summed on device: no host sync per step)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._sums: dict[str, Any] = {}
        self._counts: dict[str, int] = {}

    def record(self, name: str, value: Any) -> None:
        """Add one observation of a scalar; flush() writes the mean since the last flush."""
        if isinstance(value, torch.Tensor):
            value = value.detach().float()
        if name in self._sums:
            self._sums[name] = self._sums[name] + value
            self._counts[name] += 1
        else:
            self._sums[name] = value
            self._counts[name] = 1

    def record_all(self, values: dict[str, Any]) -> None:
        """`record` each (name, value) of a dict (an objective's parts)."""
        for name, value in values.items():
            self.record(name, value)

    def pending(self) -> dict[str, float]:
        """Means of the values recorded since the last flush, as Python floats."""
        out = {}
        for name, total in self._sums.items():
            value = total.item() if isinstance(total, torch.Tensor) else total
            out[name] = float(value) / self._counts[name]
        return out

    def flush(self, fixed: dict[str, Any], write: bool = True) -> dict[str, Any]:
        """Write `fixed` plus the means of recorded values as one JSON line; return that line."""
        line = clean_record({**fixed, **self.pending()})
        self._sums.clear()
        self._counts.clear()
        if write:
            self.write(line)
        return line

    def write(self, line: dict[str, Any]) -> None:
        """Append one already-cleaned JSON object to metrics.jsonl."""
        append_jsonl(self.path, [line])

    def state_dict(self) -> dict[str, Any]:
        """Pending sums and counts as plain numbers (for exact resume of averaged log lines)."""
        sums = {k: (v.item() if isinstance(v, torch.Tensor) else float(v)) for k, v in self._sums.items()}
        return {"sums": sums, "counts": dict(self._counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore pending sums saved by `state_dict`."""
        self._sums = {k: torch.tensor(v, dtype=torch.float32) for k, v in state.get("sums", {}).items()}
        self._counts = {k: int(v) for k, v in state.get("counts", {}).items()}
