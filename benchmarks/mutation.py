"""Mutation testing of ganstab's core with mutmut (issue #28): which changes to the code do the tests notice?

mutmut (the `mutation` extra) copies ganstab/ and tests/ into mutants/ (gitignored), makes small changes
("mutants") to the modules below, and runs, for each mutant, the tests of the FAST test files configured in
pyproject.toml ([tool.mutmut] pytest_add_cli_args_test_selection) that called the mutated function (a first full
run of those files maps tests to functions). A mutant is *killed* when a test fails, *survived* when all pass,
*timeout* when the tests run past mutmut's limit (counted as detected), *no tests* when no selected test calls
the function (counted as survived). Surviving mutants that cannot change any observable value are listed in
EQUIVALENT below with the reason; the score is (killed + timeout) / (total - equivalent).

The modules run in priority order (maths, then resume and the detectors, then the run folder), one module per
`mutmut run`, each with `nice -n 15` and one child process (the machine is shared); --until stops before starting
a module once that UTC time is past, and the report says which modules ran.

Usage:
    python benchmarks/mutation.py --phase before [--tree CLONE_OF_THE_BASE_COMMIT] [--modules losses ...] [--until 17:20]
    python benchmarks/mutation.py --phase after [--modules ...]   # re-runs only the before phase's survivors
    python benchmarks/mutation.py --phase after --collect         # re-read mutants/ and rewrite the report only
    python benchmarks/mutation.py --phase after --modules diagnose.detectors --before-tree CLONE
        # re-runs the survivors and the not-checked mutants of the before run in CLONE, and every mutant of the
        # functions edited since (REWRITTEN); the module's after row is then the full tally over this tree
    python benchmarks/mutation.py --tables                        # print the RESULTS.md tables
Writes results/mutation.json (phases.before / phases.after per module and group, survivors, equivalents,
provenance) and results/mutation.md. Each phase keeps the other; an after run keeps the rows of modules it did not
re-run, their survivors split anew by the current EQUIVALENT (an equivalent added for a mutant re-run alone by name,
e.g. `mutmut run NAME`, moves it from the survivors to the equivalents without re-running the module).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import RESULTS, machine  # noqa: E402

# module -> (source file, the fast test files that cover it); the order is the priority order.
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "losses": ("ganstab/losses.py", ("tests/test_losses.py",)),
    "penalties": ("ganstab/penalties.py", ("tests/test_penalties.py",)),
    "augment": ("ganstab/augment.py", ("tests/test_augment.py",)),
    "metrics.stats": ("ganstab/metrics/stats.py", ("tests/test_metrics.py",)),
    "metrics.modes": ("ganstab/metrics/modes.py", ("tests/test_metrics.py",)),
    "training.checkpoint": ("ganstab/training/checkpoint.py", ("tests/test_checkpoint.py",)),
    "training.state": ("ganstab/training/state.py", ("tests/test_checkpoint.py", "tests/test_trainer_state.py")),
    "diagnose.detectors": ("ganstab/diagnose/detectors.py", ("tests/test_diagnose.py",)),
    "rundir": ("ganstab/rundir.py", ("tests/test_checkpoint.py", "tests/test_diagnose.py", "tests/test_rundir_io.py",
                                     "tests/test_rundir_runs.py")),
}
GROUPS = {"maths": ("losses", "penalties", "augment", "metrics.stats", "metrics.modes"),
          "resume": ("training.checkpoint", "training.state"),
          "detectors": ("diagnose.detectors",), "rundir": ("rundir",)}
TARGETS = {"maths": 0.90, "resume": 0.80, "detectors": 0.80}
STATUS_KEYS = ("killed", "survived", "timeout", "no tests", "suspicious", "segfault", "skipped", "not checked",
               "caught by type check", "check was interrupted by user")

# mutant name -> why no test can tell it from the original (see the policy in results/mutation.md).
_RELATIVISTIC_TARGETS = ("the relativistic D losses share the (real, fake, real_target, fake_target) signature of "
                         "the table but never read the targets, so G's mirror call may pass any")
EQUIVALENT: dict[str, str] = {
    **{f"ganstab.losses.x_generator_loss__mutmut_{n}": _RELATIVISTIC_TARGETS for n in (15, 16, 21, 22)},
    "ganstab.penalties.x__input_gradients__mutmut_1": "default scale 1 -> 2 of a private helper whose two callers "
                                                      "always pass the scale",
    **{f"ganstab.penalties.x_{name}__mutmut_{n}": (
        "default AMP scale 1 -> 2: a power-of-two scale cancels exactly in grad(2 D) / 2, so the two defaults differ "
        "only in how float16 rounds gradients below its smallest subnormal (the scale's purpose is tested with "
        "1024)") for name, n in (("r1_penalty", 1), ("r2_penalty", 1), ("gradient_penalty", 2))},
    **{f"ganstab.penalties.x_gradient_penalty__mutmut_{n}": "norm(None, dim=1) and norm(dim=1) are torch's default "
       "p = 2, the same Euclidean norm as norm(2, dim=1)" for n in (13, 15)},
    **{f"ganstab.penalties.x_interpolate__mutmut_{n}": (
        "alpha's device None instead of the inputs' device: the same CPU on this CPU-only machine; "
        "tests/test_penalties.py::test_interpolate_puts_alpha_on_the_inputs_device (gpu marker) kills it on CUDA")
       for n in (15, 19, 23, 25)},
    **{name: "a device argument dropped or None: the default device, the same CPU as the inputs' on this CPU-only "
       "machine (the inputs' device matters on CUDA only)" for name in (
        "ganstab.augment.x_augment__mutmut_15", "ganstab.augment.x_augment__mutmut_18",
        "ganstab.augment.x_augment__mutmut_41", *(f"ganstab.augment.x_cutout_square__mutmut_{n}"
                                                  for n in (8, 10, 18, 20)),
        *(f"ganstab.augment.x_translate__mutmut_{n}" for n in (21, 23, 43, 45)),
        *(f"ganstab.augment.x__uniform__mutmut_{n}" for n in (4, 7, 8, 10)),
        *(f"ganstab.augment.x__integers__mutmut_{n}" for n in (6, 11, 14)),
        "ganstab.metrics.stats.x_frechet_distance__mutmut_23",
        *(f"ganstab.metrics.stats.x_kid__mutmut_{n}" for n in (12, 40, 46, 53)),
        *(f"ganstab.metrics.modes.x_mode_coverage__mutmut_{n}" for n in (34, 36)),
        *(f"ganstab.metrics.stats.x_knn_squared_radii__mutmut_{n}" for n in (19, 22)),
        "ganstab.metrics.stats.x__prepare_pair__mutmut_9",
        *(f"ganstab.metrics.stats.x_manifold_metrics__mutmut_{n}" for n in (41, 45, 48, 52, 55, 59, 62, 66, 69)),
        *(f"ganstab.metrics.stats.x_frechet_distance_from_stats__mutmut_{n}" for n in (9, 12, 16, 19, 23, 26)))},
    **{f"ganstab.metrics.stats.x_frechet_distance_from_stats__mutmut_{n}": "one mean left in its input dtype: its "
       "only use, mu1 - mu2 against the other mean's float64, promotes it exactly to float64 first"
       for n in (3, 5, 8, 11)},
    "ganstab.metrics.stats.x__psd_eigenvalues_floor__mutmut_12": "eigenvalue > vs >= the round-off threshold: "
       "equality has probability zero for a positive threshold, and a zero threshold keeps only zeros either way",
    **{f"ganstab.augment.x_translate__mutmut_{n}": "a second fill column (row) after the first: the gathers clamp "
       "their indices at w + 1 (h + 1), the first fill column, and never read the second" for n in (10, 12)},
    **{f"ganstab.augment.x_cutout_square__mutmut_{n}": "arange(h).view(h) broadcasts against top.view(-1, 1) "
       "exactly as view(1, h) does: the same (N, h) comparison" for n in (5, 15)},
    **{f"ganstab.augment.x_cutout__mutmut_{n}": "centre - size / 2 (a float) and centre - size // 2 select the same "
       "integer rows and columns: for size 2k + 1, rows >= c - k - 0.5 and rows < c + k + 0.5 are rows >= c - k and "
       "rows < c - k + size; for even sizes both are exact" for n in (48, 52)},
    **{f"ganstab.metrics.stats.x_{name}__mutmut_{n}": "max_chunk_elements not passed on: it sets how many distances "
       "are held at once, never the value (tests/test_metrics.py::test_manifold_metrics_chunking_is_exact)"
       for name, n in (("precision_recall", 12), ("density_coverage", 12))},
    **{name: "torch.where(p > 0, p * log(...), 0) vs p >= 0: where p = 0 the product is 0 * a finite number (the "
       "logs are of values clamped at eps) = 0, the same as the 0 chosen" for name in (
        "ganstab.metrics.stats.x_class_kl__mutmut_35", "ganstab.metrics.stats.x_inception_score__mutmut_47")},
    **{f"ganstab.metrics.stats.x_inception_score__mutmut_{n}": "the marginal's keepdim dropped: (K,) broadcasts "
       "against the (n, K) part exactly as (1, K) does" for n in (30, 32)},
    **{name: "np.asarray of Python floats without dtype=float64 is float64 already" for name in (
        "ganstab.metrics.stats.x_inception_score__mutmut_57", "ganstab.metrics.stats.x_inception_score__mutmut_59",
        "ganstab.metrics.stats.x_kid__mutmut_70", "ganstab.metrics.stats.x_kid__mutmut_72")},
    "ganstab.metrics.modes.x_stacked_modes__mutmut_32": "bincount without minlength: the histogram stops at the "
       "largest mode seen, the missing tail is zeros, which count no mode and add 0 to the KL (K is num_modes either "
       "way)",
    "ganstab.metrics.modes.x_mode_coverage__mutmut_59": "bincount without minlength: the missing tail of modes is "
       "zeros, which count no mode and add 0 to the KL (K is num_modes either way)",
    "ganstab.metrics.modes.x_mode_coverage__mutmut_75": "torch.where(p > 0, ...) vs p >= 0: where p = 0 the chosen "
       "term is 0 * log(1e-300 K) = 0",
    **{f"ganstab.metrics.modes.x_mode_coverage__mutmut_{n}": "samples or centres left in float32: their only use, "
       "points - centres against the other side's float64, promotes them exactly to float64 first"
       for n in (32, 35, 37)},
    "ganstab.metrics.modes.x_stacked_modes__mutmut_46": "torch.where(p > 0, ...) vs p >= 0: where p = 0 the chosen "
       "term is 0 * log(1e-300 K), a finite number times 0 = 0",
    **{f"ganstab.training.checkpoint.x_{name}__mutmut_{n}": "the CUDA generators' branch: it runs only where CUDA "
       "is available, never on this CPU-only machine (no GPU test covers it yet)"
       for name, ns in (("rng_state", (37, 38, 39)), ("set_rng_state", (30, 31, 32, 33, 34, 35, 36))) for n in ns},
    "ganstab.metrics.stats.x_class_histogram__mutmut_19": "labels not cast to int64 before bincount: bincount "
       "counts every integer dtype alike (floating labels are refused just before)",
    "ganstab.training.checkpoint.x_set_rng_state__mutmut_10": "numpy's keys handed to np.random.set_state without "
       "the uint32 cast: numpy converts the same integer values itself",
    "ganstab.training.checkpoint.x_rng_state__mutmut_11": "numpy's uint32 keys kept as float64 instead of int64: "
       "every uint32 is exact in float64, and set_rng_state casts them back to uint32",
    "ganstab.metrics.stats.x__squared_distances__mutmut_18": "addmm's beta=1.0 is its default",
    "ganstab.metrics.stats.x_knn_squared_radii__mutmut_45": "topk's default dim is the last, dim 1 of the (B, M) "
                                                            "distances",
    **{f"ganstab.metrics.stats.x__prepare_pair__mutmut_{n}": "the centre as the mean of every coordinate (a scalar) "
       "or a (D,) mean instead of (1, D): distances are translation invariant and (D,) broadcasts as (1, D)"
       for n in (30, 33, 35)},
    **{f"ganstab.metrics.stats.x_manifold_metrics__mutmut_{n}": "chunk_size / max_chunk_elements not passed to the "
       "radii: chunking never changes a value, and a chunk_size < 1 is refused with the same message by the "
       "distance loop right after" for n in (24, 28, 29, 35, 39, 40)},
    **{f"ganstab.metrics.stats.x_manifold_metrics__mutmut_{n}": "an accumulator created as float32 instead of bool "
       "or int64: it only ever holds 0/1 flags or counts far below 2^24, exact in float32, and is read through "
       ".double()" for n in (51, 54, 58, 61, 65, 68)},
    "ganstab.metrics.stats.x_manifold_metrics__mutmut_76": "chunk_size not used by the distance loop: chunking never "
       "changes a value, and chunk_size < 1 was already refused with the same message by the radii",
    "ganstab.metrics.stats.x_manifold_metrics__mutmut_30": "the initial fake_radii (None or '') is never read: it is "
                                                           "assigned before use whenever k_pr is set",
    **{f"ganstab.metrics.stats.x__rows_per_chunk__mutmut_{n}": "another number of rows per chunk: chunks set the "
       "memory held at once, never the value (tests/test_metrics.py::test_manifold_metrics_chunking_is_exact)"
       for n in (9, 15)},
    **{f"ganstab.penalties.x_consistency_penalty__mutmut_{n}": "every sample has the same number of features, so "
       "the batch mean of the per-sample means is the mean over all entries, whatever the reshape "
       "(reshape(a.shape[1], -1)) or the axis of the first mean (mean(dim=None))" for n in (11, 14)},
    "ganstab.augment.x_augment__mutmut_20": "U(0, 1) draw < p vs <= p: the draws are continuous, equality with p has "
                                            "probability about 2^-24 per draw",
    **{f"ganstab.diagnose.detectors.x_detect_critic_drift__mutmut_{n}": "the prefix counts of increases start at 1 "
       "instead of 0: they are only read as differences up[i] - up[lo], where the offset cancels" for n in (34, 35)},
    "ganstab.diagnose.detectors.x_detect_critic_drift__mutmut_60": "fracs starting at 1.0: fracs[i] is read only at "
       "the last record of a flagged run, and every flagged record's entry is computed first",
    "ganstab.diagnose.detectors.x_detect_critic_drift__mutmut_63": "window_first starting at 1: every entry is "
       "assigned in the loop before any is read",
    **{name: "final = -2 instead of -1 when the run has no final evaluation: both only meet `i == final` or "
       "`last == final` for an index, which is never negative" for name in (
        "ganstab.diagnose.detectors.x_detect_failed_evaluation__mutmut_25",
        "ganstab.diagnose.detectors.x_detect_modes__mutmut_33")},
    **{f"ganstab.diagnose.detectors.x__evaluation_failure__mutmut_{n}": "the value or threshold returned with no "
       "failing metric (\"\") is never read: that evaluation is not flagged" for n in (71, 72)},
    **{name: "_threshold_runs never reads its steps argument (the callers index their steps themselves)"
       for name in ("ganstab.diagnose.detectors.x_detect_class_kl__mutmut_42",
                    "ganstab.diagnose.detectors.x_detect_diversity__mutmut_56")},
    **{name: "one value past the run: it does not meet the warning bound (or is exempt as a new best), so it cannot be "
       "the run's worst value, nor meet the error bound (the config refuses error bounds looser than warning ones)"
       for name in ("ganstab.diagnose.detectors.x_detect_class_kl__mutmut_59",
                    "ganstab.diagnose.detectors.x_detect_diversity__mutmut_75",
                    "ganstab.diagnose.detectors.x__threshold_runs__mutmut_28")},
    "ganstab.diagnose.detectors.x_detect_coverage_drop__mutmut_35": "one value past the run: not flagged, so it is "
       "within the margin of a best at least as high as the run's, above every value of the run",
    "ganstab.diagnose.detectors.x_detect_modes__mutmut_63": "one value past the run: not flagged, so it is at or "
       "above the tolerance limit or above every earlier value, in both cases above the run's worst",
    **{name: "float('-INF') is float('-inf')" for name in (
        "ganstab.diagnose.detectors.x_detect_coverage_drop__mutmut_11",
        "ganstab.diagnose.detectors.x_detect_diversity__mutmut_39")},
    "ganstab.diagnose.detectors.x_detect_coverage_drop__mutmut_12": "the initial best step is never read: the first "
       "(finite) value always beats -inf and sets it",
    **{f"ganstab.diagnose.detectors.x_detect_stall__mutmut_{n}": "the initial best (1.0) or best index (-2): the first "
       "evaluation is always an improvement (best_index < 0) and overwrites both" for n in (22, 24)},
    "ganstab.diagnose.detectors.x_detect_vanishing_g_grad__mutmut_26": "len(train) < early_count instead of <=: when "
       "they are equal no record follows the early window, so there is nothing to flag either way",
    **{f"ganstab.diagnose.detectors.x__window_stds__mutmut_{n}": "np.asarray of Python floats without dtype=float64 "
       "is float64 already" for n in (3, 5)},
    **{f"ganstab.diagnose.detectors.x__exceedances__mutmut_{n}": "an initial centre, scale, ratio or flag of a record "
       "before the check starts: the flag stays falsy (False or None) and the detail of an unflagged record is never "
       "read (a finding's peak is among flagged records)" for n in (8, 9, 15, 17, 18)},
    "ganstab.diagnose.detectors.x__exceedances__mutmut_10": "stale starting False: the check needs at least one kept "
       "value, and keeping a value sets stale = True, so the first check always recomputes the baseline",
    "ganstab.diagnose.detectors.x__exceedances__mutmut_60": "stale = None after the recomputation: as falsy as False",
    "ganstab.diagnose.detectors.x_detect_vanishing_g_grad__mutmut_23": "early_count 1 instead of 0 for an empty run: "
       "with no records, len(train) <= early_count returns [] either way",
    "ganstab.diagnose.detectors.x_detect_vanishing_g_grad__mutmut_85": "np.finfo(None) is float64's finfo in numpy 2.4 "
       "(deprecated since 1.25, so a later numpy will raise: the value is the same today)",
    "ganstab.diagnose.detectors.x_detect_nonfinite__mutmut_14": "one record past the run: it has no bad key (that is "
       "where the run ends), so the set of names is the same",
    "ganstab.diagnose.detectors.x_detect_dead__mutmut_18": "the prefix counts of dead records start at 1 instead of "
       "0: they are only read as differences, where the offset cancels",
    **{name: "a final evaluation exactly at the error bound taken as decisive: it is appended only when it comes "
       "before the warm-up, so it is the only value judged, a run of one that counts only when it is past the error "
       "bound, which it is not" for name in ("ganstab.diagnose.detectors.x_detect_class_kl__mutmut_33",
                                              "ganstab.diagnose.detectors.x_detect_diversity__mutmut_28")},
    "ganstab.diagnose.detectors.x__exceedances__mutmut_61": "stale = True after the recomputation: the baseline is "
       "recomputed from the same kept values until one is added, giving the same centre and scale",
    # --- diagnose.detectors (issue #28, session 10) ---
    **{f"ganstab.diagnose.detectors.x_detect_oscillation__mutmut_{n}": "a chain refused when its older window ends "
       "at record 0 (previous <= 0 or < 1 instead of < 0): that window holds the one record 0, fewer than "
       "osc_min_records (the config refuses fewer than 3), so its std is None and the original skips the chain too"
       for n in (30, 31)},
    # --- rundir, first half (issue #28, session 10) ---
    **{f"ganstab.rundir.x_sha256_file__mutmut_{n}": "another read size (the whole file at once, or 2 MiB chunks): "
       "SHA-256 of a byte stream does not depend on how the bytes are split between update() calls"
       for n in (13, 15, 16)},
    **{name: "'UTF-8' for 'utf-8': Python normalises codec names, both are the same codec" for name in (
        "ganstab.rundir.x_atomic_write__mutmut_14", "ganstab.rundir.x__line_problem__mutmut_4",
        "ganstab.rundir.x_append_jsonl__mutmut_11")},
    **{f"ganstab.rundir.x_append_jsonl__mutmut_{n}": "the file opened in the locale's encoding instead of UTF-8: "
       "json.dumps escapes every non-ASCII character (ensure_ascii is on), so each line is ASCII and its bytes are "
       "the same in UTF-8 and in any locale encoding (ASCII-compatible on POSIX; UTF-8 on this machine)"
       for n in (4, 7)},
    "ganstab.rundir.x__line_problem__mutmut_22": "the reason returned with a usable record (\"XXXX\" for \"\") is "
       "never read: both readers of _parsed_lines (read_json_lines, rewrite_jsonl) read the reason only when the "
       "record is None",
    # --- rundir, second half (issue #28, session 10) ---
    **{name: "'UTF-8' and 'utf-8' name the same codec: Python normalises codec names before the lookup" for name in (
        "ganstab.rundir.x__read_lock__mutmut_7", "ganstab.rundir.xǁRunLockǁrelease__mutmut_5",
        "ganstab.rundir.x_acquire_lock__mutmut_87", "ganstab.rundir.x_finished_export__mutmut_6")},
    **{f"ganstab.rundir.x_acquire_lock__mutmut_{n}": "the lock written in the locale's encoding instead of UTF-8: "
       "its text is json.dumps with the default ensure_ascii (a non-ASCII host name becomes \\uXXXX escapes), pure "
       "ASCII, which every locale encoding of a POSIX system encodes to the same bytes (reading is tested under an "
       "ASCII locale)" for n in (80, 83)},
    "ganstab.rundir.x_acquire_lock__mutmut_72": "'stale' vs 'unreadable' message for pid > 1 instead of pid > 0: they "
       "differ only for a lock naming process 1 on this host, which is refused as in use before the message (pid "
       "1, init, outlives every other process of its PID namespace, so pid_alive(1) is never False)",
    "ganstab.rundir.x_check_output_path__mutmut_28": "`existing.is_dir() or existing != path` picks another folder "
       "only when existing is the path itself and a folder (then the else branch picks the path, the same folder) or "
       "when existing is a file above the path (refused as 'lies below ... a file' just before)",
    "ganstab.rundir.x_rewrite_jsonl__mutmut_16": "`last` 1 instead of 0 for a file with no non-empty line: `last` is "
       "read only inside the loop over those lines, which then never runs",
    # --- training.state (issue #28, session 10) ---
    **{f"ganstab.training.state.xǁTrainerStateǁload_state__mutmut_{n}": "a generator state moved .to(None) instead "
       "of to its generator's device, the CPU (get_state is a CPU ByteTensor, for a CUDA generator too): resume and "
       "rollback load checkpoints on the CPU, and on this CPU-only machine every tensor with data is on the CPU, so "
       "both are the same no-op; they differ only for a state mapped to a GPU by hand" for n in (57, 65)},
    "ganstab.metrics.stats.x__prepare_pair__mutmut_28": "the fakes left in their own dtype instead of the promoted "
       "one: their only use, fake - centre against the centre of the reals in the promoted dtype, promotes them "
       "exactly first (as_features gives float32 or float64, and every float32 is exact in float64), so the returned "
       "fakes are the same numbers in the same dtype (checked bit for bit, float32 fakes beside float64 reals)",
}


# module -> functions edited between the before phase's commit and this one: mutmut numbers a function's mutants in
# order, so an edit renumbers them; the after phase (with --before-tree) re-runs all of these functions' mutants.
REWRITTEN: dict[str, tuple[str, ...]] = {
    # 576c33b: no d_overfitting finding under a relativistic loss (`== "wasserstein"` became `in (...)`, 2 mutants more)
    "diagnose.detectors": ("x_detect_d_overfitting",),
    # 46fd15e: read_json_lines and rewrite_jsonl share the new line parser _parsed_lines; c70abe7: check_study_out is
    # new; issue #28 session 10: keep_as_good removes its temp link when the rename was a no-op (one line more)
    "rundir": ("x_read_json_lines", "x__parsed_lines", "x_rewrite_jsonl", "x_check_study_out", "x_keep_as_good"),
    # 89659a2: resume_from returns the keys the checkpoint's config lacks (saved/current named, one line more);
    # issue #28 session 10: it loads the checkpoint on the CPU (map_location dropped)
    "training.state": ("xǁTrainerStateǁresume_from",),
}


def function_of(name: str) -> str:
    """The mangled function of a mutant name ('ganstab.m.x_f__mutmut_3' -> 'x_f')."""
    return name.rpartition(".")[2].split("__mutmut_")[0]


def mutmut_bin() -> str:
    """The mutmut command beside this Python."""
    return str(Path(sys.executable).with_name("mutmut"))


def run_module(tree: Path, module: str, names: list[str] | None = None) -> int:
    """`nice -n 15 mutmut run --max-children 1` in `tree` over one module's mutants (or the named ones)."""
    patterns = names if names else [f"ganstab.{module}.*"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": ""}
    command = ["nice", "-n", "15", mutmut_bin(), "run", "--max-children", "1", *patterns]
    print(f"mutation: {module}: {len(names) if names else 'all'} mutants", flush=True)
    return subprocess.run(command, cwd=tree, env=env, stdout=subprocess.DEVNULL).returncode


def read_results(tree: Path) -> dict[str, dict[str, int | None]]:
    """module -> {mutant name: mutmut exit code (None: not run)} from tree/mutants/**/*.meta."""
    out: dict[str, dict[str, int | None]] = {}
    for module, (source, _) in MODULES.items():
        meta = tree / "mutants" / f"{source}.meta"
        out[module] = json.loads(meta.read_text())["exit_code_by_key"] if meta.is_file() else {}
    return out


def status_of(code: int | None) -> str:
    """mutmut's status name of an exit code, with '_' for ' ' ('no_tests')."""
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code].replace(" ", "_")


