"""Hyperparameter search with Optuna: TPE over a search space, trials as ordinary runs, pruning, re-runs.

A trial is the base config plus the sampled params, trained by `pipeline.train` into
`OUT/trials/<number>/` for the same budget (G steps or seconds) and scored by the objective: the data's
main metric (`metrics.registry`) or another registered metric (--objective). Constraints (--constraint
'recall>=0.3') on the final evaluation make a trial infeasible: it is never ranked, chosen or re-run. Only
evaluation lines not scored on the test split are read (`search_lines`). Intermediate evaluations of the
objective are reported to a successive-halving pruner;
a doctor finding of severity error prunes at once; a config the rules refuse is pruned with the
reason as a user attr. The study lives in an Optuna storage (SQLite `OUT/study.db` by default, any
RDB URL, or `journal:PATH`), so re-running the command resumes and workers on other machines join
by running the same command. Each trial records its pid and host: a worker starting marks RUNNING
trials of dead processes on its host as FAIL. After the search the top configurations are
re-trained with fresh seeds (through `ganstab.ablate`) and ranked by their mean; the winner is
written as `best.yaml`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import yaml

from ganstab.ablate import Variant, run_ablation
from ganstab.config import deep_merge, known_keys, nest, read_yaml, to_dict, validate
from ganstab.data import dataset_shape, make_dataset
from ganstab.diagnose.series import as_number
from ganstab.errors import ConfigError, GanstabError, RunInUse, TrainingDiverged
from ganstab.metrics.registry import EVAL_PREFIX, METRICS, higher_is_better, main_metric, plain_name
from ganstab.pipeline import check_config, train
from ganstab.report.tune import TuneView, write_tune_report
from ganstab.rundir import (BEST_CONFIG, RERUN_CSV, RERUN_DIR, STUDY_DB, TRIALS_CSV, TRIALS_DIR, RunDir,
                            atomic_write, csv_text, is_metric_key, is_test_record, pid_alive, read_jsonl)

try:  # optional dependency: pip install 'ganstab[tune]'
    import optuna
    from optuna.trial import TrialState
except ImportError:  # pragma: no cover - exercised only where optuna is missing
    optuna = None
    TrialState = None

__all__ = [
    "order_by_ranking", "Param", "TuneSettings", "DEFAULT_SPACES", "OPTUNA_MISSING", "require_optuna", "parse_space",
           "read_space", "data_kind", "default_space", "objective_metric", "trial_data", "make_storage",
           "open_study", "mark_dead_trials", "decoded_params", "run_worker", "run_tune", "trial_rows", "write_trials_csv",
           "write_best", "rerun_top", "TuneResult", "budget_overrides", "rerun_budget_overrides", "objective",
           "PruneHook", "TrialSeededTPE",
           "postgres_driver", "check_space", "write_rerun_csv", "markdown_table", "finish_study", "default_storage",
           "STUDY_NAME", "MAX_CHOICES", "MAX_SPACE_BYTES", "Constraint", "OBJECTIVES", "parse_objective",
           "parse_constraint", "search_lines", "final_scores", "constraints_text", "POINT_METRICS", "logged_metrics",
           "check_metrics"]

OPTUNA_MISSING = "ganstab tune needs optuna; install it with: pip install 'ganstab[tune]' (or pip install 'optuna>=3.4')"
STUDY_NAME = "ganstab-tune"
EVALUATIONS_PER_TRIAL = 5
RERUN_SEED_OFFSET = 1000  # re-run seeds are --seed + 1000 + i: never the search's seed
TIME_BUDGET_STEPS = 10 ** 9  # --trial-seconds: the clock, not the step count, ends a trial
_SPEC_FIELDS = {"type", "low", "high", "log", "choices"}
MAX_CHOICES = 1000  # most values in one key's choices list
MAX_SPACE_BYTES = 1_000_000  # a search space file larger than this is refused before it is parsed
# findings over evaluation lines judge the objective itself: the pruner weighs those against the other trials
# (an early evaluation of a short trial is always far from the data); errors over training lines prune at once
EVAL_FINDING_CODES: tuple[str, ...] = ("mode_collapse.", "evaluation.", "stall")


def require_optuna() -> None:
    """ConfigError (one line) when optuna is not installed."""
    if optuna is None:
        raise ConfigError(OPTUNA_MISSING)


# ------------------------------------------------------------------------------------------ spaces
@dataclass(frozen=True)
class Param:
    """One searched config key: a float or int range (optionally log-scaled) or a list of choices."""

    key: str
    kind: str  # float | int | choices
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial: Any) -> Any:
        """The value for this key sampled through an Optuna trial (lists among choices are sent as JSON)."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return self.decode(trial.suggest_categorical(self.key, [self.encode(c) for c in self.choices]))

    def encode(self, value: Any) -> Any:
        """A choice as Optuna stores it: scalars as they are, lists as JSON text."""
        return json.dumps(value) if isinstance(value, (list, dict)) else value

    def decode(self, value: Any) -> Any:
        """A stored choice back as the config value."""
        if self.kind == "choices" and isinstance(value, str) and any(isinstance(c, (list, dict)) for c in self.choices):
            return json.loads(value) if value.startswith(("[", "{")) else value
        return value


def _number(key: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"search space key '{key}': {name} must be a finite number, got {value!r}")
    return value


def _check_space_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"search space keys must be dotted config keys like optim.g_lr, got {key!r}")
    if key in ("seed", "out"):
        raise ConfigError(f"search space key '{key}' is set by tune itself; use --seed and --out instead")
    keys = known_keys()
    if key not in keys:
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"search space key '{key}' is not a config key{hint}; run 'ganstab keys' to list the keys")
    return key


