"""One table of every evaluation metric: its name, which direction is better and what it measures.

The main metric of a run is chosen here and nowhere else: the Frechet distance (`fd`, lower is
better) for images and for 2-D points without known modes, the number of captured modes
(`modes`, higher is better, ties broken by `hq_fraction`) for the 2-D mixtures. The loop keeps
its best export, the doctor's stall detector, ablation rankings and reports all ask this table.
Metrics are logged with an `eval_` prefix; the helpers accept either spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

__all__ = ["Metric", "METRICS", "MAIN_METRIC", "EVAL_PREFIX", "plain_name", "higher_is_better",
           "main_metric", "main_metric_of", "ranking_keys", "is_better"]

EVAL_PREFIX = "eval_"


@dataclass(frozen=True)
class Metric:
    """A metric's direction and a one-line description."""

    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {
    "fd": Metric(False, "Frechet distance between evaluator features of real and generated samples"),
    "kid": Metric(False, "kernel inception distance (unbiased MMD^2, cubic polynomial kernel)"),
    "kid_std": Metric(False, "standard deviation of KID over its subsets"),
    "precision": Metric(True, "improved precision (Kynkaanniemi et al. 2019, k=3): fakes on the real manifold"),
    "recall": Metric(True, "improved recall (k=3): reals on the generated manifold"),
    "density": Metric(True, "density (Naeem et al. 2020, k=5)"),
    "coverage": Metric(True, "coverage (k=5): real neighbourhoods that hold a fake"),
    "class_kl": Metric(False, "KL of the generated class histogram to the real one (mode collapse)"),
    "is": Metric(True, "classifier-based inception score (eval.features=inception: the Inception Score)"),
    "diversity": Metric(True, "mean pairwise feature distance of the fixed batch over that of real data"),
    "modes": Metric(True, "modes captured (PacGAN protocol): 2-D mixtures, by a high-quality sample; stacked "
                          "images, distinct class triples"),
    "hq_fraction": Metric(True, "fraction of samples within 3 std of their nearest mode"),
    "reverse_kl": Metric(False, "KL(p_model || uniform) of the generated mode histogram"),
    "class_accuracy": Metric(True, "conditional runs: evaluator accuracy of the fakes on their requested labels"),
    "intra_fd": Metric(False, "conditional runs: mean over classes of the FD within each class"),
    "time": Metric(False, "seconds the evaluation took (logged as eval_time; not a quality metric)"),
}

# data kind -> (main metric, tie-breaker or None)
MAIN_METRIC: dict[str, tuple[str, Optional[str]]] = {
    "image": ("fd", None),
    "points": ("fd", None),
    "modes": ("modes", "hq_fraction"),
}


def plain_name(name: str) -> str:
    """'eval_fd' -> 'fd' (names without the prefix are returned as they are)."""
    return name[len(EVAL_PREFIX):] if name.startswith(EVAL_PREFIX) else name


def higher_is_better(name: str) -> bool:
    """The direction of a metric, with or without the `eval_` prefix (unknown metrics: lower is better)."""
    metric = METRICS.get(plain_name(name))
    return bool(metric and metric.higher_is_better)


def main_metric(kind: str) -> tuple[str, bool]:
    """(name, higher_is_better) of the main metric for a data kind: 'image', 'points' or 'modes'."""
    name = MAIN_METRIC[kind][0]
    return name, higher_is_better(name)


def main_metric_of(names: Iterable[str]) -> Optional[str]:
    """The main metric among logged names (with the prefix when they have it): fd, else modes, else None."""
    present = set(names)
    for candidate in ("fd", "modes", "hq_fraction"):
        for spelled in (EVAL_PREFIX + candidate, candidate):
            if spelled in present:
                return spelled
    return None


def ranking_keys(names: Iterable[str]) -> list[tuple[str, str]]:
    """Sort keys ((name, 'lower'|'higher'), ...) for ranking runs by the logged metrics.

    The main metric first, then its tie-breaker when logged; with no evaluation metric at all,
    the doctor's error count (lower is better).
    """
    present = set(names)
    main = main_metric_of(present)
    if main is None:
        return [("findings_error", "lower")]
    prefix = EVAL_PREFIX if main.startswith(EVAL_PREFIX) else ""
    keys = [(main, "higher" if higher_is_better(main) else "lower")]
    for kind_main, tie in MAIN_METRIC.values():
        if tie is not None and prefix + kind_main == main and prefix + tie in present:
            keys.append((prefix + tie, "higher" if higher_is_better(tie) else "lower"))
    return keys


def is_better(new: Mapping[str, float], best: Optional[Mapping[str, float]], kind: str) -> bool:
    """Whether scores `new` beat `best` on the main metric of a data kind (ties broken where defined)."""
    if best is None:
        return True
    name, tie = MAIN_METRIC[kind]
    higher = higher_is_better(name)
    a, b = new.get(name), best.get(name)
    if a is None:
        return False
    if b is None:
        return True
    if a == b and tie is not None:
        return new.get(tie, 0.0) > best.get(tie, 0.0)
    return a > b if higher else a < b