def score(row: dict[str, Any]) -> float | None:
    """(killed + timeout) / (mutants run - equivalent)."""
    denominator = row["total"] - row.get("not_checked", 0) - row["equivalent"]
    return (row["killed"] + row["timeout"]) / denominator if denominator else None


def tally(codes: dict[str, int | None]) -> dict[str, Any]:
    """Counts per status, the survivors (name -> status) and equivalents among them, and the score."""
    statuses = {name: status_of(code) for name, code in codes.items()}
    row: dict[str, Any] = {"total": len(codes), "killed": 0, "survived": 0, "no_tests": 0, "timeout": 0,
                           "not_checked": 0}
    for status in statuses.values():
        row[status] = row.get(status, 0) + 1
    left = {n: s for n, s in sorted(statuses.items()) if s in ("survived", "no_tests")}
    row["survivors"] = {n: s for n, s in left.items() if n not in EQUIVALENT}
    row["equivalents"] = {n: s for n, s in left.items() if n in EQUIVALENT}
    row["equivalent"] = len(row["equivalents"])
    row["score"] = score(row)
    return row


def reclassified(row: dict[str, Any]) -> dict[str, Any]:
    """A kept row (a module not re-run now) with its survivors split anew by the current EQUIVALENT: an
    equivalent added since it ran moves from the survivors to the equivalents, and the score follows."""
    left = {**row["survivors"], **row["equivalents"]}
    out = {**row, "survivors": {n: s for n, s in sorted(left.items()) if n not in EQUIVALENT},
           "equivalents": {n: s for n, s in sorted(left.items()) if n in EQUIVALENT}}
    out["equivalent"] = len(out["equivalents"])
    out["score"] = score(out)
    return out


