"""Data sources: batches as a pure function of the batch index, so resume needs no stored data state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor


#: The two reference splits an evaluation scores against: validation steers and selects, test only reports
REFERENCE_SPLITS = ("validation", "test")


def reference_rows(total: int, split: str, n: int, val_n: Optional[int] = None) -> Tensor:
    """Rows of a pool of `total` real samples in a reference split: validation is the last
    min(val_n, total // 2) rows, test the first min(n, total - that) rows, so the two never share a row
    (val_n None: n)."""
    if split not in REFERENCE_SPLITS:
        raise ValueError(f"reference split must be one of {', '.join(REFERENCE_SPLITS)}, got {split!r}")
    held = min(n if val_n is None else val_n, total // 2)
    if split == "validation":
        return torch.arange(total - held, total)
    return torch.arange(0, min(n, total - held))


def unreferenced_rows(total: int, n: int, val_n: Optional[int] = None) -> Tensor:
    """Rows of a pool of `total` real samples in neither reference split (`reference_rows`): those after the
    test rows and before the validation rows, possibly none."""
    first = len(reference_rows(total, "test", n, val_n))
    return torch.arange(first, total - len(reference_rows(total, "validation", n, val_n)))


def draw_rows(rows: Tensor, count: int, gen: torch.Generator) -> Tensor:
    """Up to `count` of `rows`, a seeded draw by `gen`, in increasing order."""
    return rows[torch.randperm(len(rows), generator=gen)[:count].sort().values]


def mix_seed(seed: int, index: int, salt: int) -> int:
    """A 63-bit seed derived from (seed, index, salt) without collisions for small values."""
    value = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + salt * 0x94D049BB133111EB)
    return value & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class DataSource:
    """Training data: either a held tensor (images, points) or a sampler of fresh points.

    `batch(index, size)` is deterministic in (seed, index, size): tensor data is visited in a fresh
    random permutation every epoch (the last partial batch is dropped), and sampled data draws
    from a generator seeded by the batch index.
    """

    name: str
    kind: str  # "image" or "points"
    shape: tuple[int, ...]
    train: Optional[Tensor] = None
    labels: Optional[Tensor] = None
    test: Optional[Tensor] = None
    test_labels: Optional[Tensor] = None
    sampler: Optional[Callable[[int, torch.Generator], Tensor]] = None
    centers: Optional[Tensor] = None
    std: float = 0.0
    seed: int = 0
    notes: list = field(default_factory=list)  # one-line remarks for the user (e.g. skipped files)
    class_names: Optional[list] = None  # names of the label classes (sub-folders of an image folder), when known
    # data.limit: the whole training split (CPU), on which the evaluator network still learns
    full_train: Optional[Tensor] = field(default=None, repr=False)
    full_labels: Optional[Tensor] = field(default=None, repr=False)
    # stacked data: the 1-channel data set each channel is drawn from (its evaluator classifies every channel)
    channel_source: Optional["DataSource"] = field(default=None, repr=False)
    _perm_cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        """Number of held training samples (0 for sampled data)."""
        return 0 if self.train is None else int(self.train.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of label classes (0 when unlabelled)."""
        return 0 if self.labels is None else int(self.labels.max().item()) + 1

    def to(self, device: torch.device) -> "DataSource":
        """Move held tensors to `device` (small datasets live on the device, no DataLoader)."""
        for name in ("train", "labels", "test", "test_labels", "centers"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        self._perm_cache.clear()
        return self

    @property
    def device(self) -> torch.device:
        """Device of the held tensors (CPU for sampled data)."""
        return self.train.device if self.train is not None else torch.device("cpu")

    def batches_per_epoch(self, size: int) -> int:
        """Full batches per epoch for held data (the last partial batch is dropped)."""
        if self.train is None:
            return 0
        return len(self) // size

    def batch(self, index: int, size: int, device: torch.device | None = None) -> Tensor:
        """The `index`-th training batch of `size` samples."""
        if self.sampler is not None:
            gen = torch.Generator().manual_seed(mix_seed(self.seed, index, 1))
            out = self.sampler(size, gen)
            return out.to(device) if device is not None else out
        assert self.train is not None
        out = self.train.index_select(0, self.batch_indices(index, size))
        return out.to(device) if device is not None else out

    def batch_indices(self, index: int, size: int) -> Tensor:
        """Rows of the held data in the `index`-th batch: a fresh permutation per epoch, last partial batch dropped."""
        assert self.train is not None
        per_epoch = self.batches_per_epoch(size)
        if per_epoch == 0:
            raise ValueError(f"dataset {self.name} has {len(self)} samples, fewer than one batch of {size}")
        epoch, pos = divmod(index, per_epoch)
        perm = self._perm_cache.get((epoch, size))
        if perm is None:
            gen = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 2))
            perm = torch.randperm(len(self), generator=gen).to(self.train.device)
            self._perm_cache.clear()
            self._perm_cache[(epoch, size)] = perm
        return perm[pos * size:(pos + 1) * size]

    def rank_labels(self, index: int, size: int, rank: int, world: int, device: torch.device | None = None) -> Tensor:
        """The labels of `rank_batch(index, size, rank, world)`, row for row."""
        if self.labels is None:
            raise ValueError(f"dataset {self.name} has no labels")
        labels = self.labels.index_select(0, self.batch_indices(index, size * world))[rank * size:(rank + 1) * size]
        return labels.to(device) if device is not None else labels

    def rank_batch(self, index: int, size: int, rank: int, world: int, device: torch.device | None = None) -> Tensor:
        """This rank's `size` samples of the `index`-th global batch of size * world (held data: a slice)."""
        batch = self.batch(index, size * world, device)
        return batch[rank * size:(rank + 1) * size]

    def evaluator_data(self) -> tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        """(train, labels, test, test labels) on the CPU for the offline evaluator network (with data.limit the
        whole training split: a limited run is scored by the same evaluator as a full one)."""
        assert self.train is not None
        train = self.full_train if self.full_train is not None else self.train
        labels = self.full_labels if self.full_train is not None else self.labels
        cpu = [None if t is None else t.cpu() for t in (train, labels, self.test, self.test_labels)]
        return cpu[0], cpu[1], cpu[2], cpu[3]

    def reference(self, split: str, n: int, val_n: Optional[int] = None) -> Tensor:
        """The real samples of a reference split (`reference_rows` of the test split when there is one, else of
        the training split; sampled data: fresh samples, n for test and val_n for validation, each split its
        own seed)."""
        if self.sampler is not None:
            rows = reference_rows(2 * max(n, val_n or n), split, n, val_n)  # checks the split's name
            gen = torch.Generator().manual_seed(mix_seed(self.seed, 0, 3 if split == "test" else 5))
            return self.sampler(len(rows), gen)
        pool = self.test if self.test is not None else self.train
        assert pool is not None
        return pool.index_select(0, reference_rows(len(pool), split, n, val_n).to(pool.device))

    def unreferenced(self, n: int, val_n: Optional[int], count: int, gen: torch.Generator) -> Optional[Tensor]:
        """Up to `count` real samples of the references' pool in neither reference split (`unreferenced_rows`, a
        seeded draw by `gen`); None for sampled data or when fewer than 2 are left."""
        if self.sampler is not None:
            return None
        pool = self.test if self.test is not None else self.train
        assert pool is not None
        rows = unreferenced_rows(len(pool), n, val_n)
        if len(rows) < 2:
            return None
        return pool.index_select(0, draw_rows(rows, count, gen).to(pool.device))

    def reference_labels(self, split: str, n: int, val_n: Optional[int] = None) -> Optional[Tensor]:
        """The labels of `reference(split, n, val_n)`, row for row (None when unlabelled or sampled)."""
        if self.sampler is not None:
            return None
        pool = self.test_labels if self.test is not None else self.labels
        if pool is None:
            return None
        return pool.index_select(0, reference_rows(len(pool), split, n, val_n).to(pool.device))
