"""The `Finding` record that every detector returns, and its JSON form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

# the one severity order, mildest first (`worst_first` reverses it for tables and counts)
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def worst_first() -> tuple[str, ...]:
    """The severities from error down to info."""
    return tuple(reversed(SEVERITIES))


def severity_rank(severity: str) -> int:
    """Order of a severity name: info < warning < error."""
    return _RANK[severity]


@dataclass
class Finding:
    """One diagnosed problem over a step range, with the numbers behind it and what to change.

    `metric` names the logged series the finding is about (e.g. "grad_norm_d", "eval_recall")
    where one detector can fire on several series; together with `code` it identifies an episode.
    """

    code: str
    severity: str
    start_step: int
    end_step: int
    evidence: dict[str, float] = field(default_factory=dict)
    message: str = ""
    advice: str = ""
    metric: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in _RANK:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        self.start_step = int(self.start_step)
        self.end_step = int(self.end_step)
        clean: dict[str, float] = {}
        for name, value in self.evidence.items():
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"evidence {name!r} must be finite, got {value!r}")
            clean[str(name)] = int(number) if isinstance(value, (int, bool)) else number
        self.evidence = clean

    @property
    def is_divergence(self) -> bool:
        """True for findings that should trigger automatic recovery (NaN/Inf or an explosion)."""
        return self.code.startswith("divergence.") and self.severity == "error"

    @property
    def key(self) -> str:
        """Identity of the episode for de-duplication: code plus the series it is about."""
        return self.code if self.metric is None else f"{self.code}|{self.metric}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (one line of findings.jsonl)."""
        return {
            "code": self.code,
            "severity": self.severity,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "evidence": dict(self.evidence),
            "message": self.message,
            "advice": self.advice,
            "metric": self.metric,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Finding":
        """Inverse of `to_dict`."""
        return cls(
            code=str(data["code"]),
            severity=str(data["severity"]),
            start_step=int(data["start_step"]),
            end_step=int(data["end_step"]),
            evidence=dict(data.get("evidence") or {}),
            message=str(data.get("message", "")),
            advice=str(data.get("advice", "")),
            metric=data.get("metric"),
        )


def finding_problem(record: Any) -> str | None:
    """None for a findings.jsonl line that `Finding.from_dict` accepts, else the reason it does not."""
    if not isinstance(record, Mapping):
        return f"a JSON {type(record).__name__}, not an object"
    if not isinstance(record.get("code"), str) or not isinstance(record.get("evidence", {}), (Mapping, type(None))):
        return "'code' must be a name and 'evidence' an object"
    for key in ("start_step", "end_step"):
        if isinstance(record.get(key), bool) or not isinstance(record.get(key), int):
            return f"{key!r} must be an integer"
    metric = record.get("metric")
    if metric is not None and not isinstance(metric, str):
        return "'metric' must be a name or null"
    try:
        Finding.from_dict(record)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        return " ".join(str(exc).split())[:80] or type(exc).__name__
    return None