def merged_after(before: dict[str, Any], rerun: dict[str, int | None]) -> dict[str, Any]:
    """The after row of a module whose before survivors were re-run: the other mutants keep their before status
    (the source is unchanged and tests were only added), the re-run ones take their new status."""
    row = {k: v for k, v in before.items() if k not in ("survivors", "equivalents")}
    left = {**before["survivors"], **before["equivalents"]}
    for name, old in left.items():
        row[old] -= 1
        new = status_of(rerun.get(name))
        row[new] = row.get(new, 0) + 1
    again = tally({n: rerun.get(n) for n in left})
    row["survivors"], row["equivalents"], row["equivalent"] = again["survivors"], again["equivalents"], \
        again["equivalent"]
    row["score"] = score(row)
    return row


def rerun_names(module: str, before_codes: dict[str, int | None], now_codes: dict[str, int | None]) -> list[str]:
    """The mutants an after phase re-runs: the before run's survivors, no-tests and not-checked mutants, and every
    mutant (as numbered now) of the module's functions in REWRITTEN; before this tree's first run (no mutants/ yet,
    so nothing numbered now) those functions are named by mutmut's pattern `ganstab.MODULE.FUNCTION__mutmut_*`."""
    rewritten = REWRITTEN.get(module, ())
    left = [n for n, c in before_codes.items() if function_of(n) not in rewritten
            and status_of(c) in ("survived", "no_tests", "not_checked")]
    if not now_codes:
        return sorted(left + [f"ganstab.{module}.{function}__mutmut_*" for function in rewritten])
    return sorted(left + [n for n in now_codes if function_of(n) in rewritten])


