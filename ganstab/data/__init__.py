"""Dataset registry: `make_dataset(cfg.data, seed)` -> DataSource, keyed by `data.name`."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ganstab.data import images as _img
from ganstab.data.source import DataSource
from ganstab.data.toy import GRID25_STD, RING8_STD, grid25_centers, mixture_sampler, ring8_centers
from ganstab.config import DataConfig
from ganstab.data.stream import stream_folder
from ganstab.errors import ConfigError, DataError

FASHION_MNIST_PATH = "/usr/share/datasets/fashion-mnist"

__all__ = ["DataSource", "DATASETS", "make_dataset", "dataset_shape", "FASHION_MNIST_PATH"]


def _toy(name: str, centers: torch.Tensor, std: float, seed: int) -> DataSource:
    return DataSource(name=name, kind="points", shape=(2,), sampler=mixture_sampler(centers, std),
                      centers=centers, std=std, seed=seed)


def _resize(x: torch.Tensor, size: Optional[int]) -> torch.Tensor:
    if size is None or x.shape[-1] == size:
        return x
    mode = "area" if size < x.shape[-1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=(size, size), mode=mode, **kwargs).clamp(-1.0, 1.0)


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


def _idx(cfg, seed: int) -> DataSource:
    if cfg.path is None:
        raise DataError(f"data.name={cfg.name} needs data.path=DIR holding train-images-idx3-ubyte[.gz]")
    return _images(cfg.name, _img.read_idx_folder(cfg.path, cfg.name), cfg, seed, max_value=255.0)


def _folder(cfg, seed: int) -> DataSource:
    if cfg.path is None:
        raise DataError("data.name=folder needs data.path=DIR, a folder of images")
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
    parts = _img.read_npz(cfg.path)
    x = parts["train"]
    if x.ndim == 2:
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DataError(f"{cfg.path!r}: points must be finite numbers")
        points = torch.from_numpy(np.asarray(x, dtype=np.float32))
        if cfg.limit is not None:
            points = points[: cfg.limit]
        return DataSource(name="npz", kind="points", shape=(points.shape[1],), train=points,
                          labels=_labels(parts["labels"]), seed=seed)
    if x.ndim not in (3, 4):
        raise DataError(f"{cfg.path!r}: expected points (N, D) or images (N, H, W[, C]), got shape {x.shape}")
    if x.dtype == np.uint8:
        return _images("npz", parts, cfg, seed, max_value=255.0)
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{cfg.path!r}: images hold NaN or Inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        parts = dict(parts, train=x * 255.0)
        return _images("npz", parts, cfg, seed, max_value=255.0)
    if lo >= -1.0 and hi <= 1.0:
        parts = dict(parts, train=(x + 1.0) * 127.5)
        return _images("npz", parts, cfg, seed, max_value=255.0)
    raise DataError(f"{cfg.path!r}: float images must lie in [0, 1] or [-1, 1], found [{lo:.3g}, {hi:.3g}]; "
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
        size = data_cfg.image_size or 8
        return (1, size, size)
    if data_cfg.name in ("fashion-mnist", "mnist"):
        size = data_cfg.image_size or 28
        return (1, size, size)
    return None
