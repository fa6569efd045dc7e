"""Incremental doctor for the training loop: feed each metrics record, get only NEW findings.

A finding is identified by `Finding.key` (code plus series). It is reported when it first
becomes active (its episode reaches the latest record of its kind), again only if its severity
rises, and anew only when a later episode starts more than `rearm_steps` G steps (training
findings; `rearm_evals` evaluations for evaluation findings) after the previous one was last active;
a rollback (a step not past the previous one) forgets the episodes of the discarded steps. History is bounded: the last
`tracker_history` training records, the records of the first `vanish_early_steps` G steps that fix
the vanishing-gradient baseline,
and every evaluation line (few), each reduced to the keys the detectors read.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from typing import Any, Mapping

from ganstab.config import DoctorConfig
from .detectors import EVAL_DETECTORS, TRAINING_DETECTORS, sort_findings
from .findings import Finding, severity_rank
from ganstab.rundir import TRAINING_KEYS, is_eval_record, is_training_record

from .series import as_number

STATE_VERSION = 1


def normalize_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-able copy: tensor/numpy scalars become numbers, NaN/Inf become null + `nonfinite`."""
    clean: dict[str, Any] = {}
    nonfinite = list(record.get("nonfinite") or [])
    for key, value in record.items():
        if key == "nonfinite":
            continue
        if hasattr(value, "item") and callable(value.item):
            try:
                value = value.item()
            except (TypeError, ValueError, RuntimeError):
                value = None
        if isinstance(value, float) and not math.isfinite(value):
            value = None
            if key not in nonfinite:
                nonfinite.append(key)
        clean[key] = value
    if nonfinite:
        clean["nonfinite"] = [str(key) for key in nonfinite]
    return clean