def after_codes(module: str, before_codes: dict[str, int | None], now_codes: dict[str, int | None],
                names: list[str]) -> dict[str, int | None]:
    """Every mutant of the module as numbered now: its code from this run if it was re-run, else its before code."""
    rerun = set(names)
    return {n: now_codes.get(n) if n in rerun else before_codes[n] for n in now_codes}


def git_commit(tree: Path) -> str:
    """The tree's HEAD hash, '+dirty' when its tracked files have changes."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=tree, capture_output=True,
                           text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def group_scores(modules: dict[str, Any]) -> dict[str, Any]:
    """Per group: detected / (total - equivalent) over its modules that ran, and whether it meets its target."""
    out = {}
    for group, names in GROUPS.items():
        rows = [modules[n] for n in names if n in modules and modules[n]["total"] - modules[n].get("not_checked", 0)]
        ran = sum(r["total"] - r.get("not_checked", 0) - r["equivalent"] for r in rows)
        detected = sum(r["killed"] + r["timeout"] for r in rows)
        score = detected / ran if ran else None
        out[group] = {"modules": [n for n in names if n in modules and modules[n]["total"]], "score": score,
                      "target": TARGETS.get(group), "met": None if score is None or group not in TARGETS
                      else score >= TARGETS[group]}
    return out


def pct(value: float | None) -> str:
    """A fraction as '93.4 %' ('n/a' for None)."""
    return "n/a" if value is None else f"{100 * value:.1f} %"


def markdown(payload: dict[str, Any]) -> str:
    """results/mutation.md: the per-module table of each phase, the survivors and the equivalents."""
    lines = ["# Mutation testing (`benchmarks/mutation.py`)", "",
             f"mutmut {payload['mutmut']}, commit {payload['commit']}, {payload['date']}, "
             f"{payload['machine']['cpu']} ({payload['machine']['cores']} cores).", ""]
    for phase, data in payload["phases"].items():
        lines += [f"## {phase}", "", f"Command: `{data['command']}` (mutating commit {data['commit']})", "",
                  "| module | mutants | killed | survived | no tests | timeout | equivalent | not run | score |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for module, row in data["modules"].items():
            lines.append(f"| {module} | {row['total']} | {row['killed']} | {row['survived']} | {row['no_tests']} | "
                         f"{row['timeout']} | {row['equivalent']} | {row.get('not_checked', 0)} | "
                         f"{pct(row['score'])} |")
        lines += ["", "| group | modules | score | target |", "|---|---|---:|---:|"]
        for group, row in data["groups"].items():
            lines.append(f"| {group} | {', '.join(row['modules']) or '(not run)'} | {pct(row['score'])} | "
                         f"{pct(row['target']) if row['target'] else '-'} |")
        if data.get("not_run"):
            lines += ["", f"Not run: {', '.join(data['not_run'])}."]
        lines.append("")
    last = list(payload["phases"].values())[-1]
    lines += ["## Survivors (last phase)", ""]
    for module, row in last["modules"].items():
        if row["survivors"]:
            lines.append(f"- {module}: " + ", ".join(f"`{n}`" for n in row["survivors"]))
    lines += ["", "## Equivalent mutants", ""]
    lines += [f"- `{name}`: {reason}" for name, reason in sorted(payload["equivalent"].items())]
    return "\n".join(lines) + "\n"


def results_tables(payload: dict[str, Any], prefix: str = "results/mutation.json") -> str:
    """The before/after tables for benchmarks/RESULTS.md, every figure a link to its key in mutation.json."""
    def link(value: Any, pointer: str, percent: bool = False) -> str:
        text = "n/a" if value is None else (f"{100 * value:.1f} %" if percent else f"{value}")
        return text if value is None else f"[{text}]({prefix}#{pointer})"

    lines = []
    for phase, data in payload["phases"].items():
        lines += [f"**{phase}** (`{data['command']}`, mutating {data['commit'][:7]}"
                  f"{' with uncommitted changes' if data['commit'].endswith('+dirty') else ''}):", "",
                  "| module | mutants | killed | survived + no tests | timeout | equivalent | not run | score |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for module, row in data["modules"].items():
            base = f"/phases/{phase}/modules/{module}"
            lines.append(
                f"| {module} | {link(row['total'], base + '/total')} | {link(row['killed'], base + '/killed')} | "
                f"{link(row['survived'], base + '/survived')} + {link(row['no_tests'], base + '/no_tests')} | "
                f"{link(row['timeout'], base + '/timeout')} | {link(row['equivalent'], base + '/equivalent')} | "
                f"{link(row.get('not_checked', 0), base + '/not_checked')} | {link(row['score'], base + '/score', True)} |")
        groups = [f"{group} {link(row['score'], f'/phases/{phase}/groups/{group}/score', True)}"
                  + (f" (target {100 * row['target']:.0f} %)" if row["target"] else "")
                  for group, row in data["groups"].items() if row["score"] is not None]
        lines += ["", "Groups: " + "; ".join(groups) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run mutmut module by module and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="*", default=list(MODULES), choices=list(MODULES))
    parser.add_argument("--phase", choices=("before", "after"), default="before")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="the checkout to mutate (default: this one; `before` may name a clone of the base commit)")
    parser.add_argument("--until", default=None, help="UTC HH:MM after which no further module is started")
    parser.add_argument("--before-tree", type=Path, default=None,
                        help="after phase: the before phase's tree, whose mutants/ holds every before status")
    parser.add_argument("--collect", action="store_true", help="only read TREE/mutants/ and write the report")
    parser.add_argument("--tables", action="store_true", help="print the RESULTS.md tables of mutation.json and stop")
    args = parser.parse_args(argv)
    path = RESULTS / "mutation.json"
    previous = json.loads(path.read_text()) if path.is_file() else {"phases": {}}
    if args.tables:
        print(results_tables(previous))
        return 0
    before = previous["phases"].get("before", {}).get("modules", {})
    if args.phase == "after" and not before:
        raise SystemExit("mutation: run the before phase first (results/mutation.json has none)")
    command = "python benchmarks/mutation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    stop = None
    if args.until:
        hour, minute = (int(x) for x in args.until.split(":"))
        stop = dt.datetime.now(dt.timezone.utc).replace(hour=hour, minute=minute, second=0, microsecond=0)
    ran: list[str] = []
    for module in args.modules:
        if args.collect or (stop is not None and dt.datetime.now(dt.timezone.utc) >= stop):
            break
        if args.phase == "after" and args.before_tree is not None:
            names = rerun_names(module, read_results(args.before_tree)[module], read_results(args.tree)[module])
            if names:
                run_module(args.tree, module, names)
                ran.append(module)
        elif args.phase == "after":
            names = sorted({**before.get(module, {}).get("survivors", {}),
                            **before.get(module, {}).get("equivalents", {})})
            if names:
                run_module(args.tree, module, names)
                ran.append(module)
        else:
            run_module(args.tree, module)
            ran.append(module)
    results = read_results(args.tree)
    phases = dict(previous.get("phases", {}))
    if args.phase == "before":
        modules = {m: tally(results[m]) for m in MODULES if results[m]}
        modules = {m: row for m, row in modules.items() if row["total"] - row.get("not_checked", 0)}
    else:  # modules re-run now replace their row; the others keep the row of an earlier after run
        earlier = previous["phases"].get("after", {}).get("modules", {})
        if args.before_tree is not None:
            olds = read_results(args.before_tree)
            fresh = {m: tally(after_codes(m, olds[m], results[m], rerun_names(m, olds[m], results[m])))
                     for m in args.modules if m in before and results[m]}
        else:
            fresh = {m: merged_after(before[m], results[m]) for m in args.modules if m in before}
        modules = {m: fresh[m] if m in fresh else reclassified(earlier[m]) for m in MODULES
                   if m in fresh or m in earlier}
    phases[args.phase] = {"command": command, "commit": git_commit(args.tree), "modules": modules,
                          "groups": group_scores(modules), "not_run": [m for m in MODULES if m not in modules],
                          "tests": {m: list(MODULES[m][1]) for m in modules}}
    payload = {"command": command, "machine": machine(), "date": dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"), "commit": git_commit(ROOT), "mutmut": metadata.version("mutmut"),
        "phases": {k: phases[k] for k in ("before", "after") if k in phases}, "equivalent": EQUIVALENT}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "mutation.md").write_text(markdown(payload), encoding="utf-8")
    print(f"mutation: wrote {path} ({', '.join(modules) or 'no module'}; ran now: {', '.join(ran) or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
