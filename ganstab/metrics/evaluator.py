"""The evaluator network: a small CNN trained by ganstab on the real data, used as the feature extractor.

Inception weights cannot be downloaded here, so FD/KID/precision/recall/density/coverage are
measured in the feature space of a network that ganstab trains itself on the real training
images (float tensors (N, C, H, W) in [-1, 1], C in {1, 3}, 8 <= H, W <= 64):

- with labels: a classifier (three conv-BN-ReLU stages, adaptive 2x2 average pool, a linear
  embedding of `feature_dim` units, then BN-ReLU-dropout-linear to the K logits). Features are
  the embedding (the penultimate layer, before its BN/ReLU); `class_probs` are the softmax.
- without labels: a convolutional autoencoder with the same encoder; its linear bottleneck of
  `feature_dim` units is the feature, and class metrics (class_kl, IS) are skipped.

Numbers measured with one evaluator are comparable only with numbers from the same evaluator
(same data, settings and seed), which is why `load_or_train_evaluator` caches it on disk keyed
by a sha256 of the data and the settings. Files: `<stem>.safetensors` (weights, no pickle) and
`<stem>.json` (settings, test accuracy, data hash).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import Tensor, nn

from ganstab.augment import translate
from ganstab.errors import first_line
from ganstab.rundir import atomic_write
from ganstab.metrics.stats import (
    class_histogram,
    class_kl,
    feature_mean_cov,
    frechet_distance_from_stats,
    inception_score,
    kid,
    manifold_metrics,
)

log = logging.getLogger(__name__)

#: Bumped whenever the architecture or the training recipe changes, so old caches are not reused
#: (3: the `shift` augmentation setting and the shipped evaluators of the bundled data).
EVALUATOR_VERSION = 3
FORMAT = "ganstab-evaluator"

DeviceLike = Union[str, torch.device]

#: Every key that `evaluate_images` can return; class-based ones need a classifier evaluator.
METRIC_NAMES = ("fd", "kid", "kid_std", "precision", "recall", "density", "coverage", "class_kl", "is")
CLASS_METRICS = ("class_kl", "is")


@dataclass(frozen=True)
class EvaluatorSettings:
    """Everything that defines an evaluator network and its training (stored in the JSON file)."""

    kind: str  # "classifier" or "autoencoder"
    in_channels: int
    height: int
    width: int
    num_classes: int = 0  # 0 for the autoencoder
    feature_dim: int = 128
    widths: tuple[int, int, int] = (16, 32, 64)
    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    seed: int = 0
    shift: int = 0  # training augmentation: a seeded random shift of up to this many pixels per axis (0: none)
    flip: bool = False  # training augmentation: mirror half the images left-right (classes that are mirror-symmetric)
    version: int = EVALUATOR_VERSION

    def __post_init__(self) -> None:
        if self.kind not in ("classifier", "autoencoder"):
            raise ValueError(f"kind must be 'classifier' or 'autoencoder', got {self.kind!r}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"images need 1 or 3 channels, got {self.in_channels}")
        if not (8 <= self.height <= 64 and 8 <= self.width <= 64):
            raise ValueError(f"image size must be between 8x8 and 64x64, got {self.height}x{self.width}")
        if self.shift < 0:
            raise ValueError(f"shift must be >= 0 pixels, got {self.shift}")
        if self.kind == "classifier" and self.num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {self.num_classes}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary of the settings."""
        data = dataclasses.asdict(self)
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluatorSettings":
        """Settings from `to_dict` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown evaluator settings: {sorted(unknown)}")
        values = dict(data)
        if "widths" in values:
            values["widths"] = tuple(values["widths"])
        return cls(**values)


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Encoder(nn.Module):
    """Conv trunk: optional stride-2 stem above 32 px, three stages, 2x2 max pools while >= 4 px, 2x2 average pool."""

    def __init__(self, settings: EvaluatorSettings) -> None:
        super().__init__()
        w1, w2, w3 = settings.widths
        layers: list[nn.Module] = []
        channels = settings.in_channels
        size = min(settings.height, settings.width)
        if size > 32:
            layers.append(_conv_block(channels, w1 // 2, stride=2))
            channels, size = w1 // 2, (size + 1) // 2
        for index, width in enumerate((w1, w2, w3)):
            layers.append(_conv_block(channels, width))
            channels = width
            if index < 2 and size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        layers.append(nn.AdaptiveAvgPool2d(2))
        layers.append(nn.Flatten())
        self.layers = nn.Sequential(*layers)
        self.embed = nn.Linear(w3 * 4, settings.feature_dim)

    def forward(self, images: Tensor) -> Tensor:
        return self.embed(self.layers(images))


class _Classifier(nn.Module):
    def __init__(self, settings: EvaluatorSettings) -> None:
        super().__init__()
        self.encoder = _Encoder(settings)
        self.head = nn.Sequential(
            nn.BatchNorm1d(settings.feature_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(settings.dropout),
            nn.Linear(settings.feature_dim, settings.num_classes),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.encoder(images))


class _AutoEncoder(nn.Module):
    def __init__(self, settings: EvaluatorSettings) -> None:
        super().__init__()
        self.encoder = _Encoder(settings)
        self.out_size = (settings.height, settings.width)
        self.start = (math.ceil(settings.height / 4), math.ceil(settings.width / 4))
        w1, w2, _ = settings.widths
        self.w2 = w2
        self.project = nn.Sequential(nn.Linear(settings.feature_dim, w2 * self.start[0] * self.start[1]), nn.ReLU())
        self.decode = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv_block(w2, w1),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(w1, settings.in_channels, 3, padding=1),
        )

    def forward(self, images: Tensor) -> Tensor:
        code = self.encoder(images)
        grid = self.project(code).view(-1, self.w2, *self.start)
        out = self.decode(grid)
        if tuple(out.shape[-2:]) != self.out_size:
            out = F.interpolate(out, size=self.out_size, mode="bilinear", align_corners=False)
        return torch.tanh(out)


def _build_network(settings: EvaluatorSettings) -> nn.Module:
    return _Classifier(settings) if settings.kind == "classifier" else _AutoEncoder(settings)


# ---------------------------------------------------------------------------------------------
# The evaluator object
# ---------------------------------------------------------------------------------------------


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []


class Evaluator:
    """A trained feature network: `features`, `class_probs` (classifiers), `test_accuracy`, `save`/`load`."""

    def __init__(
        self,
        settings: EvaluatorSettings,
        state_dict: Optional[dict[str, Tensor]] = None,
        *,
        test_accuracy: float = math.nan,
        test_loss: float = math.nan,
        device: DeviceLike = "cpu",
        data_hash: str = "",
    ) -> None:
        self.settings = settings
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.network = _build_network(settings)
        if state_dict is not None:
            self.network.load_state_dict(state_dict)
        # channels_last makes the oneDNN convolutions about 1.5x faster on CPU (and suits cuDNN).
        self.network.to(self.device, memory_format=torch.channels_last).eval()
        self.test_accuracy = float(test_accuracy)
        self.test_loss = float(test_loss)
        self.data_hash = data_hash

    @property
    def is_classifier(self) -> bool:
        """True when the network was trained with labels (class metrics available)."""
        return self.settings.kind == "classifier"

    @property
    def feature_dim(self) -> int:
        """Length D of the feature vectors."""
        return self.settings.feature_dim

    def _check_images(self, images: Tensor) -> None:
        s = self.settings
        if images.ndim != 4 or tuple(images.shape[1:]) != (s.in_channels, s.height, s.width):
            raise ValueError(
                f"evaluator expects images of shape (N, {s.in_channels}, {s.height}, {s.width}), got {tuple(images.shape)}"
            )

    def _batched(self, fn: Callable[[Tensor], Tensor], images: Tensor, batch_size: int) -> Tensor:
        images = torch.as_tensor(images)
        self._check_images(images)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.network.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                batch = _to_device(images[start : start + batch_size], self.device)
                outputs.append(fn(batch).float())
        if not outputs:
            raise ValueError("no images given")
        return torch.cat(outputs)

    def features(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """(N, D) float32 features of (N, C, H, W) images in [-1, 1], on the evaluator's device."""
        return self._batched(self.network.encoder, images, batch_size)

    def class_probs(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """(N, K) softmax class probabilities (classifier evaluators only)."""
        if not self.is_classifier:
            raise ValueError("class_probs needs a classifier evaluator (this one was trained without labels)")
        return self._batched(lambda x: self.network(x).softmax(dim=1), images, batch_size)

    def features_and_probs(self, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Optional[Tensor]]:
        """Features and (for classifiers) class probabilities in one pass over the images."""
        if not self.is_classifier:
            return self.features(images, batch_size), None
        network: _Classifier = self.network  # type: ignore[assignment]

        def both(batch: Tensor) -> Tensor:
            feats = network.encoder(batch)
            return torch.cat([feats, network.head(feats).softmax(dim=1)], dim=1)

        joined = self._batched(both, images, batch_size)
        return joined[:, : self.feature_dim].contiguous(), joined[:, self.feature_dim :].contiguous()

    def to(self, device: DeviceLike) -> "Evaluator":
        """Move the network to `device` (in place) and return self."""
        self.device = torch.device(device)
        self.network.to(self.device, memory_format=torch.channels_last)
        return self

    def metadata(self) -> dict[str, Any]:
        """The JSON side file's content."""
        return {
            "format": FORMAT,
            "settings": self.settings.to_dict(),
            "test_accuracy": None if math.isnan(self.test_accuracy) else self.test_accuracy,
            "test_loss": None if math.isnan(self.test_loss) else self.test_loss,
            "data_hash": self.data_hash,
        }

    def weights_bytes(self) -> bytes:
        """The network's weights as the bytes of its .safetensors file (the same bytes for the same weights)."""
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.network.state_dict().items()}
        return save_safetensors(state, metadata={"format": FORMAT})

    def weights_sha256(self) -> str:
        """sha256 (hex) of the weights: that of the .safetensors file `save` writes (`sha256sum` checks it)."""
        return hashlib.sha256(self.weights_bytes()).hexdigest()

    def save(self, path: Union[str, Path]) -> tuple[Path, Path]:
        """Write `<stem>.safetensors` and `<stem>.json` atomically (JSON last); return both paths."""
        weights_path, json_path = _stem_paths(path)
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(weights_path, self.weights_bytes())
        atomic_write(json_path, json.dumps(self.metadata(), indent=2, sort_keys=True) + "\n")
        return weights_path, json_path

    @classmethod
    def load(cls, path: Union[str, Path], device: DeviceLike = "cpu") -> "Evaluator":
        """Load an evaluator written by `save` (safetensors + JSON, no unpickling)."""
        weights_path, json_path = _stem_paths(path)
        meta = json.loads(json_path.read_text(encoding="utf-8"))  # not JSON: a ValueError
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{json_path} is not a ganstab evaluator file")
        if not isinstance(meta.get("settings"), dict):
            raise ValueError(f"{json_path}: 'settings' must be a mapping, got {type(meta.get('settings')).__name__}")
        try:
            settings = EvaluatorSettings.from_dict(meta["settings"])
        except TypeError as exc:
            raise ValueError(f"{json_path}: bad settings ({exc})") from None
        numbers = {}
        for name in ("test_accuracy", "test_loss"):
            value = meta.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{json_path}: '{name}' must be a number or null, got {type(value).__name__}")
            numbers[name] = math.nan if value is None else float(value)
        try:
            state = load_file(str(weights_path), device="cpu")
        except SafetensorError as exc:
            raise ValueError(f"{weights_path} is not a readable safetensors file ({exc})") from None
        return cls(settings, state, test_accuracy=numbers["test_accuracy"], test_loss=numbers["test_loss"],
                   device=device, data_hash=str(meta.get("data_hash", "")))

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"Evaluator({s.kind}, {s.in_channels}x{s.height}x{s.width}, D={s.feature_dim}, "
            f"test_accuracy={self.test_accuracy:.4f}, device={self.device})"
        )


