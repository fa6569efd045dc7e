"""The dataset layouts of other GAN codebases, read from disk.

StyleGAN family (stylegan2-ada's `dataset_tool.py` writes it; stylegan2-ada, stylegan3, R3GAN,
projected-gan and stylegan-xl read it): a zip or a folder of images, taken in the sorted order of
their '/'-separated relative names, with an optional `dataset.json` at the root,
`{"labels": [["00000/img00000000.png", 6], ...]}` or `{"labels": null}`; one resolution.
StudioGAN: `train/<class>/*` and `valid/<class>/*` (the held-out split; `test/` when there is no
`valid/`). Problems raise DataError with one line that names the file and the fix.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from ganstab.data.images import GRAY_MODES, class_of, convert_image, list_image_files, open_image
from ganstab.errors import DataError, first_line

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["LABELS_FILE", "STUDIOGAN_SPLITS", "UNREADABLE", "ImageArchive", "ArchiveData", "detect_layout",
           "image_names", "parse_labels", "stylegan_labels", "iter_archive_images", "read_stylegan", "read_studiogan",
           "studiogan_held_out", "check_held_out_classes", "skipped_note"]

LABELS_FILE = "dataset.json"
STUDIOGAN_SPLITS = ("train", "valid", "test")
# errors of a file that is not a decodable image (zip members add CRC and inflate errors)
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError)


class ImageArchive:
    """A zip file or a folder seen as one list of '/'-separated file names whose bytes can be opened."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.zip: Optional[zipfile.ZipFile] = None
        if self.path.is_dir():
            self.names = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())
        elif self.path.is_file() and self.path.suffix.lower() == ".zip":
            try:
                self.zip = zipfile.ZipFile(self.path)
                self.names = sorted(n for n in self.zip.namelist() if not n.endswith("/"))
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DataError(f"{str(self.path)!r} is not a readable zip file ({first_line(exc)}); copy it again "
                                "or re-create it with 'ganstab data prepare'") from None
        elif self.path.exists():
            raise DataError(f"data.path {str(self.path)!r} is neither a folder nor a .zip file; pass the dataset's "
                            "folder or zip")
        else:
            raise DataError(f"data.path {str(self.path)!r} does not exist; pass the dataset's folder or zip")

    def read(self, name: str) -> bytes:
        """The bytes of one file (zip members are checked against their CRC)."""
        if self.zip is not None:
            return self.zip.read(name)
        return (self.path / name).read_bytes()

    def open_file(self, name: str) -> BinaryIO:
        """One file opened for reading (a zip member is read as far as the reader goes, e.g. a header)."""
        if self.zip is not None:
            return self.zip.open(name)
        return open(self.path / name, "rb")

    def open_image(self, name: str) -> "Image.Image":
        """One file decoded as an image (raises one of UNREADABLE when it is not one)."""
        return open_image(io.BytesIO(self.read(name)))

    def close(self) -> None:
        """Close the zip file (nothing to do for a folder)."""
        if self.zip is not None:
            self.zip.close()
            self.zip = None

    def __enter__(self) -> "ImageArchive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hidden(name: str) -> bool:
    """Hidden files and macOS resource forks (`.DS_Store`, `__MACOSX/._x.png`) are not data."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def image_names(names: list[str]) -> list[str]:
    """The names with an image extension Pillow knows, sorted as strings (hidden files left out)."""
    from PIL import Image

    extensions = Image.registered_extensions()
    return sorted(n for n in names if not _hidden(n) and Path(n).suffix.lower() in extensions)


def detect_layout(path: str | Path) -> str:
    """'stylegan' (a .zip, or a folder with dataset.json), 'studiogan' (a folder of train/ [valid/] [test/]) or
    'images' (any other folder)."""
    path = Path(path)
    if path.suffix.lower() == ".zip" and not path.is_dir():
        return "stylegan"
    if not path.is_dir():
        return "images"
    if (path / LABELS_FILE).is_file():
        return "stylegan"
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if (path / "train").is_dir() and all(p.is_dir() and p.name in STUDIOGAN_SPLITS for p in entries):
        return "studiogan"
    return "images"


def parse_labels(raw: bytes, where: str) -> Optional[dict[str, int]]:
    """dataset.json -> {image name: class index}, or None for `"labels": null` (DataError on anything else)."""
    fix = 'write {"labels": [["00000/img00000000.png", 0], ...]} or {"labels": null}'
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{where} is not valid JSON ({first_line(exc)}); {fix}") from None
    if not isinstance(doc, dict) or "labels" not in doc:
        kind = "an object without 'labels'" if isinstance(doc, dict) else f"a JSON {_json_type(doc)}"
        raise DataError(f"{where} holds {kind}; {fix}")
    labels = doc["labels"]
    if labels is None:
        return None
    if not isinstance(labels, list):
        raise DataError(f"{where}: 'labels' is a JSON {_json_type(labels)}, not a list; {fix}")
    out: dict[str, int] = {}
    for k, entry in enumerate(labels):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DataError(f"{where}: labels[{k}] is {json.dumps(entry)[:60]}, not a [\"name\", class] pair; {fix}")
        name, label = entry[0].replace("\\", "/"), entry[1]
        if isinstance(label, list):
            raise DataError(f"{where}: labels[{k}] gives a vector label for {name!r}; ganstab trains on one class "
                            "index per image, so store integers 0..K-1")
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise DataError(f"{where}: labels[{k}] gives {json.dumps(label)} for {name!r}; labels must be class "
                            "indices 0..K-1 (whole numbers, not negative)")
        if name in out and out[name] != label:
            raise DataError(f"{where}: {name!r} is labelled twice ({out[name]} and {label}); keep one entry per image")
        out[name] = label
    return out


def _json_type(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


@dataclass
class ArchiveData:
    """Images read from an archive: uint8 (N, H, W, C), labels (N,) or None, and what was skipped."""

    images: np.ndarray
    labels: Optional[np.ndarray]
    skipped: list[str] = field(default_factory=list)
    test: Optional[np.ndarray] = None
    test_labels: Optional[np.ndarray] = None
    class_names: Optional[list[str]] = None


def skipped_note(skipped: list[str], where: str, using: int) -> str:
    """The one-line note about files that were not readable images (the first three named)."""
    shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
    what = "file in {} that is not a readable image" if len(skipped) == 1 else \
        "files in {} that are not readable images"
    return f"data: skipped {len(skipped)} {what.format(where)} ({shown}); using {using} images"


def stylegan_labels(archive: ImageArchive, names: list[str]) -> Optional[dict[str, int]]:
    """The labels of dataset.json checked against the image names (None when there is none or it says null)."""
    if LABELS_FILE not in archive.names:
        return None
    where = f"{str(archive.path / LABELS_FILE)!r}" if archive.zip is None else f"{LABELS_FILE} in {str(archive.path)!r}"
    labels = parse_labels(archive.read(LABELS_FILE), where)
    if labels is None:
        return None
    present = set(names)
    missing = [n for n in labels if n not in present]
    if missing:
        raise DataError(f"{where} labels {len(missing)} file{'s' if len(missing) != 1 else ''} that are not in "
                        f"the dataset (e.g. {missing[0]!r}); remove those entries or add the images")
    unlabelled = [n for n in names if n not in labels]
    if unlabelled:
        raise DataError(f"{where} gives no label for {len(unlabelled)} image{'s' if len(unlabelled) != 1 else ''} "
                        f"(e.g. {unlabelled[0]!r}); label every image or write \"labels\": null")
    return labels


def iter_archive_images(archive: ImageArchive, names: list[str], skipped: list[str]
                        ) -> Iterator[tuple[str, "Image.Image"]]:
    """(name, decoded image) for every name that decodes; the others are appended to `skipped`."""
    for name in names:
        try:
            yield name, archive.open_image(name)
        except UNREADABLE:
            skipped.append(name)


def read_stylegan(path: str | Path, image_size: Union[int, Sequence[int], None], channels: Optional[int]
                  ) -> ArchiveData:
    """A StyleGAN-family dataset (zip or folder, optional dataset.json): every image once, one resolution unless
    `image_size` resizes them all."""
    with ImageArchive(path) as archive:
        names = image_names(archive.names)
        if not names:
            raise DataError(f"{str(path)!r} holds no image files; pass a dataset written by 'ganstab data prepare' "
                            "or stylegan2-ada's dataset_tool.py")
        labels = stylegan_labels(archive, names)
        skipped: list[str] = []
        opened = list(iter_archive_images(archive, names, skipped))
    if not opened:
        raise DataError(f"{str(path)!r} holds no readable images ({len(skipped)} files skipped)")
    first_name, first = opened[0]
    if image_size is None:
        for name, img in opened:
            if img.size != first.size:
                raise DataError(f"{str(path)!r}: {name} is {img.size[0]}x{img.size[1]} but {first_name} is "
                                f"{first.size[0]}x{first.size[1]}; a dataset holds one resolution: set "
                                "data.image_size=N or re-create it with 'ganstab data prepare --resolution N'")
    if channels is None:
        channels = 1 if all(img.mode in GRAY_MODES for _, img in opened) else 3
    size = image_size or (first.size[1], first.size[0])  # (H, W); Pillow's size is (W, H)
    images = np.stack([convert_image(img, size, channels) for _, img in opened])
    y = None if labels is None else np.array([labels[name] for name, _ in opened], dtype=np.int64)
    return ArchiveData(images=images, labels=y, skipped=skipped)


def studiogan_held_out(path: str | Path) -> Optional[Path]:
    """The held-out split of a StudioGAN folder: valid/, else test/, else None."""
    for split in ("valid", "test"):
        if (Path(path) / split).is_dir():
            return Path(path) / split
    return None


def _class_folder(folder: Path) -> tuple[list[tuple[str, "Image.Image"]], list[Optional[str]], list[str]]:
    """(name, image) pairs, their classes (first-level sub-folder) and skipped names of one split."""
    opened, classes, skipped = [], [], []
    for file in list_image_files(folder):
        name = file.relative_to(folder.parent).as_posix()
        try:
            opened.append((name, open_image(file)))
            classes.append(class_of(file, folder))
        except UNREADABLE:
            skipped.append(name)
    return opened, classes, skipped


def check_held_out_classes(held_out: Path, classes: Iterable[Optional[str]], train_classes: Iterable[str]) -> None:
    """Refuse (DataError) a StudioGAN held-out split whose images lie outside train/'s class folders (`classes`: each
    image's class folder, None for one lying directly in the split)."""
    known = set(train_classes)
    stray = sorted({c or "(no class folder)" for c in classes if c not in known})
    if stray:
        raise DataError(f"{str(held_out)!r} has images in {stray[0]!r}, a class folder train/ lacks; use the "
                        "same class folders in both splits")


