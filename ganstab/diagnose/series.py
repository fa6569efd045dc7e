"""Small helpers to read numeric series out of metrics.jsonl records (keys may be missing or null)."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from ganstab.rundir import is_eval_record, is_training_record


def as_number(value: Any) -> float | None:
    """The value as a finite float, or None when it is missing, null, non-numeric or NaN/Inf."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def training_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The training lines, in order, that carry a step."""
    return [r for r in records if is_training_record(r) and as_number(r.get("step")) is not None]


def eval_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The evaluation lines, in order, that carry a step."""
    return [r for r in records if is_eval_record(r) and as_number(r.get("step")) is not None]


def step_of(record: Mapping[str, Any]) -> int:
    """The record's step as an int (callers filter records without one)."""
    return int(as_number(record.get("step")) or 0)


def series(records: Iterable[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the records whose `key` is a finite number."""
    steps: list[int] = []
    values: list[float] = []
    isfinite = math.isfinite
    for record in records:
        value = record.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        value = float(value)
        if isfinite(value):
            steps.append(step_of(record))
            values.append(value)
    return steps, values


def runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of the maximal runs of True in `flags`."""
    found: list[tuple[int, int]] = []
    start = -1
    for index, flag in enumerate(flags):
        if flag and start < 0:
            start = index
        elif not flag and start >= 0:
            found.append((start, index - 1))
            start = -1
    if start >= 0:
        found.append((start, len(flags) - 1))
    return found


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return 0.5 * (ordered[middle - 1] + ordered[middle])


def fmt(value: float) -> str:
    """A number in about three significant digits for messages."""
    if 1000 <= abs(value) < 10000:
        return f"{value:.0f}"
    return f"{value:.3g}"


def log_interval(steps: Sequence[int]) -> int:
    """The run's logging interval in G steps: the median positive gap between records (0 if none)."""
    gaps = [later - earlier for earlier, later in zip(steps, steps[1:]) if later > earlier]
    return int(median(gaps)) if gaps else 0


def span_steps(steps: Sequence[int], first: int, last: int, interval: int) -> int:
    """G steps covered by records first..last (inclusive): last step - first step + the log interval."""
    return steps[last] - steps[first] + interval


def long_runs(
    steps: Sequence[int], flags: Sequence[bool], min_steps: int, min_records: int
) -> list[tuple[int, int]]:
    """The runs of True in `flags` covering at least `min_steps` G steps and `min_records` records."""
    interval = log_interval(steps)
    return [
        (first, last) for first, last in runs(flags)
        if last - first + 1 >= min_records and span_steps(steps, first, last, interval) >= min_steps
    ]