def _to_device(images: Tensor, device: torch.device) -> Tensor:
    """A float32 channels_last copy of an image batch on `device`."""
    return images.to(device, torch.float32, non_blocking=True).contiguous(memory_format=torch.channels_last)


def _stem_paths(path: Union[str, Path]) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _validate_images(images: Tensor, name: str) -> Tensor:
    images = torch.as_tensor(images)
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be a float tensor scaled to [-1, 1], got {images.dtype}")
    return images


def _validate_labels(labels: Tensor, n: int, name: str) -> Tensor:
    labels = torch.as_tensor(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or (labels.numel() and int(labels.min()) < 0):
        raise ValueError(f"{name} must hold non-negative integer class indices")
    return labels.to(torch.int64)


def _settings_for(
    images: Tensor, labels: Optional[Tensor], test_labels: Optional[Tensor], overrides: dict[str, Any]
) -> EvaluatorSettings:
    num_classes = 0
    if labels is not None:
        num_classes = int(labels.max()) + 1
        if test_labels is not None and test_labels.numel():
            num_classes = max(num_classes, int(test_labels.max()) + 1)
    return EvaluatorSettings(
        kind="classifier" if labels is not None else "autoencoder",
        in_channels=images.shape[1],
        height=images.shape[2],
        width=images.shape[3],
        num_classes=num_classes,
        **overrides,
    )


def train_evaluator(
    images: Tensor,
    labels: Optional[Tensor],
    *,
    test_images: Optional[Tensor] = None,
    test_labels: Optional[Tensor] = None,
    epochs: int = 3,
    seed: int = 0,
    device: DeviceLike = "cpu",
    feature_dim: int = 128,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    widths: Sequence[int] = (16, 32, 64),
    dropout: float = 0.2,
    shift: int = 0,
    flip: bool = False,
    progress: Optional[Callable[[str], None]] = None,
) -> Evaluator:
    """Train the evaluator on real images (classifier with labels, autoencoder without) and test it.

    AdamW with a one-cycle learning-rate schedule, cross-entropy (or MSE for the autoencoder),
    deterministic for a given seed and device; the caller's global RNG state is left untouched.
    `shift` > 0 moves each training image by a seeded random shift of up to that many pixels per axis, and
    `flip` mirrors half of them left-right.
    `test_accuracy` is measured on (test_images, test_labels) when given (NaN otherwise, and
    always NaN for the autoencoder, whose test reconstruction MSE goes to `test_loss`).
    """
    images, labels, test_images, test_labels = _validate_training_data(images, labels, test_images, test_labels)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    settings = _settings_for(
        images,
        labels,
        test_labels,
        dict(feature_dim=feature_dim, widths=tuple(widths), epochs=epochs, batch_size=batch_size, lr=lr,
             weight_decay=weight_decay, dropout=dropout, seed=seed, shift=shift, flip=flip),
    )
    evaluator = Evaluator(settings, device=torch.device(device))
    _fit(evaluator, images, labels, progress)
    evaluator.network.eval()
    if test_images is not None:
        evaluator.test_loss, evaluator.test_accuracy = _test(evaluator, test_images, test_labels)
    return evaluator


def _validate_training_data(images: Tensor, labels: Optional[Tensor], test_images: Optional[Tensor],
                            test_labels: Optional[Tensor]) -> tuple[Tensor, Optional[Tensor], Optional[Tensor],
                                                                    Optional[Tensor]]:
    """Checked (images, labels, test images, test labels): shapes, ranges and label counts agree."""
    images = _validate_images(images, "images")
    if labels is not None:
        labels = _validate_labels(labels, images.shape[0], "labels")
    if test_images is not None:
        test_images = _validate_images(test_images, "test_images")
        if tuple(test_images.shape[1:]) != tuple(images.shape[1:]):
            raise ValueError("test_images and images differ in shape")
        if test_labels is not None:
            test_labels = _validate_labels(test_labels, test_images.shape[0], "test_labels")
    return images, labels, test_images, test_labels


def _fit(evaluator: Evaluator, images: Tensor, labels: Optional[Tensor],
         progress: Optional[Callable[[str], None]]) -> None:
    """AdamW with a one-cycle schedule over `settings.epochs` seeded epochs (the caller's RNG untouched)."""
    settings, network, target_device = evaluator.settings, evaluator.network, evaluator.device
    epochs, batch_size, lr, seed = settings.epochs, settings.batch_size, settings.lr, settings.seed
    n = images.shape[0]
    steps_per_epoch = n // batch_size if n % batch_size < 2 else n // batch_size + 1
    if steps_per_epoch < 1:
        raise ValueError(f"need at least {max(2, batch_size)} training images, got {n}")
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.25
    )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=_rng_devices(target_device)):
        torch.manual_seed(seed)
        network.train()
        for epoch in range(epochs):
            order = torch.randperm(n, generator=generator)
            total_loss = 0.0
            for step in range(steps_per_epoch):
                rows = order[step * batch_size : (step + 1) * batch_size]
                batch = _to_device(_augmented(images[rows], settings, generator), target_device)
                if labels is not None:
                    targets = labels[rows].to(target_device, non_blocking=True)
                    loss = F.cross_entropy(network(batch), targets)
                else:
                    loss = F.mse_loss(network(batch), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += float(loss.detach())
            if progress is not None:
                progress(
                    f"epoch {epoch + 1}/{epochs}: loss {total_loss / steps_per_epoch:.4f}, "
                    f"{time.perf_counter() - started:.1f}s"
                )


def _augmented(images: Tensor, settings: EvaluatorSettings, generator: torch.Generator) -> Tensor:
    """The training batch with the recipe's augmentations, each drawn per image from `generator`: a left-right
    mirror with probability 1/2 (`flip`), then an integer shift in [-shift, shift] per axis, uncovered pixels -1."""
    if settings.flip:
        mirror = torch.rand(images.shape[0], generator=generator) < 0.5
        images = torch.where(mirror.view(-1, 1, 1, 1), images.flip(-1), images)
    if settings.shift == 0:
        return images
    shifts = torch.randint(-settings.shift, settings.shift + 1, (2, images.shape[0]), generator=generator)
    return translate(images, shifts[0], shifts[1])


def _test(evaluator: Evaluator, test_images: Tensor, test_labels: Optional[Tensor]) -> tuple[float, float]:
    """(test loss, test accuracy) of a trained evaluator; accuracy is NaN without labels or classes."""
    if evaluator.is_classifier:
        if test_labels is None:
            return math.nan, math.nan
        probs = evaluator.class_probs(test_images).cpu()
        loss = float(F.nll_loss(probs.clamp_min(1e-12).log(), test_labels))
        accuracy = float((probs.argmax(dim=1) == test_labels).double().mean())
        return loss, accuracy
    network = evaluator.network
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, test_images.shape[0], 500):
            batch = _to_device(test_images[start : start + 500], evaluator.device)
            total += float(F.mse_loss(network(batch), batch, reduction="sum"))
            count += batch.numel()
    return total / count, math.nan


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def tensor_digest(*tensors: Optional[Tensor], extra: str = "") -> str:
    """sha256 hex digest over the dtypes, shapes and raw bytes of tensors (None allowed) plus a string."""
    digest = hashlib.sha256()
    digest.update(extra.encode("utf-8"))
    for tensor in tensors:
        if tensor is None:
            digest.update(b"|none")
            continue
        tensor = torch.as_tensor(tensor).detach().cpu().contiguous()
        digest.update(f"|{tensor.dtype}|{tuple(tensor.shape)}|".encode("utf-8"))
        if tensor.numel():
            digest.update(memoryview(tensor.view(torch.uint8).reshape(-1).numpy()))
    return digest.hexdigest()


