"""Evaluation of a generator against its dataset: glue between data, sampling and the metric maths.

- 2-D mixtures with known modes (ring8, grid25): the PacGAN protocol (`metrics.mode_coverage`).
- Other point data: Frechet distance, precision/recall and density/coverage on raw coordinates.
- Images: features of an evaluator network trained by ganstab on the real training split and
  cached on disk (`eval.cache_dir`), compared with a real reference split (`DataSource.reference`):
  validation for what selects or steers, test for final reports.
- Stacked images (stacked-fashion-mnist): the evaluator of the 1-channel data on every channel
  (`metrics.stacked`), plus the modes captured and their reverse KL (`metrics.stacked_modes`).
- With `eval.features=inception` (an `InceptionFeatures` given), image scores against the test reference are
  torch-fidelity's FID, KID, IS and precision/recall over InceptionV3 features (`metrics.inception`); the
  validation reference keeps ganstab's evaluator, so what selects or steers during training stays cheap.
Every metric is returned under its plain name; the loop logs them with an `eval_` prefix.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganstab.config import image_hw
from ganstab.data import DataSource, draw_rows
from ganstab.errors import ConfigError
from ganstab.metrics.evaluator import (Evaluator, evaluate_images, load_or_train_evaluator,
                                      RealReference, prepare_reference)
from ganstab.metrics.inception import RESIZE as INCEPTION_RESIZE, InceptionFeatures, inception_scores
from ganstab.metrics.modes import mode_coverage
from ganstab.metrics.registry import is_better, main_metric
from ganstab.metrics.shipped import EVALUATOR_CHOICES, shipped_evaluator
from ganstab.metrics.stacked import StackedEvaluator
from ganstab.metrics.stats import density_coverage, frechet_distance, precision_recall
from ganstab.models.progressive import next_pow2
from ganstab.sampling import class_grid, generate

__all__ = ["RunEvaluator", "SplitReference", "default_cache_dir", "mean_pairwise_distance",
           "other_real_images", "to_data_size", "REAL_BASELINE_SEED", "MIN_REAL_DIVERSITY"]

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


def other_real_images(train: Tensor, n: int) -> Optional[Tensor]:
    """Up to n real training images (a seeded draw): the real-vs-real FD baseline's second sample when the data
    have a test split (the references' pool), None when fewer than 2."""
    if len(train) < 2:
        return None
    return train[draw_rows(torch.arange(len(train)), n, torch.Generator().manual_seed(REAL_BASELINE_SEED))]


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


@dataclass
class SplitReference:
    """The real side of one reference split: its samples (points) or prepared features (images), their
    diversity, the real-vs-real FD floor and the labels of its rows."""

    size: int
    real: Optional[Tensor] = None
    prepared: Optional[RealReference] = None
    diversity: float = 1.0
    fd_real: Optional[float] = None
    labels: Optional[Tensor] = None
    inception: Optional[Tensor] = None  # InceptionV3 pool features of the reals (a split scored by Inception)


class RunEvaluator:
    """Scores samples of a generator for one dataset; built once per run (evaluator cached on disk).

    Every score is against one reference split (`DataSource.reference`): "validation" (the default) for
    whatever selects or steers, "test" for final reports only; each split is prepared on first use. With
    `inception`, image scores on "test" are torch-fidelity's Inception metrics instead of the evaluator's.
    """

    def __init__(self, data: DataSource, n: int, device: torch.device, cache_dir: Optional[Path] = None,
                 evaluator_epochs: int = 3, echo: Callable[[str], None] = print, num_classes: int = 0,
                 label_probs: Optional[Tensor] = None, evaluator_images: Optional[int] = None,
                 val_n: Optional[int] = None, evaluator: str = "auto",
                 inception: Optional[InceptionFeatures] = None) -> None:
        self.data = data
        self.inception = inception if data.kind == "image" else None
        self.num_classes = num_classes  # > 0: a class-conditional G, scored per requested class too
        self.label_probs = None if label_probs is None else label_probs.detach().float().cpu()
        self.n = n
        self.val_n = val_n  # size of the validation reference (None: n)
        self.device = device
        if evaluator not in EVALUATOR_CHOICES:
            raise ConfigError(f"eval.evaluator must be one of {', '.join(EVALUATOR_CHOICES)}, got {evaluator!r}")
        self.evaluator = None
        self.kind = "modes" if data.kind == "points" and data.centers is not None else data.kind
        self.main_metric = main_metric(self.kind)
        self.splits: dict[str, SplitReference] = {}
        self.last_resize = "none"  # how the last scored samples were brought to the data's size
        self.last_n = n  # how many generated samples the last score used
        self._baseline: Optional[Tensor] = None  # the real-vs-real FD's second sample
        self.class_prior: Optional[Tensor] = None  # class_kl's p_real (`_class_prior`); None: the reference's
        if data.kind == "points":
            if data.centers is None and data.sampler is not None:
                self._baseline = data.sampler(n, torch.Generator().manual_seed(REAL_BASELINE_SEED)).to(device)
            if val_n != 0:  # no validation part: a reference given to score against (eval --samples)
                self.split_reference("validation")
            return
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        echo_fn = (lambda m: echo(f"evaluator: {m}"))
        # stacked data: the network of the 1-channel data (the same cache entry), applied to every channel
        source = data.channel_source if data.channel_source is not None else data
        train, labels, test, test_labels = source.evaluator_data()
        self.evaluator = self._shipped(evaluator, source.name, (train, labels, test, test_labels), echo_fn)
        if self.evaluator is None:
            self.evaluator = load_or_train_evaluator(
                cache, source.name, train, labels, test, test_labels,
                epochs=evaluator_epochs, device=device, max_images=evaluator_images, progress=echo_fn)
        if data.channel_source is not None:
            self.evaluator = StackedEvaluator(self.evaluator, data.shape[0])
            train, _, test, _ = data.evaluator_data()
        if test is not None:  # the references come from the test split: any training image is outside both
            other = other_real_images(train, n)
        else:  # the references' pool is the training data: the floor's sample avoids both of them
            other = data.unreferenced(n, val_n, n, torch.Generator().manual_seed(REAL_BASELINE_SEED))
        if other is not None:
            self._baseline = self.evaluator.features(other.to(device))
        self.class_prior = self._class_prior(data)
        if val_n != 0:
            self.split_reference("validation")

    def _class_prior(self, data: DataSource) -> Optional[Tensor]:
        """class_kl's p_real: the class distribution G learns, the histogram of the training labels (or the labels
        a conditional run asks for), not the classifier's mean prediction on a reference of a few hundred images,
        whose own sampling noise reads as imbalance (digits: a 180-image reference put a balanced demo at 0.10
        nats, the training labels at 0.03). None (the reference's predictions) for unlabelled or stacked data."""
        if self.evaluator is None or data.channel_source is not None:
            return None
        if self.label_probs is None and (data.labels is None or data.labels.numel() == 0):
            return None
        if not self.evaluator.is_classifier:
            return None
        classes = self.evaluator.settings.num_classes
        if self.label_probs is not None:
            return self.label_probs.double() if len(self.label_probs) == classes else None
        labels = data.labels.detach().long().cpu().reshape(-1)
        if int(labels.min()) < 0 or int(labels.max()) >= classes:
            return None
        return torch.bincount(labels, minlength=classes).double() / labels.numel()

    def _shipped(self, choice: str, name: str, tensors: tuple[Tensor, Optional[Tensor], Optional[Tensor],
                                                               Optional[Tensor]],
                 echo: Callable[[str], None]) -> Optional[Evaluator]:
        """The shipped evaluator of data set `name` under eval.evaluator=`choice` (auto or shipped) when it matches
        these tensors; None (saying why when one is shipped) to train one; ConfigError when `shipped` finds none."""
        if choice == "train":
            return None
        check = shipped_evaluator(name, *tensors, device=self.device)
        if check.evaluator is not None:
            net = check.evaluator
            echo(f"shipped {net.settings.kind}, version {net.settings.version}, weights sha256 "
                 f"{net.weights_sha256()[:12]}, test accuracy {net.test_accuracy:.4f} (no training)")
            return net
        if choice == "shipped":
            raise ConfigError(f"eval.evaluator=shipped: {check.reason}; set eval.evaluator=auto or train to train one")
        if not check.reason.startswith("no evaluator is shipped"):
            echo(f"{check.reason}; training one instead")
        return None

    def split_reference(self, split: str) -> SplitReference:
        """The real side of `split` ("validation" or "test"), prepared on first use."""
        if split in self.splits:
            return self.splits[split]
        real = self.data.reference(split, self.n, self.val_n).to(self.device)
        labels = self.data.reference_labels(split, self.n, self.val_n)
        ref = SplitReference(size=len(real), labels=None if labels is None else labels.cpu())
        if self.by_inception(split):
            ref.inception = self.inception.features(real)[0]
        elif self.evaluator is None:
            ref.real = real
            ref.diversity = mean_pairwise_distance(real)
            if self._baseline is not None:
                ref.fd_real = frechet_distance(real, self._baseline)
        else:
            ref.prepared = prepare_reference(self.evaluator, real)
            ref.diversity = mean_pairwise_distance(ref.prepared.features)
            if self._baseline is not None:
                ref.fd_real = frechet_distance(ref.prepared.features, self._baseline)
        self.splits[split] = ref
        return ref

    @property
    def reference(self) -> Optional[RealReference]:
        """The prepared validation reference (images; None for points)."""
        return self.split_reference("validation").prepared

    @property
    def fd_real(self) -> Optional[float]:
        """FD of other real data against the validation reference: FD's floor at this n."""
        return self.split_reference("validation").fd_real

    @property
    def real_diversity(self) -> float:
        """Mean pairwise distance of the validation reference (features for images)."""
        return self.split_reference("validation").diversity

    def provenance(self, split: str) -> dict[str, Any]:
        """What the last score of `split` was measured with: split, real reference size, generated samples,
        feature network and resize (logged as `eval_split`, `eval_reference_n`, `eval_n`, `eval_features`,
        `eval_resize`)."""
        return {"split": split, "reference_n": self.split_reference(split).size, "n": self.last_n,
                "features": self.features_name(split), "resize": self.last_resize}

    def by_inception(self, split: str) -> bool:
        """Whether image scores on `split` are Inception metrics (eval.features=inception: the test split)."""
        return self.inception is not None and split == "test"

    def features_name(self, split: str = "validation") -> str:
        """The feature network of `split`: "points" (raw coordinates), inception-v3-compat-<weights hash>, else
        ganstab-evaluator-v<version>-<kind>-<first 12 hex digits of the sha256 of its weights> (stacked data:
        prefixed stacked-, the 1-channel network's)."""
        if self.by_inception(split):
            return self.inception.name
        if self.evaluator is None:
            return "points"
        net = getattr(self.evaluator, "channel_evaluator", self.evaluator)  # stacked: its 1-channel evaluator
        kind = "classifier" if net.is_classifier else "autoencoder"
        stacked = "stacked-" if isinstance(self.evaluator, StackedEvaluator) else ""
        return f"{stacked}ganstab-evaluator-v{net.settings.version}-{kind}-{net.weights_sha256()[:12]}"

    @property
    def test_accuracy(self) -> Optional[float]:
        """The evaluator's accuracy on the real test split (classifier evaluators only)."""
        return None if self.evaluator is None else getattr(self.evaluator, "test_accuracy", None)

    def score_samples(self, samples: Tensor, diversity_samples: Optional[Tensor] = None,
                      split: str = "validation") -> dict[str, float]:
        """All metrics of generated samples (N, ...) against the real reference of `split`."""
        ref = self.split_reference(split)
        samples = samples.to(self.device).float()
        out: dict[str, float] = {}
        if self.data.kind == "points":
            if self.data.centers is not None:
                out.update(mode_coverage(samples.cpu(), self.data.centers.cpu(), self.data.std))
            else:
                out["fd"] = frechet_distance(ref.real, samples)
                if ref.fd_real is not None:
                    out["fd_real"] = ref.fd_real
                out.update(precision_recall(ref.real, samples, k=3))
                out.update(density_coverage(ref.real, samples, k=5))
            div = samples if diversity_samples is None else diversity_samples.to(self.device)
            out.update(self._diversity(div, ref))
            return {k: float(v) for k, v in out.items()}
        size = tuple(self.data.shape[-2:])
        samples = self._fit(samples, size)
        if self.by_inception(split):  # the library's metrics alone: no score of another feature space beside them
            ours = "" if self.last_resize == "none" else f"{self.last_resize}+"
            self.last_resize = ours + INCEPTION_RESIZE
            pool, logits = self.inception.features(samples)
            return inception_scores(ref.inception, pool, logits)
        out.update(evaluate_images(self.evaluator, ref.prepared, samples, self.class_prior, kid_subsets=KID_SUBSETS))
        if ref.fd_real is not None and "fd" in out:
            out["fd_real"] = ref.fd_real
        div = samples if diversity_samples is None else to_data_size(diversity_samples.to(self.device), size)
        out.update(self._diversity(self.evaluator.features(div), ref))
        if isinstance(self.evaluator, StackedEvaluator) and self.evaluator.is_classifier:
            out.update(self.evaluator.mode_scores(samples))
        return {k: float(v) for k, v in out.items()}

    def _fit(self, samples: Tensor, size: tuple[int, ...]) -> Tensor:
        """Samples brought to the data's size (`to_data_size`), recording how for the line (`eval_resize`)."""
        self.last_resize = "none" if tuple(samples.shape[-2:]) == size else "nearest-pow2-crop"
        return to_data_size(samples, size)

    def _diversity(self, samples: Tensor, ref: SplitReference) -> dict[str, float]:
        """{"diversity": mean pairwise distance of samples (or features) over the reference's}; {} when the real data
        have no spread to compare with (a ratio over ~0 would be meaningless)."""
        if ref.diversity < MIN_REAL_DIVERSITY:
            return {}
        return {"diversity": mean_pairwise_distance(samples) / ref.diversity}

    def evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                 fixed_z: Optional[Tensor] = None, seed: int = 0, split: str = "validation") -> dict[str, float]:
        """Sample `n` images/points from G (eval mode, no_grad, its own seeded noise) and score them against the
        reference of `split`."""
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(self.n, latent_dim, generator=gen).to(self.device)
        self.last_n = self.n
        if self.num_classes:
            return self._evaluate_conditional(generator, z, gen, g_kwargs, fixed_z, split)
        samples = generate(generator, z, **g_kwargs)
        diversity = generate(generator, fixed_z, **g_kwargs) if fixed_z is not None else None
        return self.score_samples(samples, diversity, split)

    def quick_evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                       fixed_z: Optional[Tensor] = None, seed: int = 0) -> dict[str, float]:
        """Cheap scores between full evaluations (unconditional images): class_kl on max(250, n/10) samples (a
        classifier evaluator) and the diversity of the fixed batch, as in a full evaluation; {} elsewhere."""
        if self.data.kind == "points" or self.num_classes or self.evaluator is None:
            return {}
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(max(QUICK_MIN_SAMPLES, self.n // QUICK_FRACTION), latent_dim, generator=gen).to(self.device)
        self.last_n = len(z)
        size = tuple(self.data.shape[-2:])
        out: dict[str, float] = {}
        if self.evaluator.is_classifier:
            samples = self._fit(generate(generator, z, **g_kwargs).to(self.device).float(), size)
            out.update(evaluate_images(self.evaluator, self.reference, samples, self.class_prior,
                                       metrics=["class_kl"]))
        if fixed_z is not None:
            feats = self.evaluator.features(to_data_size(generate(generator, fixed_z, **g_kwargs).to(self.device), size))
            out.update(self._diversity(feats, self.split_reference("validation")))
        return {k: float(v) for k, v in out.items()}

    def _evaluate_conditional(self, generator: nn.Module, z: Tensor, gen: torch.Generator,
                              g_kwargs: dict[str, Any], fixed_z: Optional[Tensor], split: str) -> dict[str, float]:
        """Scores of a conditional G: the usual metrics over labels drawn like training's, plus per-class ones."""
        probs = self.label_probs if self.label_probs is not None else torch.full((self.num_classes,),
                                                                                   1.0 / self.num_classes)
        labels = torch.multinomial(probs, self.n, replacement=True, generator=gen)
        samples = generate(generator, z, labels=labels, **g_kwargs)
        diversity = None
        if fixed_z is not None:
            grid_z, rows = class_grid(fixed_z, self.num_classes)
            diversity = generate(generator, grid_z, labels=rows, **g_kwargs)
        scores = self.score_samples(samples, diversity, split)
        if not self.by_inception(split):
            scores.update(self.class_scores(samples, labels, split))
        return scores

    def class_scores(self, samples: Tensor, labels: Tensor, split: str = "validation") -> dict[str, float]:
        """`class_accuracy` (the evaluator classifies each fake as its requested label) and `intra_fd`
        (the mean over classes of the FD between the fakes and the real images of that class in `split`)."""
        if self.evaluator is None or not getattr(self.evaluator, "is_classifier", False):
            return {}
        samples = to_data_size(samples.to(self.device).float(), tuple(self.data.shape[-2:]))
        feats, probs = self.evaluator.features_and_probs(samples)
        predicted = (self.evaluator.labels_from_probs(probs) if isinstance(self.evaluator, StackedEvaluator)
                     else probs.argmax(dim=1))
        out = {"class_accuracy": float((predicted.cpu() == labels.cpu()).double().mean())}
        ref = self.split_reference(split)
        per_class = []
        for k in range(self.num_classes if ref.labels is not None else 0):
            real_k, fake_k = ref.prepared.features[ref.labels == k], feats[labels.cpu() == k]
            if len(real_k) > 1 and len(fake_k) > 1:
                per_class.append(frechet_distance(real_k.cpu(), fake_k.cpu()))
        if per_class:
            out["intra_fd"] = float(sum(per_class) / len(per_class))
        return out

    def is_better(self, new: dict[str, float], best: Optional[dict[str, float]]) -> bool:
        """Whether `new` beats `best` on this data's main metric (see `ganstab.metrics.registry`)."""
        return is_better(new, best, self.kind)
