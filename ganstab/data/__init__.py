"""Dataset registry: `make_dataset(cfg.data, seed)` -> DataSource, keyed by `data.name`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ganstab.data import images as _img
from ganstab.data.archive import ArchiveData, detect_layout, read_studiogan, read_stylegan, skipped_note
from ganstab.data.source import REFERENCE_SPLITS, DataSource, draw_rows, mix_seed, reference_rows, unreferenced_rows
from ganstab.data.stacked import (STACK_CHANNELS, STACKED_TEST_SEED, STACKED_TEST_SIZE, STACKED_TRAIN_SIZE,
                                  stack_channels)
from ganstab.data.toy import GRID25_STD, RING8_STD, grid25_centers, mixture_sampler, ring8_centers
from ganstab.config import DataConfig, image_hw
from ganstab.data.stream import stream_folder
from ganstab.errors import ConfigError, DataError, first_line

FASHION_MNIST_PATH = "/usr/share/datasets/fashion-mnist"

#: Data sets found without data.path: `ganstab eval --samples` takes them by name (their test split and evaluator)
NAMED_SETS = ("digits", "fashion-mnist", "stacked-fashion-mnist", "ring8", "grid25")

__all__ = ["DataSource", "REFERENCE_SPLITS", "reference_rows", "unreferenced_rows", "draw_rows", "DATASETS", "make_dataset", "dataset_shape",
           "FASHION_MNIST_PATH", "NAMED_SETS", "ReferenceSource", "read_sample_set", "with_reference"]


def _toy(name: str, centers: torch.Tensor, std: float, seed: int) -> DataSource:
    return DataSource(name=name, kind="points", shape=(2,), sampler=mixture_sampler(centers, std),
                      centers=centers, std=std, seed=seed)


def _resize(x: torch.Tensor, size: Union[int, list[int], None]) -> torch.Tensor:
    """Images resized to data.image_size (N or [H, W]): area when shrinking both sides, else bilinear."""
    hw = image_hw(size)
    if hw is None or tuple(x.shape[-2:]) == hw:
        return x
    mode = "area" if hw[0] <= x.shape[-2] and hw[1] <= x.shape[-1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=hw, mode=mode, **kwargs).clamp(-1.0, 1.0)


def _labels(arr: Optional[np.ndarray]) -> Optional[torch.Tensor]:
    return None if arr is None else torch.from_numpy(np.asarray(arr, dtype=np.int64))


def _images(name: str, parts: dict, data_cfg, seed: int, max_value: float) -> DataSource:
    train = _resize(_img.to_unit_range(parts["train"], max_value), data_cfg.image_size)
    test = parts.get("test")
    test_t = None if test is None else _resize(_img.to_unit_range(test, max_value), data_cfg.image_size)
    if test_t is not None and tuple(test_t.shape[1:]) != tuple(train.shape[1:]):
        c, h, w = train.shape[1:]
        tc, th, tw = test_t.shape[1:]
        raise DataError(f"{name}: the test split holds {tc}x{th}x{tw} images but the training split {c}x{h}x{w}; "
                        f"set data.image_size={w} to bring both to one size, or use test files of the training size")
    labels = _labels(parts.get("labels"))
    full_train, full_labels = None, None
    if data_cfg.limit is not None and data_cfg.limit < len(train):
        full_train, full_labels = train, labels
        train = train[: data_cfg.limit]
        labels = None if labels is None else labels[: data_cfg.limit]
    return DataSource(name=name, kind="image", shape=tuple(train.shape[1:]), train=train, labels=labels,
                      test=test_t, test_labels=_labels(parts.get("test_labels")), seed=seed,
                      full_train=full_train, full_labels=full_labels)


def _ring8(cfg, seed: int) -> DataSource:
    return _toy("ring8", ring8_centers(), RING8_STD, seed)


def _grid25(cfg, seed: int) -> DataSource:
    return _toy("grid25", grid25_centers(), GRID25_STD, seed)


def _digits(cfg, seed: int) -> DataSource:
    return _images("digits", _img.read_digits(), cfg, seed, max_value=16.0)


def _fashion(cfg, seed: int) -> DataSource:
    parts = _img.read_idx_folder(cfg.path or FASHION_MNIST_PATH, "fashion-mnist")
    return _images("fashion-mnist", parts, cfg, seed, max_value=255.0)


def _stacked_fashion(cfg, seed: int) -> DataSource:
    """Fashion-MNIST stacked three deep: data.limit (default 60,000) training images drawn with the run's seed
    from the training split, 10,000 test images drawn with one fixed seed from the test split."""
    base = _fashion(cfg.model_copy(update={"limit": None}), seed)
    assert base.train is not None
    classes = max(base.num_classes, 0 if base.test_labels is None else int(base.test_labels.max()) + 1) or 10
    size = cfg.limit or STACKED_TRAIN_SIZE
    draw = torch.Generator().manual_seed(mix_seed(seed, 0, 4))  # salt 4: 1-3 are batches, epochs, eval reference
    train, labels = stack_channels(base.train, base.labels, size, draw, classes=classes)
    test, test_labels = None, None
    if base.test is not None:
        test, test_labels = stack_channels(base.test, base.test_labels, STACKED_TEST_SIZE,
                                           torch.Generator().manual_seed(STACKED_TEST_SEED), classes=classes)
    return DataSource(name="stacked-fashion-mnist", kind="image", shape=tuple(train.shape[1:]), train=train,
                      labels=labels, test=test, test_labels=test_labels, seed=seed, channel_source=base)


def _idx(cfg, seed: int) -> DataSource:
    if cfg.path is None:
        raise DataError(f"data.name={cfg.name} needs data.path=DIR holding train-images-idx3-ubyte[.gz]")
    return _images(cfg.name, _img.read_idx_folder(cfg.path, cfg.name), cfg, seed, max_value=255.0)


def _archive(cfg, seed: int, layout: str) -> DataSource:
    """A StyleGAN-family zip/folder (labels from dataset.json) or a StudioGAN train/valid folder."""
    if cfg.stream and layout == "stylegan":
        return stream_folder(cfg, seed)
    if cfg.stream:
        raise DataError(f"data.stream=true streams a folder of images or a StyleGAN zip, not StudioGAN's train/ "
                        f"and valid/ ({cfg.path}); remove data.stream")
    read = read_stylegan if layout == "stylegan" else read_studiogan
    found: ArchiveData = read(cfg.path, cfg.image_size, cfg.channels)
    parts = {"train": found.images, "labels": found.labels, "test": found.test, "test_labels": found.test_labels}
    source = _images(cfg.name, parts, cfg, seed, max_value=255.0)
    source.class_names = found.class_names
    if found.skipped:
        source.notes.append(skipped_note(found.skipped, cfg.path, len(found.images)))
    return source


def _folder(cfg, seed: int) -> DataSource:
    if cfg.path is None:
        raise DataError("data.name=folder needs data.path=DIR, a folder of images")
    layout = detect_layout(cfg.path)
    if layout != "images":
        return _archive(cfg, seed, layout)
    if cfg.stream:
        return stream_folder(cfg, seed)
    arr, skipped, labels, names = _img.read_labelled_image_folder(cfg.path, cfg.image_size, cfg.channels)
    source = _images("folder", {"train": arr, "labels": labels}, cfg, seed, max_value=255.0)
    source.class_names = names
    if skipped:
        source.notes.append(f"data: skipped {skipped} file{'s' if skipped != 1 else ''} in {cfg.path} that "
                            f"are not readable images; using {len(source)} images")
    return source


def _npz(cfg, seed: int) -> DataSource:
    if cfg.path is None:
        raise DataError("data.name=npz needs data.path=FILE.npz")
    return _array_source(_img.read_npz(cfg.path), cfg.path, cfg, seed)


def _array_source(parts: dict, where: str, cfg, seed: int) -> DataSource:
    """Points (N, D) or images (N, H, W[, C]) / (N, C, H, W), uint8 or floats in [0, 1] / [-1, 1], as a DataSource."""
    x = parts["train"]
    if x.ndim == 2:  # the readers (check_dtype) let only booleans, integers and real floats through
        if not np.isfinite(x).all():
            raise DataError(f"{where!r}: points must be finite numbers")
        if x.size and np.abs(x).max() > np.finfo(np.float32).max:
            raise DataError(f"{where!r}: points reach {np.abs(x).max():.3g}, beyond float32's range "
                            "(about 3.4e38); rescale them")
        points = torch.from_numpy(np.asarray(x, dtype=np.float32))
        if cfg.limit is not None:
            points = points[: cfg.limit]
        return DataSource(name="npz", kind="points", shape=(points.shape[1],), train=points,
                          labels=_labels(parts["labels"]), seed=seed)
    if x.ndim not in (3, 4):
        raise DataError(f"{where!r}: expected points (N, D) or images (N, H, W[, C]), got shape {x.shape}")
    if x.dtype == np.uint8:
        return _images("npz", parts, cfg, seed, max_value=255.0)
    if not np.isfinite(x).all():
        raise DataError(f"{where!r}: images hold NaN or Inf values")
    lo, hi = float(x.min()), float(x.max())  # before the cast: a float64 beyond float32's range is out of range here
    x = np.asarray(x, dtype=np.float32)
    if lo >= 0.0 and hi <= 1.0:
        parts = dict(parts, train=x * 255.0)
        return _images("npz", parts, cfg, seed, max_value=255.0)
    if lo >= -1.0 and hi <= 1.0:
        parts = dict(parts, train=(x + 1.0) * 127.5)
        return _images("npz", parts, cfg, seed, max_value=255.0)
    kind = "float" if parts["train"].dtype.kind == "f" else str(parts["train"].dtype)
    raise DataError(f"{where!r}: {kind} images must lie in [0, 1] or [-1, 1], found [{lo:.3g}, {hi:.3g}]; "
                    "store uint8 or rescale")


DATASETS: dict[str, Callable] = {
    "ring8": _ring8,
    "grid25": _grid25,
    "digits": _digits,
    "fashion-mnist": _fashion,
    "mnist": _idx,
    "idx": _idx,
    "folder": _folder,
    "npz": _npz,
    "stacked-fashion-mnist": _stacked_fashion,
}


def make_dataset(data_cfg: DataConfig, seed: int = 0) -> DataSource:
    """Build the DataSource named by `data_cfg.name` (unknown name -> ConfigError listing the known ones)."""
    builder = DATASETS.get(data_cfg.name)
    if builder is None:
        raise ConfigError(f"unknown data.name {data_cfg.name!r}; known datasets: {', '.join(DATASETS)}")
    source = builder(data_cfg, seed)
    if source.kind == "image" and len(source) == 0:
        raise DataError(f"dataset {data_cfg.name} has no training images")
    return source


def dataset_shape(data_cfg: DataConfig) -> Optional[tuple[int, ...]]:
    """The sample shape of a dataset known without reading files (None when files must be read)."""
    if data_cfg.name in ("ring8", "grid25"):
        return (2,)
    if data_cfg.name == "digits":
        return (1, *(image_hw(data_cfg.image_size) or (8, 8)))
    if data_cfg.name in ("fashion-mnist", "mnist"):
        return (1, *(image_hw(data_cfg.image_size) or (28, 28)))
    if data_cfg.name == "stacked-fashion-mnist":
        return (STACK_CHANNELS, *(image_hw(data_cfg.image_size) or (28, 28)))
    return None


@dataclass
class ReferenceSource(DataSource):
    """A data set's evaluator (its `evaluator_data`, hence its cache entry) with another set of real images as the
    evaluation reference (`test`): `ganstab eval --samples A --against B --data NAME`."""

    evaluator_source: Optional[DataSource] = field(default=None, repr=False)

    def evaluator_data(self) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor],
                                      Optional[torch.Tensor]]:
        """The named data set's (train, labels, test, test labels), on which its evaluator network learns."""
        assert self.evaluator_source is not None
        return self.evaluator_source.evaluator_data()