def _safe_key(dataset_key: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset_key)
    return cleaned.strip("._")[:64] or "data"


def capped_training_set(images: Tensor, labels: Optional[Tensor], epochs: int, max_images: int,
                        seed: int) -> tuple[Tensor, Optional[Tensor], int]:
    """(images, labels, epochs) showing at most `max_images` images in all: a seeded subset, whole epochs."""
    if max_images < 2:
        raise ValueError(f"max_images must be at least 2, got {max_images}")
    n = images.shape[0]
    if n * epochs <= max_images:
        return images, labels, epochs
    keep = min(n, max_images)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:keep].sort().values
    return images[rows], None if labels is None else labels[rows], max(1, max_images // keep)


def _cache_entry(cache_dir: Union[str, Path], dataset_key: str, images: Tensor, labels: Optional[Tensor],
                 test_images: Optional[Tensor], test_labels: Optional[Tensor], settings: dict[str, Any],
                 max_images: Optional[int]) -> tuple[Path, str, dict[str, Any]]:
    """(cache stem, full digest, settings key) of an evaluator for these data and settings."""
    key = dict(settings, version=EVALUATOR_VERSION)
    if max_images is not None and images.shape[0] * int(settings["epochs"]) > max_images:
        key["max_images"] = int(max_images)
    settings_key = json.dumps(key, sort_keys=True)
    digest = tensor_digest(images, labels, test_images, test_labels, extra=f"{dataset_key}|{settings_key}")
    return Path(cache_dir) / f"evaluator-{_safe_key(dataset_key)}-{digest[:24]}", digest, key


def _load_cached(stem: Path, digest: str, device: DeviceLike,
                 warn: Optional[Callable[[str], None]] = None) -> Optional[Evaluator]:
    """The cache entry at `stem` when it holds this digest; None (saying why through `warn`, else the log) when it
    is missing, damaged, of the wrong type or shape, or stale."""
    say = warn if warn is not None else log.warning
    weights_path, json_path = _stem_paths(stem)
    if not (weights_path.exists() and json_path.exists()):
        return None
    try:
        cached = Evaluator.load(stem, device=device)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:  # untrusted file: any bad content
        reason = first_line(error)
        say(f"cache entry {stem} is unreadable ({reason}); retraining it")
        return None
    if cached.data_hash != digest:
        say(f"cache entry {stem} has a different digest; retraining it")
        return None
    log.info("evaluator cache hit: %s", stem)
    return cached


def load_or_train_evaluator(
    cache_dir: Union[str, Path],
    dataset_key: str,
    images: Tensor,
    labels: Optional[Tensor],
    test_images: Optional[Tensor] = None,
    test_labels: Optional[Tensor] = None,
    *,
    epochs: int = 3,
    seed: int = 0,
    device: DeviceLike = "cpu",
    feature_dim: int = 128,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    widths: Sequence[int] = (16, 32, 64),
    dropout: float = 0.2,
    max_images: Optional[int] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> Evaluator:
    """Load the cached evaluator for these data and settings, or train, save and return a new one.

    `max_images` caps the images shown in training (epochs x training images): above it the
    evaluator trains on a seeded subset of at most `max_images` images for as many whole epochs
    as fit (at least one), so its one-time cost stays small on a large data set; a cap that does
    not bind changes nothing (not even the cache key).

    The cache file is `<cache_dir>/evaluator-<dataset_key>-<first 24 hex digits>` where the
    digest is a sha256 over the dataset key, the settings (JSON) and the bytes, dtypes and
    shapes of the four tensors; the full digest is stored in the JSON and checked on load, and
    an unreadable or mismatched entry is retrained and overwritten. The device is not part of
    the key: an evaluator trained on a GPU is reused on the CPU, so numbers stay comparable.
    """
    started = time.perf_counter()
    images = _validate_images(images, "images")
    stem, digest, key = _cache_entry(cache_dir, dataset_key, images, labels, test_images, test_labels,
                                     dict(epochs=epochs, seed=seed, feature_dim=feature_dim, batch_size=batch_size,
                                          lr=lr, weight_decay=weight_decay, widths=[int(w) for w in widths],
                                          dropout=dropout), max_images)
    cached = _load_cached(stem, digest, device, progress)
    if cached is not None:
        return cached
    if "max_images" in key:
        images, labels, epochs = capped_training_set(images, labels, epochs, int(max_images), seed)
        if progress is not None:
            progress(f"training on {images.shape[0]:,} images for {epochs} epoch(s) (eval.evaluator_images="
                     f"{int(max_images):,})")
    evaluator = train_evaluator(images, labels, test_images=test_images, test_labels=test_labels, epochs=epochs,
                                seed=seed, device=device, feature_dim=feature_dim, batch_size=batch_size, lr=lr,
                                weight_decay=weight_decay, widths=widths, dropout=dropout, progress=progress)
    evaluator.data_hash = digest
    try:
        evaluator.save(stem)
        cached_in = f"cached in {stem.parent}"
    except OSError as exc:  # the evaluator is trained: a cache that cannot be written only costs the next run
        cached_in = f"not cached: {exc.strerror or exc} for {stem}"
    if progress is not None:
        accuracy = "" if math.isnan(evaluator.test_accuracy) else f", test accuracy {evaluator.test_accuracy:.4f}"
        progress(f"trained in {time.perf_counter() - started:.1f}s{accuracy} ({cached_in})")
    return evaluator


# ---------------------------------------------------------------------------------------------
# Evaluation of generated images
# ---------------------------------------------------------------------------------------------


@dataclass
class RealReference:
    """Precomputed real-side quantities (features, statistics, class distribution) reused across evaluations."""

    features: Tensor
    mean: Tensor
    cov: Tensor
    class_probs: Optional[Tensor] = None
    class_distribution: Optional[Tensor] = None
    num_images: int = 0


def prepare_reference(evaluator: Evaluator, real_images: Tensor, batch_size: int = 500) -> RealReference:
    """Features, mean/covariance and class distribution of the real test images, computed once."""
    features, probs = evaluator.features_and_probs(real_images, batch_size)
    mean, cov = feature_mean_cov(features)
    distribution = class_histogram(probs, probs.shape[1]) if probs is not None else None
    return RealReference(features, mean, cov, probs, distribution, num_images=features.shape[0])


def _wanted_metrics(metrics: Optional[Sequence[str]], is_classifier: bool) -> set[str]:
    """The metric names to compute: checked against METRIC_NAMES, kid with kid_std, class metrics for classifiers."""
    wanted = set(METRIC_NAMES if metrics is None else metrics)
    unknown = wanted - set(METRIC_NAMES)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {', '.join(METRIC_NAMES)}")
    if wanted & {"kid", "kid_std"}:
        wanted |= {"kid", "kid_std"}
    if not is_classifier:
        wanted -= set(CLASS_METRICS)
    return wanted


def evaluate_images(
    evaluator: Evaluator,
    real_test_images: Union[Tensor, RealReference],
    fake_images: Tensor,
    real_class_distribution: Optional[Union[Tensor, np.ndarray, Sequence[float]]] = None,
    *,
    metrics: Optional[Sequence[str]] = None,
    batch_size: int = 500,
    k_pr: int = 3,
    k_dc: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    is_splits: int = 10,
) -> dict[str, float]:
    """All image metrics of fakes against real test images: fd, kid, kid_std, precision, recall, density, coverage, class_kl, is.

    `real_test_images` may be a `RealReference` from `prepare_reference` to skip recomputing
    the real side. The class metrics are returned only for classifier evaluators; class_kl is
    KL(p_fake || p_real) with p_fake the mean predicted class distribution of the fakes and
    p_real = `real_class_distribution` or, when None, the mean predicted distribution on the
    real test images (so that the classifier's own bias cancels). `metrics` selects a subset of
    `METRIC_NAMES` (kid and kid_std always come together). All work runs on the evaluator's device.
    """
    wanted = _wanted_metrics(metrics, evaluator.is_classifier)
    reference = (
        real_test_images
        if isinstance(real_test_images, RealReference)
        else prepare_reference(evaluator, real_test_images, batch_size)
    )
    need_probs = bool(wanted & set(CLASS_METRICS))
    if need_probs:
        fake_features, fake_probs = evaluator.features_and_probs(fake_images, batch_size)
    else:
        fake_features, fake_probs = evaluator.features(fake_images, batch_size), None

    result: dict[str, float] = {}
    if "fd" in wanted:
        fake_mean, fake_cov = feature_mean_cov(fake_features)
        result["fd"] = frechet_distance_from_stats(reference.mean, reference.cov, fake_mean, fake_cov)
    if wanted & {"kid", "kid_std"}:
        result["kid"], result["kid_std"] = kid(
            reference.features, fake_features, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
        )
    want_pr, want_dc = bool(wanted & {"precision", "recall"}), bool(wanted & {"density", "coverage"})
    if want_pr or want_dc:
        result.update(
            manifold_metrics(
                reference.features,
                fake_features,
                k_pr=k_pr if want_pr else None,
                k_dc=k_dc if want_dc else None,
            )
        )
    if "class_kl" in wanted:
        target = real_class_distribution if real_class_distribution is not None else reference.class_distribution
        result["class_kl"] = class_kl(fake_probs, target)
    if "is" in wanted:
        result["is"] = inception_score(fake_probs, splits=is_splits)[0]
    return {name: result[name] for name in METRIC_NAMES if name in result and name in wanted}