def _parse_param(key: str, spec: Any) -> Param:
    usage = "{type: float|int, low, high, log: true|false} or {choices: [...]}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"search space key '{key}' must map to {usage}, got {type(spec).__name__}")
    unknown = sorted(set(map(str, spec)) - _SPEC_FIELDS)
    if unknown:
        raise ConfigError(f"search space key '{key}': unknown field {unknown[0]!r}; use type, low, high, log or choices")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            raise ConfigError(f"search space key '{key}': give either choices or type/low/high, not both")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"search space key '{key}': choices must be a non-empty list of values")
        if len(choices) > MAX_CHOICES:
            raise ConfigError(f"search space key '{key}': {len(choices):,} choices, more than a search can try (at "
                              f"most {MAX_CHOICES:,}); give fewer, or a range {{type: int, low, high}}")
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            raise ConfigError(f"search space key '{key}': choices lists a value twice; give each value once")
        return Param(key, "choices", choices=tuple(choices))
    kind = spec.get("type")
    if kind not in ("float", "int"):
        raise ConfigError(f"search space key '{key}': unknown type {kind!r}; use type: float or type: int "
                          "(or choices: [...])")
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"search space key '{key}': type: {kind} needs low and high")
    low, high = _number(key, "low", spec["low"]), _number(key, "high", spec["high"])
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"search space key '{key}': log must be true or false, got {log!r}")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise ConfigError(f"search space key '{key}': an int range needs whole numbers, got low={low}, high={high}")
    if low >= high:
        raise ConfigError(f"search space key '{key}': low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"search space key '{key}': log: true needs low > 0, got low={low}")
    return Param(key, kind, float(low) if kind == "float" else int(low), float(high) if kind == "float" else int(high),
                 log)


def parse_space(mapping: Any) -> dict[str, Param]:
    """A search space from {dotted key: {type, low, high, log} | {choices: [...]}}; ConfigError when malformed."""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"a search space must be a mapping of config keys to ranges or choices, "
                          f"got {type(mapping).__name__}")
    if not mapping:
        raise ConfigError("the search space is empty; give at least one config key to search")
    return {key: _parse_param(_check_space_key(key), spec) for key, spec in mapping.items()}


def read_space(path: str | Path) -> dict[str, Param]:
    """A search space from a YAML file (see `parse_space`), refused unread when larger than MAX_SPACE_BYTES."""
    try:
        size = Path(path).stat().st_size if Path(path).is_file() else 0
    except OSError:
        size = 0  # read_yaml names the problem
    if size > MAX_SPACE_BYTES:
        raise ConfigError(f"search space file {str(path)!r} is {size:,} bytes, more than a search space needs (at "
                          f"most {MAX_SPACE_BYTES:,}); give ranges instead of long choice lists")
    return parse_space(read_yaml(path))


_COMMON_SPACE: dict[str, Any] = {
    "loss.kind": {"choices": ["nonsaturating", "hinge", "wasserstein", "lsgan", "relativistic"]},
    "model.d_norm": {"choices": ["none", "spectral", "layer"]},
    "model.g_norm": {"choices": ["none", "batch", "layer"]},
    "optim.g_lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "optim.d_lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "optim.g_betas": {"choices": [[0.0, 0.9], [0.5, 0.999]]},
    "optim.d_betas": {"choices": [[0.0, 0.9], [0.5, 0.999]]},
    "train.n_critic": {"type": "int", "low": 1, "high": 5},
    "loss.real_label": {"choices": [1.0, 0.9]},  # one-sided smoothing only (Salimans et al. 2016)
    "penalty.gp": {"choices": [0.0, 1.0, 10.0]},
    "penalty.r1": {"choices": [0.0, 0.1, 1.0, 10.0]},
    "penalty.r2": {"choices": [0.0, 0.1, 1.0, 10.0]},  # R1 on fakes (R3GAN pairs it with the relativistic loss)
    "train.ema": {"choices": [0.0, 10000.0]},
}
_AUGMENT = {"augment.policy": {"choices": ["", "translation", "color,translation,cutout"]},
            "penalty.lecam": {"choices": [0.0, 0.3]}}  # LeCam (Tseng et al. 2021), for a D that overfits few images
# images: the networks too, since under a wall-clock budget small fully connected nets can beat convolutional ones
_NETWORKS = {"model.arch": {"choices": ["mlp", "dcgan"]}}
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "points": {**_COMMON_SPACE, "train.batch_size": {"choices": [64, 128, 256]}},
    "small_images": {**_NETWORKS, **_COMMON_SPACE, "train.batch_size": {"choices": [32, 64, 128]}, **_AUGMENT},
    "large_images": {**_NETWORKS, **_COMMON_SPACE, "train.batch_size": {"choices": [16, 32, 64]}, **_AUGMENT},
}


def _shape(data: dict) -> tuple[int, ...]:
    cfg = validate(data)
    shape = dataset_shape(cfg.data)
    return tuple(shape) if shape is not None else tuple(make_dataset(cfg.data, cfg.seed).shape)


def data_kind(base: dict) -> str:
    """'points', 'small_images' (side <= 32) or 'large_images': which default space fits the base config."""
    shape = _shape(base)
    if len(shape) != 3:
        return "points"
    return "small_images" if max(shape[1:]) <= 32 else "large_images"