def with_reference(named: DataSource, reference: torch.Tensor) -> ReferenceSource:
    """`named`'s evaluator with `reference` (real images shaped like named's) as the evaluation reference."""
    return ReferenceSource(name=named.name, kind=named.kind, shape=named.shape, train=named.train,
                           labels=named.labels, test=reference, seed=named.seed, full_train=named.full_train,
                           full_labels=named.full_labels, channel_source=named.channel_source,
                           evaluator_source=named)


def read_sample_set(path: Union[str, Path]) -> DataSource:
    """A set of samples to score, named "samples": a folder of images (as `ganstab sample --format folder` writes),
    an .npy or an .npz array (N, C, H, W) / (N, H, W[, C]) of uint8 or floats in [0, 1] / [-1, 1], or points (N, D)."""
    where = str(path)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{where!r} does not exist; pass a folder of images or a .npy/.npz file")
    if path.is_dir():
        source = _folder(DataConfig(name="folder", path=where), 0)
    elif path.suffix == ".npz":
        source = _npz(DataConfig(name="npz", path=where), 0)
    elif path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"cannot read {where!r} as .npy ({first_line(exc)}); save it with "
                            "np.save") from None
        if not isinstance(array, np.ndarray):
            array.close()
            raise DataError(f"{where!r} is an .npz archive named .npy; rename it to .npz")
        _img.check_dtype(array, "x", where, f"'x' {_img.IMAGES_AS}")  # the rule read_npz applies to .npz arrays
        source = _array_source({"train": array, "labels": None}, where, DataConfig(name="npz"), 0)
    else:
        raise DataError(f"{where!r} is neither a folder nor a .npy/.npz file; pass a folder of images or an array")
    if len(source) == 0:
        raise DataError(f"{where!r} holds no samples; pass a non-empty set")
    source.name = "samples"
    return source
