"""Evaluation of a generator against its dataset: glue between data, sampling and the metric maths.

- 2-D mixtures with known modes (ring8, grid25): the PacGAN protocol (`metrics.mode_coverage`).
- Other point data: Frechet distance, precision/recall and density/coverage on raw coordinates.
- Images: features of an evaluator network trained by ganstab on the real training split and
  cached on disk (`eval.cache_dir`), compared with the real test split.
- Stacked images (stacked-fashion-mnist): the evaluator of the 1-channel data on every channel
  (`metrics.stacked`), plus the modes captured and their reverse KL (`metrics.stacked_modes`).
Every metric is returned under its plain name; the loop logs them with an `eval_` prefix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganstab.config import image_hw
from ganstab.data import DataSource
from ganstab.metrics.evaluator import (evaluate_images, load_or_train_evaluator,
                                      prepare_reference)
from ganstab.metrics.modes import mode_coverage
from ganstab.metrics.registry import is_better, main_metric
from ganstab.metrics.stacked import StackedEvaluator
from ganstab.metrics.stats import density_coverage, frechet_distance, precision_recall
from ganstab.models.progressive import next_pow2
from ganstab.sampling import class_grid, generate

__all__ = ["RunEvaluator", "default_cache_dir", "mean_pairwise_distance",
           "other_real_images", "to_data_size", "REAL_BASELINE_SEED",
           "MIN_REAL_DIVERSITY"]

#: KID (and its std) over this many random subsets of 1,000: its expectation does not depend on the count
#: (each subset's MMD^2 is unbiased), and 20 cost a fifth of the usual 100 (KID was 2/3 of an evaluation's time)
KID_SUBSETS = 20

#: A quick evaluation scores max(QUICK_MIN_SAMPLES, eval.n // QUICK_FRACTION) samples
QUICK_FRACTION, QUICK_MIN_SAMPLES = 10, 250

#: Below this mean pairwise distance the real data have no spread, and `diversity` (a ratio over it) is left out
MIN_REAL_DIVERSITY = 1e-6

#: Seed of the second real sample behind `fd_real` (the evaluator's own real-vs-real FD at the run's eval.n)
REAL_BASELINE_SEED = 20_240


def default_cache_dir() -> Path:
    """Where evaluator networks are cached: $GANSTAB_CACHE or ~/.cache/ganstab."""
    return Path(os.environ.get("GANSTAB_CACHE", Path.home() / ".cache" / "ganstab"))


def mean_pairwise_distance(x: Tensor, max_n: int = 512) -> float:
    """Mean Euclidean distance between distinct pairs of rows (first `max_n` rows)."""
    x = x[:max_n].double().flatten(1)
    n = x.shape[0]
    if n < 2:
        return 0.0
    d = torch.cdist(x, x)
    return float(d.sum() / (n * (n - 1)))


def other_real_images(train: Tensor, n: int, skip: int = 0) -> Optional[Tensor]:
    """Up to n real training images other than the first `skip` (a seeded draw): the real-vs-real FD baseline's
    second sample, None when fewer than 2 are left."""
    pool = train[skip:]
    if len(pool) < 2:
        return None
    rows = torch.randperm(len(pool), generator=torch.Generator().manual_seed(REAL_BASELINE_SEED))[:n]
    return pool[rows.sort().values]


def to_data_size(samples: Tensor, size: int | Sequence[int]) -> Tensor:
    """Bring samples of another size (a progressive run mid-growth) to the data's size, a side N or (H, W), for
    scoring: nearest upsampling to the next power of two of each side, then a central crop."""
    height, width = image_hw(size)
    if samples.dim() != 4 or tuple(samples.shape[-2:]) == (height, width):
        return samples
    target_h, target_w = next_pow2(height), next_pow2(width)
    up = F.interpolate(samples, size=(target_h, target_w), mode="nearest")
    top, left = (target_h - height) // 2, (target_w - width) // 2
    return up[..., top:top + height, left:left + width]


class RunEvaluator:
    """Scores samples of a generator for one dataset; built once per run (evaluator cached on disk)."""

    def __init__(self, data: DataSource, n: int, device: torch.device, cache_dir: Optional[Path] = None,
                 evaluator_epochs: int = 3, echo: Callable[[str], None] = print, num_classes: int = 0,
                 label_probs: Optional[Tensor] = None, evaluator_images: Optional[int] = None) -> None:
        self.data = data
        self.num_classes = num_classes  # > 0: a class-conditional G, scored per requested class too
        self.label_probs = None if label_probs is None else label_probs.detach().float().cpu()
        self.n = n
        self.device = device
        self.evaluator = None
        self.reference = None
        self.kind = "modes" if data.kind == "points" and data.centers is not None else data.kind
        self.main_metric = main_metric(self.kind)
        self.fd_real: Optional[float] = None  # FD of other real data against the reference: FD's floor at this n
        if data.kind == "points":
            self.real = data.eval_reference(n).to(device)
            self.real_diversity = mean_pairwise_distance(self.real)
            if data.centers is None and data.sampler is not None:
                other = data.sampler(n, torch.Generator().manual_seed(REAL_BASELINE_SEED)).to(device)
                self.fd_real = frechet_distance(self.real, other)
            return
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        echo_fn = (lambda m: echo(f"evaluator: {m}"))
        # stacked data: the network of the 1-channel data (the same cache entry), applied to every channel
        source = data.channel_source if data.channel_source is not None else data
        train, labels, test, test_labels = source.evaluator_data()
        self.evaluator = load_or_train_evaluator(
            cache, source.name, train, labels, test, test_labels,
            epochs=evaluator_epochs, device=device, max_images=evaluator_images, progress=echo_fn)
        if data.channel_source is not None:
            self.evaluator = StackedEvaluator(self.evaluator, data.shape[0])
            train, _, test, _ = data.evaluator_data()
        real = data.eval_reference(n).to(device)
        self.reference = prepare_reference(self.evaluator, real)
        self.real_diversity = mean_pairwise_distance(self.reference.features)
        other = other_real_images(train, n, skip=0 if test is not None else len(real))
        if other is not None:
            feats = self.evaluator.features(other.to(device))
            self.fd_real = frechet_distance(self.reference.features, feats)

    @property
    def test_accuracy(self) -> Optional[float]:
        """The evaluator's accuracy on the real test split (classifier evaluators only)."""
        return None if self.evaluator is None else getattr(self.evaluator, "test_accuracy", None)

    def score_samples(self, samples: Tensor, diversity_samples: Optional[Tensor] = None) -> dict[str, float]:
        """All metrics of generated samples (N, ...) against the real reference."""
        samples = samples.to(self.device).float()
        out: dict[str, float] = {}
        if self.data.kind == "points":
            if self.data.centers is not None:
                out.update(mode_coverage(samples.cpu(), self.data.centers.cpu(), self.data.std))
            else:
                out["fd"] = frechet_distance(self.real, samples)
                if self.fd_real is not None:
                    out["fd_real"] = self.fd_real
                out.update(precision_recall(self.real, samples, k=3))
                out.update(density_coverage(self.real, samples, k=5))
            div = samples if diversity_samples is None else diversity_samples.to(self.device)
            out.update(self._diversity(div))
            return {k: float(v) for k, v in out.items()}
        size = tuple(self.data.shape[-2:])
        samples = to_data_size(samples, size)
        out.update(evaluate_images(self.evaluator, self.reference, samples, kid_subsets=KID_SUBSETS))
        if self.fd_real is not None and "fd" in out:
            out["fd_real"] = self.fd_real
        div = samples if diversity_samples is None else to_data_size(diversity_samples.to(self.device), size)
        out.update(self._diversity(self.evaluator.features(div)))
        if isinstance(self.evaluator, StackedEvaluator) and self.evaluator.is_classifier:
            out.update(self.evaluator.mode_scores(samples))
        return {k: float(v) for k, v in out.items()}

    def _diversity(self, samples: Tensor) -> dict[str, float]:
        """{"diversity": mean pairwise distance of samples (or features) over the real data's}; {} when the real data
        have no spread to compare with (a ratio over ~0 would be meaningless)."""
        if self.real_diversity < MIN_REAL_DIVERSITY:
            return {}
        return {"diversity": mean_pairwise_distance(samples) / self.real_diversity}

    def evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                 fixed_z: Optional[Tensor] = None, seed: int = 0) -> dict[str, float]:
        """Sample `n` images/points from G (eval mode, no_grad, its own seeded noise) and score them."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(self.n, latent_dim, generator=gen).to(self.device)
        if self.num_classes:
            return self._evaluate_conditional(generator, z, gen, g_kwargs, fixed_z)
        samples = generate(generator, z, **g_kwargs)
        diversity = generate(generator, fixed_z, **g_kwargs) if fixed_z is not None else None
        return self.score_samples(samples, diversity)

    def quick_evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                       fixed_z: Optional[Tensor] = None, seed: int = 0) -> dict[str, float]:
        """Cheap scores between full evaluations (unconditional images): class_kl on max(250, n/10) samples (a
        classifier evaluator) and the diversity of the fixed batch, as in a full evaluation; {} elsewhere."""
        if self.data.kind == "points" or self.num_classes or self.evaluator is None:
            return {}
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(max(QUICK_MIN_SAMPLES, self.n // QUICK_FRACTION), latent_dim, generator=gen).to(self.device)
        size = tuple(self.data.shape[-2:])
        out: dict[str, float] = {}
        if self.evaluator.is_classifier:
            samples = to_data_size(generate(generator, z, **g_kwargs).to(self.device).float(), size)
            out.update(evaluate_images(self.evaluator, self.reference, samples, metrics=["class_kl"]))
        if fixed_z is not None:
            feats = self.evaluator.features(to_data_size(generate(generator, fixed_z, **g_kwargs).to(self.device), size))
            out.update(self._diversity(feats))
        return {k: float(v) for k, v in out.items()}

    def _evaluate_conditional(self, generator: nn.Module, z: Tensor, gen: torch.Generator,
                              g_kwargs: dict[str, Any], fixed_z: Optional[Tensor]) -> dict[str, float]:
        """Scores of a conditional G: the usual metrics over labels drawn like training's, plus per-class ones."""
        probs = self.label_probs if self.label_probs is not None else torch.full((self.num_classes,),
                                                                                   1.0 / self.num_classes)
        labels = torch.multinomial(probs, self.n, replacement=True, generator=gen)
        samples = generate(generator, z, labels=labels, **g_kwargs)
        diversity = None
        if fixed_z is not None:
            grid_z, rows = class_grid(fixed_z, self.num_classes)
            diversity = generate(generator, grid_z, labels=rows, **g_kwargs)
        scores = self.score_samples(samples, diversity)
        scores.update(self.class_scores(samples, labels))
        return scores

    def class_scores(self, samples: Tensor, labels: Tensor) -> dict[str, float]:
        """`class_accuracy` (the evaluator classifies each fake as its requested label) and `intra_fd`
        (the mean over classes of the FD between the fakes and the real test images of that class)."""
        if self.evaluator is None or not getattr(self.evaluator, "is_classifier", False):
            return {}
        samples = to_data_size(samples.to(self.device).float(), tuple(self.data.shape[-2:]))
        feats, probs = self.evaluator.features_and_probs(samples)
        predicted = (self.evaluator.labels_from_probs(probs) if isinstance(self.evaluator, StackedEvaluator)
                     else probs.argmax(dim=1))
        out = {"class_accuracy": float((predicted.cpu() == labels.cpu()).double().mean())}
        real_labels = self.data.test_labels if self.data.test_labels is not None else self.data.labels
        real_labels = real_labels[:len(self.reference.features)].cpu()
        per_class = []
        for k in range(self.num_classes):
            real_k, fake_k = self.reference.features[real_labels == k], feats[labels.cpu() == k]
            if len(real_k) > 1 and len(fake_k) > 1:
                per_class.append(frechet_distance(real_k.cpu(), fake_k.cpu()))
        if per_class:
            out["intra_fd"] = float(sum(per_class) / len(per_class))
        return out

    def is_better(self, new: dict[str, float], best: Optional[dict[str, float]]) -> bool:
        """Whether `new` beats `best` on this data's main metric (see `ganstab.metrics.registry`)."""
        return is_better(new, best, self.kind)
