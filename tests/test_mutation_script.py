"""benchmarks/mutation.py (issue #28): which mutants an after phase re-runs. No mutmut run here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("mutmut")  # the `mutation` extra: status names come from mutmut's own table

_SPEC = importlib.util.spec_from_file_location(
    "bench_mutation", Path(__file__).resolve().parents[1] / "benchmarks" / "mutation.py")
mutation = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(mutation)

M = "ganstab.diagnose.detectors"
BEFORE = {f"{M}.x_detect_dead__mutmut_1": 0, f"{M}.x_detect_dead__mutmut_2": 1, f"{M}.x_detect_dead__mutmut_3": 33,
          f"{M}.x_detect_dead__mutmut_4": None, f"{M}.x_detect_d_overfitting__mutmut_1": 0}


def test_after_phase_reruns_survivors_and_every_mutant_of_a_rewritten_function() -> None:
    assert mutation.REWRITTEN["diagnose.detectors"] == ("x_detect_d_overfitting",)
    now = {**BEFORE, f"{M}.x_detect_d_overfitting__mutmut_1": 1, f"{M}.x_detect_d_overfitting__mutmut_2": 1}
    assert mutation.rerun_names("diagnose.detectors", BEFORE, now) == [
        f"{M}.x_detect_d_overfitting__mutmut_1", f"{M}.x_detect_d_overfitting__mutmut_2",
        f"{M}.x_detect_dead__mutmut_1", f"{M}.x_detect_dead__mutmut_3", f"{M}.x_detect_dead__mutmut_4"]


def test_after_phase_in_a_fresh_tree_names_a_rewritten_function_by_pattern() -> None:
    # no mutants/ yet in this tree: the rewritten function's mutants are not numbered, so mutmut gets its pattern
    assert mutation.rerun_names("diagnose.detectors", BEFORE, {}) == [
        f"{M}.x_detect_d_overfitting__mutmut_*", f"{M}.x_detect_dead__mutmut_1", f"{M}.x_detect_dead__mutmut_3",
        f"{M}.x_detect_dead__mutmut_4"]
