"""Write any dataset ganstab reads in the StyleGAN family's format (stylegan2-ada, stylegan3, R3GAN, projected-gan,
stylegan-xl): `NNNNN/imgNNNNNNNN.png` (uncompressed 8-bit PNGs, 1000 per folder) plus `dataset.json`, into a
folder or an uncompressed zip, written under a temporary name and renamed when complete (rundir.atomic_write_via).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import torch

from ganstab.config import DataConfig
from ganstab.data import DATASETS, make_dataset
from ganstab.data.archive import (LABELS_FILE, UNREADABLE, ImageArchive, check_held_out_classes, detect_layout,
                                  image_names, stylegan_labels, studiogan_held_out)
from ganstab.data.images import GRAY_MODES, class_of, convert_mode, list_image_files, open_image
from ganstab.errors import DataError, UsageError
from ganstab.rundir import atomic_write_via
from ganstab.sampling import to_uint8

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["TRANSFORMS", "FILTERS", "SourceImages", "PrepareResult", "archive_name", "check_dest", "fit_image",
           "open_source", "prepare_dataset"]

TRANSFORMS = ("resize", "center-crop", "center-crop-wide")
FILTERS = ("lanczos", "bicubic", "bilinear", "box")  # Pillow resampling filters; lanczos is dataset_tool's default


@dataclass
class SourceImages:
    """Images to write, one at a time: (name for messages, Pillow image or None when unreadable, label or None)."""

    description: str
    total: int
    items: Iterator[tuple[str, Optional["Image.Image"], Optional[int]]]
    labelled: bool
    channels: Optional[int] = None  # known in advance for in-memory data
    close: Callable[[], None] = lambda: None


@dataclass
class PrepareResult:
    """What `prepare_dataset` wrote."""

    dest: Path
    written: int
    resolution: int
    channels: int
    classes: int  # 0 when unlabelled
    skipped: list[str] = field(default_factory=list)
    source: str = ""


def archive_name(index: int) -> str:
    """The StyleGAN layout's name of the index-th image: '00012/img00012345.png' (1000 images per folder)."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def _resample(name: str) -> int:
    from PIL import Image

    return {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "box": Image.BOX}[name]


