"""Image readers: IDX (MNIST/Fashion-MNIST), scikit-learn digits, image folders and .npz files.

Every reader returns uint8 or float arrays; `to_unit_range` maps them to float tensors in [-1, 1].
Problems raise DataError with one line that names the file and the fix.
"""

from __future__ import annotations

import gzip
import warnings
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ganstab.config import image_hw
from ganstab.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a NumPy array, checking magic and size."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {str(path)!r}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile):
            raise DataError(f"IDX file {str(path)!r} is a truncated or corrupt gzip file; download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{str(path)!r} is not an IDX file (wrong magic number); pass MNIST-style IDX files")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"IDX file {str(path)!r} has a truncated header; download it again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"IDX file {str(path)!r} is truncated: expected {expected} data bytes for shape {dims}, "
            f"found {len(raw) - header}; download it again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Optional[Path]:
    for name in (stem, stem + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def read_idx_folder(folder: str | Path, dataset: str) -> dict[str, Optional[np.ndarray]]:
    """Read train/test images and labels from a folder of MNIST-layout IDX files."""
    folder = Path(folder)
    if not folder.is_dir():
        if dataset == "fashion-mnist":
            raise DataError(
                f"Fashion-MNIST not found at {str(folder)!r}; install it with "
                "'apt-get install dataset-fashion-mnist' or pass data.path=DIR holding the IDX files"
            )
        raise DataError(f"data.path {str(folder)!r} is not a folder; pass the folder that holds the IDX files")
    train_images = _find(folder, "train-images-idx3-ubyte")
    if train_images is None:
        raise DataError(
            f"no train-images-idx3-ubyte[.gz] in {str(folder)!r}; pass data.path=DIR holding the {dataset} IDX files"
        )
    out: dict[str, Optional[np.ndarray]] = {"train": read_idx(train_images)}
    for key, stem in (("labels", "train-labels-idx1-ubyte"), ("test", "t10k-images-idx3-ubyte"),
                      ("test_labels", "t10k-labels-idx1-ubyte")):
        found = _find(folder, stem)
        out[key] = read_idx(found) if found is not None else None
    for images, labels, split in (("train", "labels", "train"), ("test", "test_labels", "test")):
        if out[images] is not None and out[labels] is not None and len(out[images]) != len(out[labels]):
            raise DataError(
                f"{dataset} {split} split has {len(out[images])} images but {len(out[labels])} labels; "
                "the IDX files do not belong together"
            )
        if out[images] is not None and out[images].ndim != 3:
            raise DataError(f"{dataset} {split} images must be a 3-D IDX array (N, H, W), got {out[images].ndim}-D")
    return out


def to_unit_range(images: np.ndarray, max_value: float = 255.0) -> Tensor:
    """uint8-like (N, H, W) or (N, H, W, C) images -> float tensor (N, C, H, W) in [-1, 1]."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(arr / max_value * 2.0 - 1.0))


def read_digits() -> dict[str, np.ndarray]:
    """scikit-learn's bundled 8x8 digits split 80/20 with a fixed seed (values 0..16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(len(images) * 0.8)
    train, test = order[:cut], order[cut:]
    return {"train": images[train], "labels": labels[train], "test": images[test], "test_labels": labels[test]}


def list_image_files(folder: str | Path) -> list[Path]:
    """Every non-hidden file under `folder`, sorted (DataError when the folder is missing or empty)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data.path {str(folder)!r} is not a folder; pass a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"image folder {str(folder)!r} is empty; put PNG/JPEG images in it")
    return files


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
# single-channel modes wider than 8 bits (16-bit PNGs open as I;16 or I, TIFFs as F)
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "F")


def wide_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """A 16-bit (or 32-bit / float) gray image scaled to uint8: 16-bit by /257, floats in [0, 1] by x255."""
    values = arr.astype(np.float64)
    if mode == "F":
        top = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0 if values.max(initial=0.0) <= 255.0 else 65535.0
    else:
        top = 65535.0 if values.max(initial=0.0) > 255 or mode.startswith("I;16") else 255.0
    return np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)


def class_of(path: Path, folder: Path) -> Optional[str]:
    """The class of an image: the name of its first-level sub-folder (None for a file directly in `folder`)."""
    parts = path.relative_to(folder).parts
    return parts[0] if len(parts) > 1 else None


def open_image(path: "Path | BinaryIO") -> "Image.Image":
    """Open and decode one image (a path or a binary file) completely; a decompression bomb is refused like an
    unreadable file."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                img.load()
                return img.copy()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ValueError(f"{path}: {exc}") from None


def convert_mode(img: "Image.Image", channels: int) -> "Image.Image":
    """A Pillow image in mode L (channels 1) or RGB (3): wide gray scaled to 8 bits, palette/alpha composited on black."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if img.mode in WIDE_MODES:  # 16-bit and float images: scale to 8 bits, not clip at 255
        img = Image.fromarray(wide_to_uint8(np.asarray(img), img.mode))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert(mode)


def convert_image(img: "Image.Image", size: Union[int, Sequence[int]], channels: int) -> np.ndarray:
    """A Pillow image as uint8 (H, W, channels) for `size` N (square) or (H, W): palette/alpha composited on
    black, then resized."""
    from PIL import Image

    img = convert_mode(img, channels)
    height, width = image_hw(size)
    if img.size != (width, height):  # Pillow's size is (width, height)
        img = img.resize((width, height), Image.BICUBIC)
    arr = np.array(img, dtype=np.uint8)  # a writable copy
    return arr[:, :, None] if arr.ndim == 2 else arr


def read_image_folder(folder: str | Path, image_size: Union[int, Sequence[int], None], channels: Optional[int]
                      ) -> tuple[np.ndarray, int]:
    """Read every image under `folder` with Pillow, converted and resized to `image_size` (N or (H, W); default:
    the first image's height and width).

    Grayscale (8 and 16 bits), RGB, RGBA and palette images are converted to the chosen mode (RGBA
    is composited on black); files that are not images, or decompression bombs, are skipped and
    counted. Returns (uint8 array (N, H, W, C), skipped count).
    """
    arr, skipped, _, _ = read_labelled_image_folder(folder, image_size, channels)
    return arr, skipped


def read_labelled_image_folder(folder: str | Path, image_size: Union[int, Sequence[int], None], channels: Optional[int]
                               ) -> tuple[np.ndarray, int, Optional[np.ndarray], Optional[list[str]]]:
    """`read_image_folder` plus labels: with every image in one of >= 2 sub-folders, the sub-folder is its class.

    Returns (images, skipped count, labels (N,) numbered by sorted class name or None, class names or None).
    """
    from PIL import UnidentifiedImageError

    folder = Path(folder)
    files = list_image_files(folder)
    opened, classes = [], []
    skipped = 0
    for path in files:
        try:
            opened.append(open_image(path))
            classes.append(class_of(path, folder))
        except (UnidentifiedImageError, OSError, ValueError):
            skipped += 1
    if not opened:
        raise DataError(f"image folder {str(folder)!r} holds no readable images ({skipped} files skipped)")
    if channels is None:
        channels = 1 if all(img.mode in GRAY_MODES for img in opened) else 3
    size = image_size or (opened[0].size[1], opened[0].size[0])
    images = np.stack([convert_image(img, size, channels) for img in opened])
    names = sorted({c for c in classes if c is not None})
    if len(names) < 2 or any(c is None for c in classes):
        return images, skipped, None, None
    index = {name: k for k, name in enumerate(names)}
    return images, skipped, np.array([index[c] for c in classes], dtype=np.int64), names


# dtype kinds an array of images, points or labels cannot hold: ganstab trains on booleans, integers and real floats
REFUSED_DTYPE_KINDS: dict[str, str] = {"c": "complex numbers", "U": "text", "S": "bytes",
                                       "V": "structured records or raw bytes", "M": "dates", "m": "time spans",
                                       "O": "Python objects"}


def check_dtype(arr: np.ndarray, name: str, where: str, store: str) -> None:
    """Refuse, naming it, a dtype that is not boolean, integer or real float (complex would lose its imaginary part)."""
    what = REFUSED_DTYPE_KINDS.get(arr.dtype.kind)
    if what is not None:
        raise DataError(f"{where!r}: array '{name}' holds {what} (dtype {arr.dtype}), which ganstab cannot train on; "
                        f"store {store}")


IMAGES_AS = "as uint8 images or real numbers (integer, boolean or float)"
_LABELS_AS = "as integer class indices 0..K-1"


def _npz_array(npz: "np.lib.npyio.NpzFile", name: str, where: str, store: str) -> np.ndarray:
    """One array of an open .npz; an object array (which would need unpickling) is refused by name like any dtype."""
    try:
        return npz[name]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(f"{where!r}: array '{name}' holds Python objects (dtype object), which ganstab cannot train "
                        f"on; store '{name}' {store}") from None


def available_host_memory() -> Optional[int]:
    """Bytes of host memory free for new arrays (MemAvailable of /proc/meminfo; None when unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


#: Bytes held per array element while an .npz loads: its own bytes plus two float32 copies (range and tensor)
NPZ_LOAD_EXTRA_BYTES = 8


def npz_headers(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """(shape, dtype) of each array of an .npz, read from the .npy headers without decompressing the data
    ({} when the file is not a zip of .npy members: `np.load` then says what is wrong)."""
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    reader = {(1, 0): np.lib.format.read_array_header_1_0,
                              (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if reader is None:
                        continue
                    shape, _, dtype = reader(fh)
                headers[info.filename[:-4]] = (tuple(int(d) for d in shape), np.dtype(dtype))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError):
        return {}
    return headers


def check_npz_size(path: str | Path, headers: dict[str, tuple[tuple[int, ...], np.dtype]], keys: list[str],
                   free: Optional[int]) -> None:
    """Refuse an .npz whose arrays (`keys`, sized by their `npz_headers`) would not fit in `free` bytes once
    decompressed, before loading."""
    need = 0
    for key in keys:
        if key in headers:
            shape, dtype = headers[key]
            need += int(np.prod(shape, dtype=object)) * (dtype.itemsize + NPZ_LOAD_EXTRA_BYTES)
    if free is None or need <= free:
        return
    shapes = ", ".join(f"{k!r} {headers[k][0]} {headers[k][1]}" for k in keys if k in headers)
    raise DataError(f"{str(path)!r} holds {shapes}: about {need / 1e9:.1f} GB once loaded, but {free / 1e9:.1f} GB "
                    "of memory is available; use a smaller file, or a folder of images with data.stream=true")


def read_npz(path: str | Path) -> dict[str, Optional[np.ndarray]]:
    """Read an .npz with images or points under 'x' (or 'images', or the first array) and optional 'y'; its size
    is checked against the free memory before any array is decompressed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r} does not exist; pass an .npz file")
    headers = npz_headers(path)
    if headers:
        names = list(headers)
        key = next((k for k in ("x", "images", "data") if k in names), names[0])
        label = next((k for k in ("y", "labels") if k in names), None)
        check_npz_size(path, headers, [key] + ([label] if label else []), available_host_memory())
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            if not names:
                raise DataError(f"{str(path)!r} holds no arrays; save your data as np.savez(path, x=...)")
            key = next((k for k in ("x", "images", "data") if k in names), names[0])
            x = _npz_array(npz, key, str(path), IMAGES_AS)
            label_key = "y" if "y" in names else ("labels" if "labels" in names else None)
            y = _npz_array(npz, label_key, str(path), _LABELS_AS) if label_key is not None else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read {str(path)!r} as .npz ({str(exc).splitlines()[0]}); save it with np.savez") from None
    check_dtype(x, key, str(path), f"'{key}' {IMAGES_AS}")
    if y is not None:
        check_dtype(y, label_key, str(path), f"'{label_key}' {_LABELS_AS}")
        check_labels(y, len(x), str(path))
    return {"train": x, "labels": y}


def check_labels(y: np.ndarray, n: int, where: str) -> None:
    """Labels must be one non-negative integer per sample; anything else is a DataError naming the fix."""
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{where!r}: labels 'y' have shape {tuple(y.shape)} but there are {n} samples; "
                        f"store one integer label per sample, shape ({n},)")
    if y.dtype == bool or not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{where!r}: labels 'y' must be integers, got dtype {y.dtype}")
    if not np.issubdtype(y.dtype, np.integer) and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise DataError(f"{where!r}: labels 'y' must be whole numbers; store integer class indices 0..K-1")
    if n and float(y.min()) < 0:
        raise DataError(f"{where!r}: labels 'y' must be 0 or more, found {y.min():.0f}; number the classes 0..K-1")