def default_space(kind: str) -> dict[str, Param]:
    """The default search space of a data kind (see DEFAULT_SPACES)."""
    if kind not in DEFAULT_SPACES:
        raise ConfigError(f"unknown --data-kind {kind!r}; use one of {', '.join(DEFAULT_SPACES)}")
    return parse_space(DEFAULT_SPACES[kind])


def objective_metric(base: dict) -> tuple[str, bool]:
    """(main metric, higher is better) of the base config's data, as the run evaluator scores it."""
    cfg = validate(base)
    if len(_shape(base)) == 3:
        return main_metric("image")
    source = make_dataset(cfg.data, cfg.seed)
    return main_metric("modes" if source.centers is not None else "points")


# metrics a study may optimise or constrain: every registered metric with a direction, not the evaluation's own time
OBJECTIVES: tuple[str, ...] = tuple(name for name in METRICS if name != "time")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def parse_objective(name: str) -> tuple[str, bool]:
    """(metric, higher is better) of an --objective name (with or without `eval_`); ConfigError when unknown."""
    plain = plain_name(str(name).strip())
    if plain not in OBJECTIVES:
        raise ConfigError(f"--objective {name!r} is not a metric with a direction; use one of: {', '.join(OBJECTIVES)}")
    return plain, higher_is_better(plain)


@dataclass(frozen=True)
class Constraint:
    """A floor (>=) or ceiling (<=) on a metric of a trial's final evaluation; a trial outside it is infeasible."""

    metric: str
    op: str  # >= | <=
    bound: float

    @property
    def text(self) -> str:
        """The constraint as the user writes it: 'recall>=0.3'."""
        return f"{self.metric}{self.op}{self.bound:g}"

    def violation(self, value: Optional[float]) -> float:
        """How far a value lies outside the constraint (<= 0: met; inf: the metric was not logged)."""
        if value is None or not math.isfinite(value):
            return math.inf
        return self.bound - value if self.op == ">=" else value - self.bound


def parse_constraint(text: str) -> Constraint:
    """A --constraint 'METRIC>=NUMBER' or 'METRIC<=NUMBER'; ConfigError (one line) when malformed or unknown."""
    match = _CONSTRAINT.match(str(text))
    if match is None:
        raise ConfigError(f"--constraint {text!r} is not METRIC>=NUMBER or METRIC<=NUMBER; write e.g. "
                          "--constraint 'recall>=0.3'")
    name, op, bound = match.groups()
    plain = plain_name(name)
    if plain not in OBJECTIVES:
        raise ConfigError(f"--constraint {text!r}: {name!r} is not a metric with a direction; use one of: "
                          f"{', '.join(OBJECTIVES)}")
    return Constraint(plain, op, float(bound))


# what the run evaluator logs for 2-D data (metrics.run_eval): mixtures with known modes, other point sets
POINT_METRICS: dict[str, tuple[str, ...]] = {"modes": ("modes", "hq_fraction", "reverse_kl", "diversity"),
                                             "points": ("fd", "precision", "recall", "density", "coverage", "diversity")}


def logged_metrics(base: dict) -> Optional[tuple[str, ...]]:
    """The metrics a trial of 2-D data logs (None for images: those depend on the evaluator and the labels)."""
    if len(_shape(base)) == 3:
        return None
    cfg = validate(base)
    return POINT_METRICS["modes" if make_dataset(cfg.data, cfg.seed).centers is not None else "points"]


def check_metrics(settings: TuneSettings) -> None:
    """Refuse, before the first trial, an objective or constraint on a metric that this 2-D data never logs."""
    logged = logged_metrics(settings.base)
    if logged is None:
        return
    fix = f"this data logs {', '.join(logged)}"
    if settings.metric not in logged:
        raise ConfigError(f"--objective {settings.metric!r} is never logged for this data; {fix}")
    for constraint in settings.constraints:
        if constraint.metric not in logged:
            raise ConfigError(f"--constraint {constraint.text!r}: {constraint.metric!r} is never logged for this "
                              f"data; {fix}")


def constraints_text(constraints: Sequence[Constraint]) -> str:
    """'recall>=0.3, coverage>=0.5' (or 'none')."""
    return ", ".join(c.text for c in constraints) or "none"


# ------------------------------------------------------------------------------------------ trials
@dataclass
class TuneSettings:
    """Everything a worker needs: the base config, the space, the budget, the storage and the seeds."""

    out: Path
    base: dict
    space: dict[str, Param]
    storage: str
    trials: Optional[int] = None
    time_budget: Optional[float] = None
    steps: Optional[int] = None
    trial_seconds: Optional[float] = None
    seed: int = 0
    top: int = 3
    rerun_seeds: int = 3
    rerun_steps: Optional[int] = None
    rerun_seconds: Optional[float] = None
    workers: int = 1
    metric: str = "fd"
    higher: bool = False
    constraints: tuple[Constraint, ...] = ()


