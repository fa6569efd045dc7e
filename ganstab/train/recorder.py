"""One small recorder: `record(name, value)` accumulates, `flush(step)` writes a metrics.jsonl line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import torch


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

    def __init__(self, path: Path, tensorboard_dir: Optional[Path] = None) -> None:
        self.path = Path(path)
        self._sums: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self._writer = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(tensorboard_dir))
            except Exception:  # tensorboard is optional
                self._writer = None

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
        """Append one already-cleaned JSON object to metrics.jsonl (and TensorBoard when present)."""
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
            fh.flush()
        if self._writer is not None:
            step = int(line.get("step", 0))
            for key, value in line.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._writer.add_scalar(key, value, step)

    def state_dict(self) -> dict[str, Any]:
        """Pending sums and counts as plain numbers (for exact resume of averaged log lines)."""
        sums = {k: (v.item() if isinstance(v, torch.Tensor) else float(v)) for k, v in self._sums.items()}
        return {"sums": sums, "counts": dict(self._counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore pending sums saved by `state_dict`."""
        self._sums = {k: torch.tensor(v, dtype=torch.float32) for k, v in state.get("sums", {}).items()}
        self._counts = {k: int(v) for k, v in state.get("counts", {}).items()}

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self._writer is not None:
            self._writer.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON object line of a .jsonl file (a torn or foreign line is skipped)."""
    records: list[dict[str, Any]] = []
    if not Path(path).is_file():
        return records
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(item, dict):
                records.append(item)
    return records


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete JSON lines of a metrics.jsonl (a torn last line is ignored)."""
    return read_jsonl(path)


def truncate_metrics(path: Path, last_step: int, every: int = 1) -> None:
    """Drop lines logged after `last_step`, and an off-interval final line at it (resume continues it)."""
    def keep(rec: dict[str, Any]) -> bool:
        step = int(rec.get("step", 0))
        return step < last_step or (step == last_step and step % every == 0)

    records = [r for r in read_metrics(path) if keep(r)]
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    tmp.replace(path)
