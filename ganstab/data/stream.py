"""Image folders read on demand (`data.stream=true`): a torch Dataset, a DataLoader and a DistributedSampler.

For folders too large to hold in memory. Under torchrun every rank reads only its own shard:
the epoch's order comes from `DistributedSampler(shuffle=True, seed=seed, drop_last=True)` with
`set_epoch(epoch)`, so the union of the ranks' B-sample batches at batch index i is the same set
of images as one process's 2B-sample batch i. Batches stay a pure function of (seed, batch index,
batch size, rank, world): a resumed run re-opens the loader at the batch it stopped at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ganstab.config import image_hw
from ganstab.data.archive import UNREADABLE, ImageArchive, detect_layout, image_names
from ganstab.data.images import GRAY_MODES, convert_image, list_image_files, open_image
from ganstab.data.source import DataSource, draw_rows, mix_seed, reference_rows, unreferenced_rows
from ganstab.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

#: Images the offline evaluator learns from when the data are streamed (a seeded subset).
EVALUATOR_SUBSET = 10_000


class ImageFiles(Dataset):
    """Image files decoded on demand: (channels, H, W) float32 tensors in [-1, 1] (`size` N or (H, W))."""

    def __init__(self, files: list[Path], size: Union[int, Sequence[int]], channels: int) -> None:
        self.files = list(files)
        self.size = size
        self.channels = channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        try:
            arr = convert_image(self.open(index), self.size, self.channels)
        except UNREADABLE as exc:
            raise DataError(f"{self.where(index)} could not be decoded ({type(exc).__name__}); "
                            "replace or remove the file") from None
        return torch.from_numpy(arr).permute(2, 0, 1).float().div(127.5).sub(1.0)

    def open(self, index: int) -> "Image.Image":
        """The index-th image, decoded."""
        return open_image(self.files[index])

    def where(self, index: int) -> str:
        """The index-th file, quoted, for messages."""
        return repr(str(self.files[index]))


class ArchiveImages(ImageFiles):
    """Members of a StyleGAN zip (or files of its folder) decoded on demand; each process opens the zip itself."""

    def __init__(self, path: str | Path, names: list[str], size: Union[int, Sequence[int]], channels: int) -> None:
        super().__init__([Path(n) for n in names], size, channels)
        self.path, self.names = Path(path), list(names)
        self._archive: Optional[ImageArchive] = None
        self._pid = -1

    def open(self, index: int) -> "Image.Image":
        """The index-th member, decoded (the zip is reopened in a new DataLoader worker process)."""
        if self._archive is None or self._pid != os.getpid():
            self._archive, self._pid = ImageArchive(self.path), os.getpid()
        return self._archive.open_image(self.names[index])

    def where(self, index: int) -> str:
        """The member and its zip or folder, for messages."""
        return f"{self.names[index]!r} in {str(self.path)!r}"

    def __getstate__(self) -> dict:
        return dict(self.__dict__, _archive=None, _pid=-1)


def scan_folder(folder: str | Path, limit: Optional[int], archive: Optional[ImageArchive] = None
                ) -> tuple[list, list[str], tuple[int, int], int]:
    """Files whose header Pillow reads (no decoding): (files, their modes, first file's (H, W), skipped count); with
    `archive`, the image members of a StyleGAN zip or folder by name."""
    from PIL import Image

    candidates = list_image_files(folder) if archive is None else image_names(archive.names)
    files, modes, skipped, first_hw = [], [], 0, (0, 0)
    for path in candidates:
        try:
            with (open(path, "rb") if archive is None else archive.open_file(path)) as file, Image.open(file) as img:
                mode, hw = img.mode, (img.size[1], img.size[0])
        except UNREADABLE:
            skipped += 1
            continue
        files.append(path)
        modes.append(mode)
        first_hw = first_hw if first_hw[0] else hw
        if limit is not None and len(files) >= limit:
            break
    if not files:
        raise DataError(f"image folder {str(folder)!r} holds no readable images ({skipped} files skipped)")
    return files, modes, first_hw, skipped


@dataclass
class StreamingSource(DataSource):
    """A DataSource whose images stay on disk; batches come from a DataLoader over a DistributedSampler."""

    dataset: Optional[ImageFiles] = None
    workers: int = 0
    _device: torch.device = field(default_factory=lambda: torch.device("cpu"), repr=False)
    _iter: Optional[Iterator[Any]] = field(default=None, repr=False)
    _next_key: Optional[tuple[int, int, int, int]] = field(default=None, repr=False)

    def __len__(self) -> int:
        """Number of image files."""
        return 0 if self.dataset is None else len(self.dataset)

    def to(self, device: torch.device) -> "StreamingSource":
        """Batches are moved to `device` as they are loaded (nothing is held)."""
        self._device = torch.device(device)
        return self

    @property
    def device(self) -> torch.device:
        """Device batches are delivered on."""
        return self._device

    def batches_per_epoch(self, size: int) -> int:
        """Full batches of `size` per epoch in one process."""
        return len(self) // size

    def batch(self, index: int, size: int, device: torch.device | None = None) -> Tensor:
        """The `index`-th batch of a single process (world size 1)."""
        return self.rank_batch(index, size, 0, 1, device)

    def epoch_sampler(self, epoch: int, rank: int, world: int) -> DistributedSampler:
        """This rank's shuffled shard of the files for `epoch` (DistributedSampler after set_epoch)."""
        assert self.dataset is not None
        sampler = DistributedSampler(self.dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed,
                                     drop_last=True)
        sampler.set_epoch(epoch)
        return sampler

    def rank_batch(self, index: int, size: int, rank: int, world: int, device: torch.device | None = None) -> Tensor:
        """This rank's `size` images of global batch `index` (read by the DataLoader, in order)."""
        per_epoch = len(self) // (size * world)
        if per_epoch == 0:
            raise DataError(f"image folder has {len(self)} images, fewer than one global batch of {size * world}; "
                            "lower train.batch_size or add images")
        epoch, pos = divmod(index, per_epoch)
        if self._next_key != (index, size, rank, world):  # not the batch the open loader yields next
            self._open(epoch, pos, size, rank, world)
        try:
            batch = next(self._iter)
        except Exception as exc:  # a worker re-raises with its traceback in the message: keep one line
            raise DataError(_worker_message(exc)) from None
        if pos + 1 < per_epoch:
            self._next_key = (index + 1, size, rank, world)
        else:  # the epoch is done: the next call opens the next epoch's loader
            self._next_key, self._iter = None, None
        target = device if device is not None else self._device
        return batch.to(target, non_blocking=True)

    def _open(self, epoch: int, pos: int, size: int, rank: int, world: int) -> None:
        """A DataLoader over the rest of `epoch` from batch `pos` on."""
        order = list(self.epoch_sampler(epoch, rank, world))
        per_epoch = len(order) // size
        batches = [order[i * size:(i + 1) * size] for i in range(pos, per_epoch)]
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.workers,
                            pin_memory=self._device.type == "cuda")
        self._iter = iter(loader)

    def evaluator_data(self) -> tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        """A seeded subset of at most EVALUATOR_SUBSET images, loaded for the offline evaluator."""
        return self._subset(EVALUATOR_SUBSET, salt=4), None, None, None

    def reference(self, split: str, n: int, val_n: Optional[int] = None) -> Tensor:
        """The real images of a reference split: `reference_rows` of a seeded order of the folder's images."""
        order = self._order(salt=3)
        return self._load(order[reference_rows(len(order), split, n, val_n)])

    def unreferenced(self, n: int, val_n: Optional[int], count: int, gen: torch.Generator) -> Optional[Tensor]:
        """Up to `count` images of the references' seeded order in neither reference split, loaded (None when fewer
        than 2 are left)."""
        order = self._order(salt=3)
        rows = unreferenced_rows(len(order), n, val_n)
        if len(rows) < 2:
            return None
        return self._load(order[draw_rows(rows, count, gen)])

    def reference_labels(self, split: str, n: int, val_n: Optional[int] = None) -> Optional[Tensor]:
        """None: a streamed folder carries no labels."""
        return None

    def _order(self, salt: int) -> Tensor:
        gen = torch.Generator().manual_seed(mix_seed(self.seed, 0, salt))
        return torch.randperm(len(self), generator=gen)

    def _subset(self, n: int, salt: int) -> Tensor:
        return self._load(self._order(salt)[:n])

    def _load(self, rows: Tensor) -> Tensor:
        assert self.dataset is not None
        return torch.stack([self.dataset[i] for i in rows.tolist()])