def read_studiogan(path: str | Path, image_size: Union[int, Sequence[int], None], channels: Optional[int]
                   ) -> ArchiveData:
    """A StudioGAN folder: train/<class>/* for training, valid/<class>/* (or test/) as the held-out split, with the
    classes numbered by sorted train/ sub-folder name."""
    root = Path(path)
    if not (root / "train").is_dir():
        raise DataError(f"{str(root)!r} has no train/ folder; StudioGAN's layout is train/<class>/*.png and "
                        "valid/<class>/*.png")
    train, train_classes, skipped = _class_folder(root / "train")
    held_out = studiogan_held_out(root)
    test, test_classes, test_skipped = _class_folder(held_out) if held_out else ([], [], [])
    if not train:
        raise DataError(f"{str(root / 'train')!r} holds no readable images ({len(skipped)} files skipped)")
    everything = train + test
    if channels is None:
        channels = 1 if all(img.mode in GRAY_MODES for _, img in everything) else 3
    size = image_size or (train[0][1].size[1], train[0][1].size[0])  # (H, W)
    names = sorted({c for c in train_classes if c is not None})
    labelled = len(names) >= 1 and all(c is not None for c in train_classes)
    if held_out is not None and labelled:
        check_held_out_classes(held_out, test_classes, names)
    index = {name: k for k, name in enumerate(names)}

    def stack(pairs: list) -> np.ndarray:
        return np.stack([convert_image(img, size, channels) for _, img in pairs])

    return ArchiveData(
        images=stack(train),
        labels=np.array([index[c] for c in train_classes], dtype=np.int64) if labelled else None,
        skipped=skipped + test_skipped,
        test=stack(test) if test else None,
        test_labels=np.array([index[c] for c in test_classes], dtype=np.int64) if labelled and test else None,
        class_names=names if labelled else None,
    )