def fit_image(img: "Image.Image", resolution: int, transform: str, resize_filter: str) -> "Image.Image":
    """An image made resolution x resolution: `resize` scales (aspect not kept), `center-crop` keeps the central
    square, `center-crop-wide` keeps the full width (centre rows of a tall image, black bars around a wide one)."""
    from PIL import Image

    w, h = img.size
    resample = _resample(resize_filter)
    if transform == "center-crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    elif transform == "center-crop-wide":
        height = max(1, round(resolution * h / w))
        scaled = img.resize((resolution, height), resample) if (resolution, height) != (w, h) else img
        if height >= resolution:
            top = (height - resolution) // 2
            return scaled.crop((0, top, resolution, top + resolution))
        canvas = Image.new(img.mode, (resolution, resolution), 0)
        canvas.paste(scaled, (0, (resolution - height) // 2))
        return canvas
    elif transform != "resize":
        raise UsageError(f"--transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
    if img.size == (resolution, resolution):
        return img
    return img.resize((resolution, resolution), resample)


def _tensor_images(x: torch.Tensor, labels: Optional[torch.Tensor], limit: Optional[int]
                   ) -> Iterator[tuple[str, "Image.Image", Optional[int]]]:
    """Held float images in [-1, 1] back to 8-bit Pillow images, row by row."""
    from PIL import Image

    count = len(x) if limit is None else min(len(x), limit)
    for i in range(count):
        arr = to_uint8(x[i:i + 1])[0]  # the one pixel rule of everything ganstab writes
        img = Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")
        yield f"image {i}", img, None if labels is None else int(labels[i])


def _held(name: str, path: Optional[str], split: str, limit: Optional[int]) -> SourceImages:
    """A dataset from the registry (digits, fashion-mnist, idx, npz, ...) held in memory."""
    source = make_dataset(DataConfig(name=name, path=path), seed=0)
    if source.kind != "image":
        raise DataError(f"{name}{' ' + path if path else ''} holds 2-D points, not images; "
                        "'ganstab data prepare' writes image datasets")
    x, y = (source.train, source.labels) if split == "train" else (source.test, source.test_labels)
    if x is None:
        raise UsageError(f"--split test: {name} has no held-out test split; use --split train")
    total = len(x) if limit is None else min(len(x), limit)
    where = name if path is None else f"{name} {path}"
    return SourceImages(description=where, total=total, items=_tensor_images(x, y, limit), labelled=y is not None,
                        channels=int(x.shape[1]))


def _decoded(names: list[str], open_one: Callable[[str], "Image.Image"], label_of: Callable[[str], Optional[int]]
             ) -> Iterator[tuple[str, Optional["Image.Image"], Optional[int]]]:
    """(name, image or None when it does not decode, label) for each name, decoding one file at a time."""
    for name in names:
        try:
            img = open_one(name)
        except UNREADABLE:
            img = None
        yield name, img, label_of(name)


def _file_items(files: list[Path], root: Path, classes: Optional[dict[str, int]]
                ) -> Iterator[tuple[str, Optional["Image.Image"], Optional[int]]]:
    """The files under `root`, named relative to it, labelled by their class folder when `classes` is given."""
    names = [f.relative_to(root).as_posix() for f in files]
    return _decoded(names, lambda name: open_image(root / name),
                    lambda name: None if classes is None else classes[class_of(root / name, root) or ""])


def _class_index(files: list[Path], root: Path) -> Optional[dict[str, int]]:
    """Sub-folder -> class index (sorted names) when every file sits in a sub-folder, else None."""
    found = [class_of(f, root) for f in files]
    if any(c is None for c in found):
        return None
    return {name: k for k, name in enumerate(sorted(set(found)))}


def _files_source(path: Path, layout: str, split: str) -> SourceImages:
    """Image files read one at a time: a StyleGAN zip/folder, a StudioGAN folder or a plain (class) folder."""
    if layout == "stylegan":
        if split != "train":
            raise UsageError(f"--split test: a StyleGAN dataset ({path}) has no held-out split; use --split train")
        archive = ImageArchive(path)
        names = image_names(archive.names)
        labels = stylegan_labels(archive, names)
        items = _decoded(names, archive.open_image, lambda name: None if labels is None else labels[name])
        return SourceImages(description=str(path), total=len(names), items=items, labelled=labels is not None,
                            close=archive.close)
    if layout == "studiogan":
        train_files = list_image_files(path / "train")
        train_classes = _class_index(train_files, path / "train")
        folder = path / "train" if split == "train" else studiogan_held_out(path)
        if folder is None:
            raise UsageError(f"--split test: {path} has no valid/ or test/ folder; use --split train")
        files = train_files if split == "train" else list_image_files(folder)
        classes = train_classes
        if classes is not None and split != "train":
            check_held_out_classes(folder, (class_of(f, folder) for f in files), classes)
        return SourceImages(description=str(folder), total=len(files), items=_file_items(files, folder, classes),
                            labelled=classes is not None)
    if split != "train":
        raise UsageError(f"--split test: a folder of images ({path}) has no held-out split; use --split train")
    files = list_image_files(path)
    classes = _class_index(files, path)
    if classes is not None and len(classes) < 2:
        classes = None  # one sub-folder is not a class label (as data.name=folder reads it)
    return SourceImages(description=str(path), total=len(files), items=_file_items(files, path, classes),
                        labelled=classes is not None)


def open_source(src: str, name: Optional[str] = None, split: str = "train", limit: Optional[int] = None
                ) -> SourceImages:
    """The images of SRC: a data.name (digits, fashion-mnist, ...) or a path (a .zip, a folder, a .npz, a folder of
    IDX files), with `name` forcing the data.name a path is read as."""
    if split not in ("train", "test"):
        raise UsageError(f"--split must be train or test, got {split!r}")
    path = Path(src)
    if name is None and src in DATASETS and not path.exists():
        name, path_arg = src, None
    elif not path.exists():
        raise UsageError(f"SRC {src!r} is neither a data.name ({', '.join(DATASETS)}) nor an existing file or "
                         "folder; pass one of them")
    else:
        path_arg = str(path)
    if name is None:
        if path.suffix.lower() == ".npz" and path.is_file():
            name = "npz"
        elif path.is_dir() and any((path / f"train-images-idx3-ubyte{gz}").is_file() for gz in ("", ".gz")):
            name = "idx"
        else:
            name = "folder"
    if name not in DATASETS:
        raise UsageError(f"--name {name!r} is not a data.name; known datasets: {', '.join(DATASETS)}")
    if name == "folder" and path_arg is not None:  # image files, read one at a time
        return _files_source(path, detect_layout(path), split)
    return _held(name, path_arg, split, limit)


def _dest_writer(tmp: Path, is_zip: bool) -> tuple[Callable[[str, bytes], None], Callable[[], None]]:
    """(write(name, bytes), close()) for a folder or an uncompressed zip under the temporary path."""
    if is_zip:
        archive = zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED)
        return archive.writestr, archive.close

    def write(name: str, data: bytes) -> None:
        target = tmp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    tmp.mkdir()
    return write, lambda: None


def _png(img: "Image.Image") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="png", compress_level=0)  # uncompressed, as dataset_tool.py writes them
    return buffer.getvalue()


def check_dest(dest: str | Path) -> None:
    """DEST must be new and its folder must exist (UsageError otherwise): nothing is ever overwritten."""
    dest = Path(dest)
    if dest.exists():
        raise UsageError(f"DEST {str(dest)!r} already exists; choose a new path or remove it first")
    if not dest.parent.is_dir():
        raise UsageError(f"the folder of DEST, {str(dest.parent)!r}, does not exist; create it first")


def prepare_dataset(src: SourceImages, dest: str | Path, resolution: Optional[int] = None, transform: str = "resize",
                    resize_filter: str = "lanczos", max_images: Optional[int] = None, channels: Optional[int] = None,
                    progress: Callable[[int, int], None] = lambda done, total: None) -> PrepareResult:
    """Write `src` to `dest` (a zip when it ends in .zip, else a folder) in the StyleGAN layout; every image is
    decoded once, unreadable files are skipped and listed; `dest` appears only when complete."""
    dest = Path(dest)
    check_dest(dest)
    if transform not in TRANSFORMS:
        raise UsageError(f"--transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
    if resize_filter not in FILTERS:
        raise UsageError(f"--filter must be one of {', '.join(FILTERS)}, got {resize_filter!r}")
    if transform != "resize" and resolution is None:
        raise UsageError(f"--transform {transform} needs --resolution N (the side of the square output images)")
    auto_channels = channels is None and src.channels is None
    state = {"channels": channels or src.channels, "resolution": resolution, "first": ""}
    written, skipped, labels = 0, [], []
    total = src.total if max_images is None else min(src.total, max_images)

    def write_all(tmp: Path) -> None:
        nonlocal written
        write, close = _dest_writer(tmp, dest.suffix.lower() == ".zip")
        try:
            processed = 0
            for name, img, label in src.items:
                if max_images is not None and written >= max_images:
                    break
                processed += 1
                if img is None:
                    skipped.append(name)
                else:
                    out = _checked(img, name, state, native=resolution is None, auto_channels=auto_channels)
                    fname = archive_name(written)
                    write(fname, _png(fit_image(out, state["resolution"], transform, resize_filter)))
                    labels.append([fname, label])
                    written += 1
                progress(min(processed, total), total)
            if written == 0:
                raise DataError(f"{src.description} holds no readable images ({len(skipped)} files skipped)")
            write(LABELS_FILE, json.dumps({"labels": labels if src.labelled else None}).encode("utf-8"))
            if dest.exists():
                raise UsageError(f"DEST {str(dest)!r} appeared while the dataset was written; nothing was replaced, "
                                 "choose a new path")
        finally:
            close()

    try:
        atomic_write_via(dest, write_all)
    finally:
        src.close()
    classes = 1 + max(label for _, label in labels) if src.labelled else 0
    return PrepareResult(dest=dest, written=written, resolution=int(state["resolution"]),
                         channels=int(state["channels"]), classes=classes, skipped=skipped, source=src.description)


def _checked(img: "Image.Image", name: str, state: dict, native: bool, auto_channels: bool) -> "Image.Image":
    """The image in the dataset's mode; the first image sets channels (and the resolution without --resolution)."""
    if not state["first"]:
        state["first"] = name
        state["channels"] = state["channels"] or (1 if img.mode in GRAY_MODES else 3)
        state["resolution"] = state["resolution"] or _native_resolution(img, name)
    elif auto_channels and state["channels"] == 1 and img.mode not in GRAY_MODES:
        raise DataError(f"{name} is a colour image but the first image, {state['first']}, is gray; pass --channels 3 "
                        "to keep colour (or --channels 1 to store every image gray)")
    if native and img.size != (state["resolution"],) * 2:
        raise DataError(f"{name} is {img.size[0]}x{img.size[1]} but the first image, {state['first']}, is "
                        f"{state['resolution']}x{state['resolution']}; pass --resolution N to resize every image to "
                        "one size")
    return convert_mode(img, state["channels"])


def _native_resolution(img: "Image.Image", name: str) -> int:
    """Without --resolution the first image sets it, and it must be square."""
    w, h = img.size
    if w != h:
        raise DataError(f"{name} is {w}x{h}, not square; pass --resolution N (with --transform center-crop or "
                        "center-crop-wide to keep the aspect)")
    return w