def _worker_message(exc: Exception) -> str:
    """The original one-line message of an exception re-raised from a DataLoader worker."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, DataError) and len(lines) == 1:
        return lines[0]
    for line in reversed(lines):
        if "DataError: " in line:
            return line.split("DataError: ", 1)[1]
    return f"data loading failed in a DataLoader worker: {lines[-1] if lines else type(exc).__name__}"


def stream_folder(data_cfg: Any, seed: int) -> StreamingSource:
    """A StreamingSource over `data.path` (channels and size from the file headers when not given)."""
    archive = ImageArchive(data_cfg.path) if detect_layout(data_cfg.path) == "stylegan" else None
    try:
        files, modes, first_hw, skipped = scan_folder(data_cfg.path, data_cfg.limit, archive)
    finally:
        if archive is not None:
            archive.close()
    channels = data_cfg.channels or (1 if all(m in GRAY_MODES for m in modes) else 3)
    size = image_hw(data_cfg.image_size or first_hw)
    dataset = ImageFiles(files, size, channels) if archive is None else ArchiveImages(data_cfg.path, files, size,
                                                                                      channels)
    source = StreamingSource(name="folder", kind="image", shape=(channels, *size), seed=seed,
                             dataset=dataset, workers=data_cfg.workers)
    if skipped:
        source.notes.append(f"data: skipped {skipped} file{'s' if skipped != 1 else ''} in {data_cfg.path} that "
                            f"are not readable images; streaming {len(files)} images")
    return source


__all__ = ["ImageFiles", "ArchiveImages", "StreamingSource", "stream_folder", "scan_folder", "EVALUATOR_SUBSET"]