def budget_overrides(settings: TuneSettings) -> dict:
    """The budget every trial shares: G steps (eval.every = steps / 5) or seconds (eval.every = auto)."""
    if settings.trial_seconds is not None:
        return {"train": {"steps": TIME_BUDGET_STEPS, "time_budget": float(settings.trial_seconds)},
                "eval": {"every": "auto"}}
    steps = settings.steps if settings.steps is not None else validate(settings.base).train.steps
    every = max(1, steps // EVALUATIONS_PER_TRIAL)
    log_every = min(validate(settings.base).log.every, every)
    return {"train": {"steps": steps, "time_budget": 0.0}, "eval": {"every": every, "final": True},
            "log": {"every": log_every}}


def rerun_budget_overrides(settings: TuneSettings) -> dict:
    """The budget of the re-runs and of best.yaml: --rerun-steps or --rerun-seconds when given (so the finalists
    are compared at the budget the winner will be trained for), else the trials' own."""
    if settings.rerun_steps is None and settings.rerun_seconds is None:
        return budget_overrides(settings)
    return budget_overrides(replace(settings, steps=settings.rerun_steps, trial_seconds=settings.rerun_seconds))


def trial_data(settings: TuneSettings, params: Mapping[str, Any], seed: int, out: Optional[Path],
               budget: Optional[dict] = None) -> dict:
    """The nested config of a trial: base <- budget (the trials' unless given) <- params, with its seed (and
    folder when given)."""
    data = deep_merge(settings.base, budget_overrides(settings) if budget is None else budget)
    for key, value in params.items():
        data = deep_merge(data, nest(key, value))
    data = deep_merge(data, {"seed": seed})
    if out is not None:
        data = deep_merge(data, {"out": str(out), "log": {"progress": False}})
        if settings.workers > 1:
            data = deep_merge(data, {"train": {"threads": 1}})
    return data


def search_lines(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The metrics lines a search may read: not those scored on the test split (`eval_split` "test"); lines without
    the key (older runs) count as validation."""
    return [r for r in records if not is_test_record(r)]


def _last_line(run: Path, name: str) -> Optional[Mapping[str, Any]]:
    """The newest search line of a run's metrics.jsonl with a finite `name`."""
    for record in reversed(search_lines(read_jsonl(RunDir(run).metrics))):
        if as_number(record.get(name)) is not None and isinstance(record.get("step"), int):
            return record
    return None


def _last_eval(run: Path, name: str) -> Optional[tuple[int, float]]:
    """(step, value) of the newest evaluation line of `name` in a run's metrics.jsonl (search lines only)."""
    record = _last_line(run, name)
    return None if record is None else (int(record["step"]), float(record[name]))


def final_scores(run: Path, metric: str) -> dict[str, float]:
    """Every evaluation metric (plain names) of the newest search line that scores `metric`; {} when none does."""
    record = _last_line(run, EVAL_PREFIX + metric)
    if record is None:
        return {}
    return {plain_name(k): float(v) for k, v in record.items() if is_metric_key(k) and as_number(v) is not None}


class PruneHook:
    """The after_step hook of a trial: report new evaluations to Optuna, prune on its word or on a doctor
    error over training lines (divergence, dead D, ...)."""

    def __init__(self, trial: Any, run: Path, metric: str) -> None:
        self.trial, self.run, self.metric = trial, run, EVAL_PREFIX + metric
        self.eval_seconds = 0.0
        self.findings_seen = 0
        self.reported_step: Optional[int] = None

    def __call__(self, trainer: Any) -> None:
        """Called after every training step (before that step's evaluation)."""
        findings = RunDir(self.run).findings
        if findings.is_file() and findings.stat().st_size != self.findings_seen:
            self.findings_seen = findings.stat().st_size
            errors = [f for f in read_jsonl(findings) if f.get("severity") == "error"
                      and not str(f.get("code", "")).startswith(EVAL_FINDING_CODES)]
            if errors:
                self.trial.set_user_attr("pruned_by", f"doctor: {errors[0].get('code')} at step {trainer.step}")
                raise optuna.TrialPruned(f"doctor error {errors[0].get('code')}")
        if trainer.eval_seconds == self.eval_seconds:
            return
        self.eval_seconds = trainer.eval_seconds
        last = _last_eval(self.run, self.metric)
        if last is None or last[0] == self.reported_step:
            return  # none yet, or a quick evaluation (no main metric) since the last report
        self.reported_step = last[0]
        self.trial.report(last[1], last[0])
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_by", f"pruner at step {last[0]} ({self.metric}={last[1]:.4g})")
            raise optuna.TrialPruned(f"pruned at step {last[0]}")


def _quiet_log(run: Path) -> Callable[[str], None]:
    def echo(message: str) -> None:
        with open(RunDir(run).train_log, "a", encoding="utf-8") as log:
            log.write(message + "\n")
    return echo


def objective(trial: Any, settings: TuneSettings) -> float:
    """Train one trial into OUT/trials/<number>/ and return its final main metric."""
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("host", socket.gethostname())
    params = {key: param.suggest(trial) for key, param in settings.space.items()}
    run = settings.out / TRIALS_DIR / str(trial.number)
    trial.set_user_attr("run", str(run))
    try:
        cfg = validate(trial_data(settings, params, settings.seed, run))
        check_config(cfg)
    except ConfigError as exc:
        trial.set_user_attr("config_error", str(exc))
        raise optuna.TrialPruned(f"config refused: {exc}") from None
    run.mkdir(parents=True, exist_ok=True)
    try:
        train(cfg, overwrite=True, echo=_quiet_log(run),
              hooks={"after_step": PruneHook(trial, run, settings.metric)})
    except TrainingDiverged as exc:
        trial.set_user_attr("pruned_by", f"diverged: {str(exc).splitlines()[0]}")
        raise optuna.TrialPruned("diverged") from None
    scores = final_scores(run, settings.metric)
    if not scores:
        raise GanstabError(f"trial {trial.number} logged no {settings.metric}; see {RunDir(run).train_log}")
    _judge(trial, settings.constraints, scores)
    return scores[settings.metric]


def _judge(trial: Any, constraints: Sequence[Constraint], scores: Mapping[str, float]) -> None:
    """Record whether a trial's final scores meet the constraints (user attrs `feasible`, `infeasible`), and tell
    Optuna the violations where it takes them (Trial.set_constraint, Optuna >= 5: TPE and best_trial honour them)."""
    trial.set_user_attr("scores", dict(scores))
    if not constraints:
        return
    broken = []
    for constraint in constraints:
        gap = constraint.violation(scores.get(constraint.metric))
        if hasattr(trial, "set_constraint"):
            trial.set_constraint(constraint.text, gap if math.isfinite(gap) else 1e300)
        if gap > 0:
            value = scores.get(constraint.metric)
            broken.append(f"{constraint.metric}={value:.4g} breaks {constraint.text}" if value is not None
                          else f"{constraint.metric} not logged for {constraint.text}")
    trial.set_user_attr("feasible", not broken)
    if broken:
        trial.set_user_attr("infeasible", "infeasible: " + "; ".join(broken))


def _run_objective(trial: Any, settings: TuneSettings) -> float:
    """`objective`, keeping any other failure's first line as the trial's `error` user attr (state FAIL)."""
    try:
        return objective(trial, settings)
    except optuna.TrialPruned:
        raise
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        trial.set_user_attr("error", f"{type(exc).__name__}: {text}")
        raise


# ------------------------------------------------------------------------------------------ study
_BaseSampler: Any = optuna.samplers.BaseSampler if optuna is not None else object


class TrialSeededTPE(_BaseSampler):
    """Optuna's TPE, its random state seeded per trial by (seed, trial number).

    Every worker process draws the same values for a given trial number and history, so the same
    --seed gives the same first trials, and workers sharing a study never draw the same start.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._number = -1
        self._tpe: Any = None

    def tpe(self, number: int) -> Any:
        """The TPE sampler of one trial number."""
        if number != self._number:
            self._number = number
            self._tpe = optuna.samplers.TPESampler(seed=(self.seed * 1_000_003 + number) % 2 ** 32)
        return self._tpe

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict:
        """TPE's relative search space."""
        return self.tpe(trial.number).infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict) -> dict:
        """TPE's relative sample."""
        return self.tpe(trial.number).sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        """TPE's independent sample."""
        return self.tpe(trial.number).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        """TPE's hook before a trial."""
        self.tpe(trial.number).before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Optional[Sequence[float]]) -> None:
        """TPE's hook after a trial."""
        self.tpe(trial.number).after_trial(study, trial, state, values)


