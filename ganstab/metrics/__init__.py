"""Evaluation: the maths (FD, KID, precision/recall, density/coverage, class KL, IS, 2-D and stacked modes), the
evaluator network, the run evaluator, torch-fidelity's Inception metrics where the user has the weights, and one
registry of metric names, directions and the main metric."""

from ganstab.metrics.evaluator import (
    CLASS_METRICS,
    METRIC_NAMES,
    Evaluator,
    EvaluatorSettings,
    RealReference,
    evaluate_images,
    load_or_train_evaluator,
    prepare_reference,
    tensor_digest,
    train_evaluator,
)
from ganstab.metrics.inception import INCEPTION_ENV, InceptionFeatures, check_inception, inception_scores
from ganstab.metrics.registry import METRICS, higher_is_better, is_better, main_metric, ranking_keys
from ganstab.metrics.run_eval import RunEvaluator, default_cache_dir
from ganstab.metrics.modes import (GRID25_STD, HQ_STDS, RING8_STD, grid25_centers, mode_coverage, ring8_centers,
                                   stacked_modes)
from ganstab.metrics.stacked import StackedEvaluator, channel_class_probs
from ganstab.metrics.stats import (
    class_histogram,
    class_kl,
    density_coverage,
    feature_mean_cov,
    frechet_distance,
    frechet_distance_from_stats,
    inception_score,
    kid,
    manifold_metrics,
    mmd2_unbiased,
    precision_recall,
    sample_spread,
    trace_sqrt_product,
)

__all__ = [
    "INCEPTION_ENV",
    "InceptionFeatures",
    "check_inception",
    "inception_scores",
    "METRICS",
    "higher_is_better",
    "is_better",
    "main_metric",
    "ranking_keys",
    "RunEvaluator",
    "default_cache_dir",
    "CLASS_METRICS",
    "METRIC_NAMES",
    "Evaluator",
    "EvaluatorSettings",
    "RealReference",
    "evaluate_images",
    "load_or_train_evaluator",
    "prepare_reference",
    "tensor_digest",
    "train_evaluator",
    "GRID25_STD",
    "HQ_STDS",
    "RING8_STD",
    "grid25_centers",
    "mode_coverage",
    "ring8_centers",
    "stacked_modes",
    "StackedEvaluator",
    "channel_class_probs",
    "class_histogram",
    "class_kl",
    "density_coverage",
    "feature_mean_cov",
    "frechet_distance",
    "frechet_distance_from_stats",
    "inception_score",
    "kid",
    "manifold_metrics",
    "mmd2_unbiased",
    "precision_recall",
    "sample_spread",
    "trace_sqrt_product",
]
