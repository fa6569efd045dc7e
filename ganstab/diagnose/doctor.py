"""Run-directory side of the doctor: read metrics.jsonl, write findings.jsonl, format a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ganstab.config import DoctorConfig, read_yaml
from .detectors import diagnose
from .findings import Finding, finding_problem, worst_first
from ganstab.rundir import JsonLines, RunDir, append_jsonl, atomic_write, read_json_lines, read_records

# context key -> dotted config key it is read from (see ganstab.diagnose.advice for their use)
CONTEXT_KEYS: dict[str, str] = {
    "loss_kind": "loss.kind",
    "real_label": "loss.real_label",
    "gp": "penalty.gp",
    "r1": "penalty.r1",
    "r2": "penalty.r2",
    "lecam": "penalty.lecam",
    "drift": "penalty.drift",
    "d_norm": "model.d_norm",
    "n_critic": "train.n_critic",
    "expected_modes": "doctor.expected_modes",
    "augment_policy": "augment.policy",
    "data_name": "data.name",
}

# modes of the 2-D benchmark datasets (PacGAN protocol), used when the config names one
EXPECTED_MODES: dict[str, int] = {"ring8": 8, "grid25": 25}


def read_context(run_dir: str | Path) -> dict[str, Any]:
    """Context for the advice from a run's config.yaml (empty when absent or unreadable)."""
    path = RunDir(run_dir).config
    if not path.is_file():
        return {}
    try:
        config = read_yaml(path)  # with its limits: an alias bomb in config.yaml is refused, not expanded
    except Exception:  # a broken config must not stop a diagnosis
        return {}
    return context_from_config(config if isinstance(config, dict) else {})


def context_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Context dict from a nested or dotted config mapping (`CONTEXT_KEYS`; expected modes from data.name)."""
    context: dict[str, Any] = {}
    for name, dotted in CONTEXT_KEYS.items():
        if dotted in config:
            value: Any = config[dotted]
        else:
            value = config
            for part in dotted.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            context[name] = value
    data_name = context.pop("data_name", None)
    if "expected_modes" not in context and data_name in EXPECTED_MODES:
        context["expected_modes"] = EXPECTED_MODES[data_name]
    return context


def diagnose_run(
    run_dir: str | Path, cfg: DoctorConfig | None = None, context: Mapping[str, Any] | None = None
) -> list[Finding]:
    """Diagnose a finished or running run directory (context read from config.yaml if not given)."""
    records = read_records(run_dir)
    if context is None and Path(run_dir).is_dir():
        context = read_context(run_dir)
    return diagnose(records, cfg, context)


def write_findings(path: str | Path, findings: Iterable[Finding], append: bool = True) -> None:
    """Write findings as JSON lines (appends by default, as the training loop does)."""
    if not append:
        atomic_write(path, "")
    append_jsonl(path, [finding.to_dict() for finding in findings], sort_keys=True)


def read_findings(path: str | Path) -> list[Finding]:
    """Findings from a findings.jsonl file (damaged lines skipped; `read_finding_lines` lists them)."""
    return [Finding.from_dict(record) for record in read_finding_lines(path).records]


def read_finding_lines(path: str | Path) -> JsonLines:
    """The usable lines of a findings.jsonl file and the ones skipped (not UTF-8, not JSON, not a finding)."""
    return read_json_lines(path, finding_problem)


def unread_reason(found: JsonLines, finished: bool) -> str | None:
    """Why no verdict can be given from a run's metrics lines, or None: no readable line at all, or a finished
    run whose last line (its final evaluation) is damaged."""
    if not found.records:
        why = "no readable line" if not found.skipped else f"no readable line ({len(found.skipped)} damaged)"
        return f"metrics.jsonl holds {why}; nothing to judge"
    if finished and found.last_line_skipped and not any(r.get("final") is True for r in found.records):
        return (f"the last line of metrics.jsonl (line {found.last_line}, the final evaluation) is damaged "
                f"({found.skipped[-1].reason}); score the generator again with 'ganstab eval'")
    return None


def is_divergence(finding: Finding) -> bool:
    """True for findings that should trigger automatic recovery (NaN/Inf or an explosion)."""
    return finding.is_divergence


def _evidence_text(evidence: Mapping[str, float]) -> str:
    parts = []
    for name, value in evidence.items():
        text = str(value) if isinstance(value, int) else f"{value:.4g}"
        parts.append(f"{name}={text}")
    return ", ".join(parts)


def format_report(findings: Iterable[Finding]) -> str:
    """A short human report: one block per finding, or "No problems found"."""
    findings = list(findings)
    if not findings:
        return "No problems found."
    counts = {severity: sum(f.severity == severity for f in findings) for severity in worst_first()}
    summary = ", ".join(f"{n} {name}{'s' if n != 1 else ''}" for name, n in counts.items() if n)
    blocks = [f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({summary})"]
    for finding in findings:
        about = f" [{finding.metric}]" if finding.metric else ""
        blocks.append(
            f"{finding.severity.upper()}  {finding.code}{about}  steps {finding.start_step}-{finding.end_step}\n"
            f"  {finding.message}\n"
            f"  evidence: {_evidence_text(finding.evidence)}\n"
            f"  advice: {finding.advice}"
        )
    return "\n\n".join(blocks)