def _in_memory(url: str) -> bool:
    """Whether an SQLite URL names an in-memory database (gone when its connection closes)."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("sqlite"):
        return False
    path = rest[1:] if rest.startswith("/") else rest
    return not path.split("?")[0] or ":memory:" in path or "mode=memory" in rest


def make_storage(url: str) -> Any:
    """An Optuna storage from 'journal:PATH' (journal file) or an RDB URL (sqlite:///..., postgresql://...)."""
    require_optuna()
    if _in_memory(url):
        raise ConfigError(f"--storage {url!r} is an in-memory database, which cannot hold a study across the "
                          "processes and connections of a search (workers, re-runs, resume); use sqlite:///FILE")
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        if not path:
            raise ConfigError("--storage journal: needs a file path, e.g. --storage journal:/shared/study.log")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    if "://" not in url:
        raise ConfigError(f"--storage {url!r} is neither an Optuna RDB URL (sqlite:///FILE, postgresql://USER@HOST/DB)"
                          " nor journal:PATH")
    try:
        if url.startswith("sqlite"):
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeats are marked experimental
            return optuna.storages.RDBStorage(postgres_driver(url), heartbeat_interval=30, grace_period=120)
    except Exception as exc:  # sqlalchemy/driver errors: one line with the fix
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot open --storage {url!r}: {first}; check the URL, the server and its driver") from None


def postgres_driver(url: str) -> str:
    """A postgresql:// URL with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg (3); with only
    psycopg2 (the `dev` extra's psycopg2-binary) installed, ask for it by name."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return url


def _fingerprint(settings: TuneSettings) -> str:
    """A hash of what makes trials comparable: base config, space, budget, objective and constraints."""
    space = {k: [p.kind, p.low, p.high, p.log, list(p.choices)] for k, p in sorted(settings.space.items())}
    parts = [settings.base, space, budget_overrides(settings), settings.metric, settings.seed]
    if settings.constraints:  # studies without constraints keep the fingerprint they had before constraints existed
        parts.append([c.text for c in settings.constraints])
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def open_study(settings: TuneSettings) -> Any:
    """Create or load the study (TPE seeded by --seed, successive halving); refuse one of another base or space."""
    require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY_NAME, storage=make_storage(settings.storage),
                                sampler=TrialSeededTPE(settings.seed),
                                pruner=optuna.pruners.SuccessiveHalvingPruner(),
                                direction="maximize" if settings.higher else "minimize", load_if_exists=True)
    mine = _fingerprint(settings)
    theirs = study.user_attrs.get("fingerprint")
    if theirs is None:
        study.set_user_attr("fingerprint", mine)
    elif theirs != mine:
        raise ConfigError(f"the study in {settings.storage} was started with another base config, space, budget, "
                          "seed, objective or constraints; rerun that exact command to resume it, or choose another --out/--storage")
    return study


def mark_dead_trials(study: Any, echo: Callable[[str], None] = print) -> list[int]:
    """Mark RUNNING trials whose worker (pid on this host) is gone as FAIL; their numbers."""
    host, marked = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") == host and isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            marked.append(trial.number)
            echo(f"trial {trial.number}: its worker (pid {pid}) is gone; marked FAIL")
    return marked


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def _progress(settings: TuneSettings, echo: Callable[[str], None]) -> Callable[[Any, Any], None]:
    def report(study: Any, trial: Any) -> None:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        value = f" {settings.metric}={trial.value:.4g}" if trial.value is not None else ""
        note = (trial.user_attrs.get("pruned_by") or trial.user_attrs.get("config_error") or trial.user_attrs.get("error")
                or trial.user_attrs.get("infeasible"))
        ranked = _ranked_trials(settings, study)
        best = f"; best {ranked[0].value:.4g} (trial {ranked[0].number})" if ranked else ""
        echo(f"trial {trial.number} {trial.state.name.lower()}{value} in {seconds:.1f} s"
             f"{f' ({note})' if note else ''}{best}")
    return report


def run_worker(settings: TuneSettings, echo: Callable[[str], None] = print) -> None:
    """Run trials until the study holds --trials finished or running ones, or --time-budget has passed."""
    study = open_study(settings)
    mark_dead_trials(study, echo)
    deadline = time.time() + settings.time_budget if settings.time_budget else None
    failed_in_a_row = 0
    while failed_in_a_row < 3 and (deadline is None or time.time() < deadline):
        counts = _counts(study)
        if settings.trials is not None and (counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
                                            + counts.get("RUNNING", 0)) >= settings.trials:
            return
        states: list[Any] = []
        study.optimize(lambda trial: _run_objective(trial, settings), n_trials=1, catch=(Exception,),
                       callbacks=[_progress(settings, echo), lambda _study, trial: states.append(trial.state)])
        failed_in_a_row = failed_in_a_row + 1 if states and states[-1] == TrialState.FAIL else 0
    if failed_in_a_row >= 3:
        echo("three trials in a row failed; stopping this worker (see the trials' train.log)")


def _worker_main(settings: TuneSettings) -> None:
    """Entry point of a spawned worker process."""
    run_worker(settings, echo=lambda message: print(message, flush=True))


# ------------------------------------------------------------------------------------------ results
@dataclass
class TuneResult:
    """What `run_tune` wrote: trial rows, re-run rows (ranked), best.yaml, report and the re-run table text."""

    out: Path
    trials: list[dict[str, Any]] = field(default_factory=list)
    rerun: list[dict[str, Any]] = field(default_factory=list)
    best: Optional[Path] = None
    report: Optional[Path] = None
    table: str = ""


def _feasible(trial: Any) -> bool:
    """Whether a trial met the constraints (trials of studies without constraints always do)."""
    return trial.user_attrs.get("feasible", True) is not False


def _scores(trial: Any, metric: str) -> dict[str, float]:
    """A trial's evaluation scores: the final ones it recorded, else (pruned, failed) its run's newest search line."""
    recorded = trial.user_attrs.get("scores")
    if isinstance(recorded, dict):
        return {k: float(v) for k, v in recorded.items() if as_number(v) is not None}
    run = trial.user_attrs.get("run")
    return final_scores(Path(run), metric) if run and Path(run).is_dir() else {}


def trial_rows(study: Any, space: Optional[Mapping[str, Param]] = None, metric: str = "fd") -> list[dict[str, Any]]:
    """One row per trial: number, state, value, params (as config values), duration (s), run folder, note, its
    evaluation scores and whether it is feasible (None unless COMPLETE)."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        note = attrs.get("config_error") or attrs.get("pruned_by") or attrs.get("error") or attrs.get("infeasible") or ""
        params = decoded_params(space or {}, trial)
        rows.append({"number": trial.number, "state": trial.state.name, "value": trial.value,
                     "params": params, "duration": trial.duration.total_seconds() if trial.duration else None,
                     "run": attrs.get("run", ""), "note": note, "scores": _scores(trial, metric),
                     "feasible": _feasible(trial) if trial.state.name == "COMPLETE" else None})
    return rows


def _constrained(settings: Optional[TuneSettings]) -> list[str]:
    """The constrained metrics other than the objective, each once."""
    if settings is None:
        return []
    names: list[str] = []
    for constraint in settings.constraints:
        if constraint.metric != settings.metric and constraint.metric not in names:
            names.append(constraint.metric)
    return names


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _flag(value: Optional[bool]) -> str:
    return "" if value is None else str(bool(value)).lower()


def write_trials_csv(out: Path, rows: Sequence[Mapping[str, Any]], settings: Optional[TuneSettings] = None) -> Path:
    """OUT/trials.csv: number, state, value (of the objective), objective (its name), one column per constrained
    metric, feasible (true/false; empty unless COMPLETE), params (JSON), duration_s, run, note."""
    extra = _constrained(settings)
    header = ["number", "state", "value", "objective", *extra, "feasible", "params", "duration_s", "run", "note"]
    objective_name = settings.metric if settings is not None else ""
    return atomic_write(out / TRIALS_CSV, csv_text(header, (
        [row["number"], row["state"], _cell(row["value"]), objective_name,
         *[_cell(row.get("scores", {}).get(name)) for name in extra], _flag(row.get("feasible")),
         json.dumps(row["params"], sort_keys=True), "" if row["duration"] is None else round(row["duration"], 3),
         row["run"], row["note"]] for row in rows)))


def decoded_params(space: Mapping[str, Param], trial: Any) -> dict[str, Any]:
    """A trial's params as config values (choices decoded)."""
    return {k: space[k].decode(v) if k in space else v for k, v in trial.params.items()}


def _ranked_trials(settings: TuneSettings, study: Any) -> list[Any]:
    """The completed feasible trials, best objective first (an infeasible trial is never ranked)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and _feasible(t)]
    return sorted(done, key=lambda t: (-t.value if settings.higher else t.value, t.number))


def _top_trials(settings: TuneSettings, study: Any) -> list[Any]:
    return _ranked_trials(settings, study)[:settings.top]


def rerun_top(settings: TuneSettings, study: Any, echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Re-train the top completed trials with fresh seeds (OUT/rerun/, an ablation); rows ranked by mean."""
    top = _top_trials(settings, study)
    if not top or settings.rerun_seeds < 1:
        return []
    variants = []
    for trial in top:
        params = decoded_params(settings.space, trial)
        overrides: dict = {}
        for key, value in params.items():
            overrides = deep_merge(overrides, nest(key, value))
        variants.append(Variant(f"trial{trial.number}", overrides, [f"{k}={json.dumps(v)}" for k, v in params.items()]))
    base = deep_merge(deep_merge(settings.base, rerun_budget_overrides(settings)), {"log": {"progress": False}})
    seeds = [settings.seed + RERUN_SEED_OFFSET + i for i in range(settings.rerun_seeds)]
    echo(f"re-running the top {len(top)} configurations with seeds {', '.join(map(str, seeds))}")
    result = _rerun_when_free(settings.out / RERUN_DIR, base, variants, seeds, settings.workers, echo)
    validation = {v["name"]: v["validation"] for v in result.summary["variants"]}  # it chooses: never the test line
    rows = []
    for t in top:
        stats = validation.get(f"trial{t.number}", {})
        mean = stats.get(EVAL_PREFIX + settings.metric, {})
        means = {c.metric: stats.get(EVAL_PREFIX + c.metric, {}).get("mean") for c in settings.constraints}
        rows.append({"trial": t.number, "search_value": t.value, "params": decoded_params(settings.space, t),
                     **{k: mean.get(k) for k in ("mean", "se", "n")}, "means": means,
                     "feasible": all(c.violation(means[c.metric]) <= 0 for c in settings.constraints)})
    return order_by_ranking(rows, result.summary["ranking"], settings.higher)


RERUN_POLL_SECONDS = 2.0  # how often a command sharing OUT looks whether the other one's re-runs are done


def _rerun_when_free(out: Path, base: dict, variants: Sequence[Variant], seeds: Sequence[int], workers: int,
                     echo: Callable[[str], None]) -> Any:
    """`run_ablation` of the re-runs; while another command sharing OUT holds OUT/rerun, wait for it, then
    summarise (its finished runs are skipped, so the work is shared, never done twice or reported as failed)."""
    waiting = False
    while True:
        try:
            return run_ablation(out, base, variants, seeds, jobs=workers, echo=echo)
        except RunInUse as exc:
            if not waiting:
                echo(f"waiting: {str(exc).split(';')[0]} (another tune command on this folder re-runs the top trials)")
                waiting = True
            time.sleep(RERUN_POLL_SECONDS)


def order_by_ranking(rows: list[dict[str, Any]], ranking: list[str], higher: Optional[bool] = None
                     ) -> list[dict[str, Any]]:
    """Rows of the re-run trials ranked: those whose means meet the constraints first, then by the objective's
    mean (`higher`: its direction; None: the summary's order alone), ties as the ablation summary ranks the
    variants ('trial<n>': the main metric's mean, then the registry's tie-breaker, hq_fraction for modes)."""
    position = {name: i for i, name in enumerate(ranking)}

    def objective(row: Mapping[str, Any]) -> tuple:
        mean = row.get("mean")
        if higher is None:
            return ()
        return (mean is None, 0.0 if mean is None else (-mean if higher else mean))

    ordered = sorted(rows, key=lambda r: (r.get("feasible", True) is False, *objective(r),
                                          position.get(f"trial{r['trial']}", len(position)), r["trial"]))
    for rank, row in enumerate(ordered, start=1):
        row["rank"] = rank
    return ordered


def write_rerun_csv(out: Path, rows: Sequence[Mapping[str, Any]], settings: Optional[TuneSettings] = None) -> Path:
    """OUT/rerun.csv: rank, trial, search value, objective (its name), mean, s.e., seeds, the mean of each
    constrained metric (`<metric>_mean`), feasible (the means meet the constraints), params (JSON)."""
    extra = _constrained(settings)
    header = ["rank", "trial", "search_value", "objective", "mean", "se", "n", *[f"{m}_mean" for m in extra],
              "feasible", "params"]
    return atomic_write(out / RERUN_CSV, csv_text(header, (
        [r["rank"], r["trial"], r["search_value"], settings.metric if settings is not None else "", _cell(r["mean"]),
         _cell(r["se"]), r["n"], *[_cell(r.get("means", {}).get(m)) for m in extra], _flag(r.get("feasible", True)),
         json.dumps(r["params"], sort_keys=True)] for r in rows)))


def markdown_table(rows: Sequence[Mapping[str, Any]], metric: str) -> str:
    """The re-run ranking as a markdown table."""
    def num(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    judged = any(r.get("means") for r in rows)  # a study with constraints: say which means meet them
    head = " meets constraints |" if judged else ""
    lines = [f"| rank | trial | search {metric} | mean {metric} | s.e. | seeds |{head} params |",
             "|---|---|---|---|---|---|" + ("---|" if judged else "") + "---|"]
    lines += [f"| {r['rank']} | {r['trial']} | {num(r['search_value'])} | {num(r['mean'])} | {num(r['se'])} | {r['n']} "
              + (f"| {'yes' if r.get('feasible', True) else 'no'} " if judged else "")
              + f"| {json.dumps(r['params'], sort_keys=True)} |" for r in rows]
    return "\n".join(lines)


def write_best(settings: TuneSettings, params: Mapping[str, Any], note: str = "") -> Path:
    """OUT/best.yaml: the complete config of the winner (base <- budget <- params), without out and seed; a header
    comment names the objective and the constraints (and `note`, when given)."""
    data = to_dict(validate(trial_data(settings, params, settings.seed, None, rerun_budget_overrides(settings))))
    data.pop("out", None)
    data.pop("seed", None)
    header = (f"# ganstab tune winner: objective {settings.metric} ({'max' if settings.higher else 'min'}), "
              f"constraints: {constraints_text(settings.constraints)}\n")
    if note:
        header += f"# {note}\n"
    return atomic_write(settings.out / BEST_CONFIG, header + yaml.safe_dump(data, sort_keys=False))


def _importances(study: Any) -> tuple[Optional[dict[str, float]], str]:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2:
        return None, f"Parameter importances need at least 2 completed trials; this study has {len(done)}."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # equal importances when every trial scored alike
            return dict(optuna.importance.get_param_importances(study)), ""
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return None, f"Parameter importances could not be computed: {str(exc).splitlines()[0] if str(exc) else exc}"


def finish_study(settings: TuneSettings, study: Any, echo: Callable[[str], None] = print) -> TuneResult:
    """After the search: trials.csv, re-runs of the top trials, rerun.csv, best.yaml and report.html."""
    result = TuneResult(settings.out, trials=trial_rows(study, settings.space, settings.metric))
    write_trials_csv(settings.out, result.trials, settings)
    top = _top_trials(settings, study)
    if settings.constraints and not top:
        echo(f"no completed trial meets the constraints ({constraints_text(settings.constraints)}); "
             "no best.yaml written")
    result.rerun = rerun_top(settings, study, echo)
    note = ""
    if result.rerun:
        write_rerun_csv(settings.out, result.rerun, settings)
        result.table = markdown_table(result.rerun, settings.metric)
        winner = next(t for t in top if t.number == result.rerun[0]["trial"])
        if not result.rerun[0].get("feasible", True):
            note = (f"no re-run configuration meets the constraints ({constraints_text(settings.constraints)}) on its "
                    f"mean over the fresh seeds; best.yaml holds the best of them by {settings.metric}, trial "
                    f"{winner.number}, which met them in the search")
            echo(note)
    else:
        winner = top[0] if top else None
    if winner is not None:
        result.best = write_best(settings, decoded_params(settings.space, winner), note)
    importances, importance_note = _importances(study)
    view = TuneView(settings.out, settings.metric, settings.higher, result.trials, importances, importance_note,
                    [(f"trial {t.number}", Path(t.user_attrs["run"])) for t in top if t.user_attrs.get("run")],
                    result.rerun, f"trial {winner.number}" if winner is not None else None,
                    [c.text for c in settings.constraints], winner.number if winner is not None else None)
    result.report = write_tune_report(view)
    return result


def _values(param: Param) -> tuple:
    """The values of a searched key that every trial can meet: its choices, or the ends of its range."""
    return param.choices if param.kind == "choices" else (param.low, param.high)


def _refusal(settings: TuneSettings, params: Mapping[str, Any]) -> Optional[str]:
    """Why the config of a trial with these params is refused (None when it is accepted)."""
    try:
        check_config(validate(trial_data(settings, params, settings.seed, None)))
    except ConfigError as exc:
        return str(exc)
    return None


def check_space(settings: TuneSettings) -> None:
    """Refuse, before the first trial, a choice (or range end) that the config rules refuse with the base config and
    with every single other searched value beside it; one a search can never use."""
    for key, param in settings.space.items():
        for value in _values(param):
            problem = _refusal(settings, {key: value})
            if problem is None or any(_refusal(settings, {key: value, other: alt}) is None
                                      for other, beside in settings.space.items() if other != key
                                      for alt in _values(beside)):
                continue
            what = "the choice" if param.kind == "choices" else ("low" if value == param.low else "high")
            raise ConfigError(f"search space key '{key}': {what} {json.dumps(value)} is refused ({problem}); "
                              "remove or fix it")


def run_tune(settings: TuneSettings, echo: Callable[[str], None] = print) -> TuneResult:
    """Search (in this process, or --workers spawned processes), then re-run the top trials and write the outputs.

    Everything is checked before the first trial (the space's values, the storage). Several commands may share
    OUT and its study: trials get distinct numbers, and the re-runs (an ablation, locked) are done by one at a time."""
    require_optuna()
    if settings.trials is None and settings.time_budget is None:
        raise ConfigError("give --trials N or --time-budget SECONDS to say when the search ends")
    check_metrics(settings)
    check_space(settings)
    if _in_memory(settings.storage):
        make_storage(settings.storage)  # raises: refused before the folder is made
    settings.out.mkdir(parents=True, exist_ok=True)
    study = open_study(settings)  # created once here, before workers race to create it
    echo(f"tune {settings.out}: {len(settings.space)} searched keys, objective {settings.metric} "
         f"({'max' if settings.higher else 'min'}), constraints {constraints_text(settings.constraints)}, storage {settings.storage}, {settings.workers} worker(s)")
    if settings.workers == 1:
        run_worker(settings, echo)
    else:
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=_worker_main, args=(settings,)) for _ in range(settings.workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
    return finish_study(settings, study, echo)


def default_storage(out: Path) -> str:
    """The SQLite URL of OUT/study.db."""
    return f"sqlite:///{(Path(out) / STUDY_DB).resolve()}"