class Tracker:
    """Runs the detectors incrementally over a bounded history and reports each episode once."""

    def __init__(self, cfg: DoctorConfig | None = None, context: Mapping[str, Any] | None = None) -> None:
        self.cfg = cfg or DoctorConfig()
        self.context = dict(context or {})
        self._train_keys = (
            set(TRAINING_KEYS) | set(self.cfg.nonfinite_keys) | set(self.cfg.explosion_keys)
            | {self.cfg.osc_key, "step"}
        )
        self._reset()

    def _reset(self) -> None:
        self._train: deque[dict[str, Any]] = deque(maxlen=self.cfg.tracker_history)
        self._evals: list[dict[str, Any]] = []
        self._pinned: list[tuple[int, dict[str, Any]]] = []  # (training index, record)
        self._n_train = 0
        # key -> {"severity": highest reported, "last_end": last step active, "source": train|eval}
        self._active: dict[str, dict[str, Any]] = {}

    # ---------------------------------------------------------------------------------------
    def update(self, record: Mapping[str, Any]) -> list[Finding]:
        """Feed one metrics record (training or eval line); return the findings that are new."""
        clean = normalize_record(record)
        step = as_number(clean.get("step"))
        if step is None:
            return []
        new: list[Finding] = []
        if is_training_record(clean):
            slim = {k: v for k, v in clean.items() if k in self._train_keys or k == "nonfinite"}
            self._add_training(slim, int(step))
            findings = self._run(TRAINING_DETECTORS, self._training_history())
            new += self._refresh("train", findings, int(step), self.cfg.rearm_steps)
        if is_eval_record(clean):
            # "quick" stays: detectors that leave quick lines out (class_kl) must see it live as offline
            slim = {k: v for k, v in clean.items()
                    if k in ("step", "final", "quick", "nonfinite") or k.startswith("eval_")}
            if self._evals and int(self._evals[-1]["step"]) >= step:  # a rollback rewrites steps
                self._evals = [r for r in self._evals if int(r["step"]) < step]
                self._forget_after("eval", int(step))
            self._evals.append(slim)
            findings = self._run(EVAL_DETECTORS, self._evals)
            new += self._refresh("eval", findings, int(step), self.cfg.rearm_evals)
        return sort_findings(new)

    def active_keys(self) -> list[str]:
        """Keys (code or code|series) of the findings active at the latest record of their kind."""
        latest = {
            "train": int(self._train[-1]["step"]) if self._train else None,
            "eval": int(self._evals[-1]["step"]) if self._evals else None,
        }
        return sorted(k for k, v in self._active.items() if v["last_end"] == latest[v["source"]])

    # ---------------------------------------------------------------------------------------
    def _add_training(self, record: dict[str, Any], step: int) -> None:
        if self._train and int(self._train[-1]["step"]) >= step:
            # resumed or rolled back: forget the records this one replaces
            kept = [r for r in self._train if int(r["step"]) < step]
            dropped = len(self._train) - len(kept)
            self._train = deque(kept, maxlen=self.cfg.tracker_history)
            self._n_train -= dropped
            self._pinned = [(i, r) for i, r in self._pinned if i < self._n_train]
            self._forget_after("train", step)
        self._train.append(record)
        index = self._n_train
        self._n_train += 1
        if as_number(record.get("grad_norm_g")) is not None and (
                not self._pinned or step < int(self._pinned[0][1]["step"]) + self.cfg.vanish_early_steps):
            self._pinned.append((index, record))

    def _training_history(self) -> list[dict[str, Any]]:
        first_kept = self._n_train - len(self._train)
        early = [record for index, record in self._pinned if index < first_kept]
        return early + list(self._train)

    def _run(self, detectors: tuple, records: list[dict[str, Any]]) -> list[Finding]:
        findings: list[Finding] = []
        for detector in detectors:
            findings.extend(detector(records, self.cfg, self.context))
        return findings

    def _rearmed(self, source: str, after: int, before: int, rearm: int) -> bool:
        """Whether an episode starting at `before` is new after one last active at `after`.

        Training: more than `rearm` G steps apart; evaluations: at least `rearm` evaluations
        strictly between. An episode that fell out of the bounded history is re-armed.
        """
        history = self._train if source == "train" else self._evals
        if not history or int(history[0]["step"]) > after:
            return True
        if source == "train":
            return before - after > rearm
        return sum(1 for record in history if after < int(record["step"]) < before) >= rearm

    def _refresh(self, source: str, findings: list[Finding], step: int, rearm: int) -> list[Finding]:
        current: dict[str, Finding] = {}
        for finding in findings:
            if finding.end_step < step:
                continue
            held = current.get(finding.key)
            if held is None or severity_rank(finding.severity) > severity_rank(held.severity):
                current[finding.key] = finding
        new = []
        for key, finding in current.items():
            state = self._active.get(key)
            if state is None or self._rearmed(source, int(state["last_end"]), finding.start_step, rearm):
                self._active[key] = {"severity": finding.severity, "last_end": step, "source": source}
                new.append(finding)
                continue
            state["last_end"] = step
            if severity_rank(finding.severity) > severity_rank(state["severity"]):
                state["severity"] = finding.severity
                new.append(finding)
        return new

    def _forget_after(self, source: str, step: int) -> None:
        """A rollback to `step`: episodes seen at or after it belong to the discarded timeline."""
        for key in [k for k, v in self._active.items() if v["source"] == source and v["last_end"] >= step]:
            del self._active[key]

    # ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed for an exact resume, as plain JSON-able values."""
        return {
            "version": STATE_VERSION,
            "train": copy.deepcopy(list(self._train)),
            "evals": copy.deepcopy(self._evals),
            "pinned": [[index, copy.deepcopy(record)] for index, record in self._pinned],
            "n_train": self._n_train,
            "active": copy.deepcopy(self._active),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state produced by `state_dict` (the config and context come from the constructor)."""
        if int(state.get("version", -1)) != STATE_VERSION:
            raise ValueError(f"unsupported Tracker state version {state.get('version')!r}")
        self._reset()
        self._train = deque(copy.deepcopy(list(state["train"])), maxlen=self.cfg.tracker_history)
        self._evals = copy.deepcopy(list(state["evals"]))
        self._pinned = [(int(index), copy.deepcopy(record)) for index, record in state["pinned"]]
        self._n_train = int(state["n_train"])
        self._active = {
            str(key): {"severity": str(v["severity"]), "last_end": int(v["last_end"]), "source": str(v["source"])}
            for key, v in state["active"].items()
        }
