"""`ganstab data prepare SRC DEST`: any dataset ganstab reads, written in the StyleGAN family's format."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Optional

from tqdm import tqdm

from ganstab.cli.common import echo
from ganstab.data.prepare import FILTERS, TRANSFORMS, check_dest, open_source, prepare_dataset
from ganstab.errors import UsageError
from ganstab.training.progress import format_duration

__all__ = ["PrepareProgress", "cmd_prepare", "register"]


class PrepareProgress:
    """A tqdm bar over images in a terminal; without one, `progress: 1200/70000 images (1%), ...` every
    `every_seconds` and at the end, through `echo` (as training reports its steps)."""

    def __init__(self, terminal: bool, echo: Callable[[str], None] = echo, every_seconds: float = 30.0) -> None:
        self.terminal, self.echo, self.every_seconds = terminal, echo, every_seconds
        self.bar: Optional[tqdm] = None
        self.shown = -1  # the count of the last line written (the final one is written once)
        self.started = self.last_line = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        """`done` of `total` images handled."""
        if self.terminal:
            if self.bar is None:
                self.bar = tqdm(total=total, unit="image", dynamic_ncols=True)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if (now - self.last_line >= self.every_seconds or done == total) and done != self.shown:
            self.last_line, self.shown = now, done
            self.echo(self.line(done, total, now))

    def line(self, done: int, total: int, now: float) -> str:
        """The plain progress line at time `now` (time.monotonic())."""
        elapsed = max(now - self.started, 1e-9)
        eta = elapsed / done * (total - done) if done else None
        return (f"progress: {done}/{total} images ({100 * done // max(total, 1)}%), {done / elapsed:.0f} images/s, "
                f"ETA {'-' if eta is None else format_duration(eta)}")

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


def _positive(value: Optional[int], flag: str) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{flag} must be at least 1, got {value}")


def cmd_prepare(args: argparse.Namespace) -> int:
    """Write SRC to DEST in the StyleGAN dataset format and say what was written and skipped."""
    _positive(args.resolution, "--resolution")
    _positive(args.max_images, "--max-images")
    if args.resolution is not None and args.resolution > 4096:
        raise UsageError(f"--resolution must be at most 4096, got {args.resolution}")
    check_dest(args.dest)
    source = open_source(args.src, args.name, args.split, args.max_images)
    progress = PrepareProgress(terminal=sys.stderr.isatty())
    echo(f"writing {source.description} to {args.dest}: transform {args.transform}, resize filter "
         f"{args.filter}{'' if args.resolution is None else f', resolution {args.resolution}'}")
    try:
        result = prepare_dataset(source, args.dest, resolution=args.resolution, transform=args.transform,
                                 resize_filter=args.filter, max_images=args.max_images, channels=args.channels,
                                 progress=progress)
    finally:
        progress.close()
    labels = f"labels of {result.classes} classes" if result.classes else "no labels"
    echo(f"wrote {result.written} images of {result.resolution}x{result.resolution}x{result.channels} ({labels}) "
         f"to {result.dest}; transform {args.transform}, resize filter {args.filter}")
    if result.skipped:
        shown = ", ".join(result.skipped[:3]) + (", ..." if len(result.skipped) > 3 else "")
        echo(f"skipped {len(result.skipped)} unreadable file{'s' if len(result.skipped) != 1 else ''} (not "
             f"images): {shown}")
    if result.resolution & (result.resolution - 1):
        echo(f"note: {result.resolution} is not a power of two; stylegan2-ada, stylegan3 and R3GAN train at "
             "power-of-two resolutions only (pass --resolution)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `data` command family (`data prepare`)."""
    p = sub.add_parser("data", help="dataset tools: 'data prepare' writes the StyleGAN dataset format",
                       description="Dataset tools.")
    family = p.add_subparsers(dest="data_command", metavar="COMMAND", parser_class=type(p))
    p.set_defaults(func=lambda args: _missing(p))
    q = family.add_parser(
        "prepare", help="write a dataset as stylegan2-ada's dataset_tool.py does (zip or folder + dataset.json)",
        description="Write SRC in the StyleGAN family's dataset format (stylegan2-ada, stylegan3, R3GAN, "
                    "projected-gan, stylegan-xl; ganstab reads it back with data.name=folder): "
                    "uncompressed 8-bit PNGs named 00000/img00000000.png, 1000 per folder, and dataset.json "
                    "with the labels ({\"labels\": [[name, class], ...]}, or null without labels).")
    q.add_argument("src", metavar="SRC",
                   help="a data.name (digits, fashion-mnist, ...) or a path: a folder of images (class "
                        "sub-folders give labels), a StyleGAN zip/folder, a StudioGAN train/valid folder, a .npz, "
                        "a folder of IDX files")
    q.add_argument("dest", metavar="DEST", help="output: a zip file when it ends in .zip, else a new folder")
    q.add_argument("--name", default=None, metavar="DATA_NAME",
                   help="read the SRC path as this data.name (e.g. fashion-mnist, mnist, npz) instead of guessing")
    q.add_argument("--split", default="train", choices=("train", "test"),
                   help="train (default) or the held-out split (test of digits/MNIST/Fashion-MNIST, StudioGAN's "
                        "valid/)")
    q.add_argument("--resolution", type=int, default=None, metavar="N",
                   help="side of the square output images (default: the first image's; then every image must "
                        "have that size)")
    q.add_argument("--transform", default="resize", choices=TRANSFORMS,
                   help="resize (default: scale to NxN, aspect not kept), center-crop (the central square, then "
                        "scaled), center-crop-wide (scaled to width N keeping the aspect: centre rows of a tall "
                        "image, black bars above and below a wide one)")
    q.add_argument("--filter", default="lanczos", choices=FILTERS,
                   help="Pillow resampling filter for resizing (default lanczos, as dataset_tool.py)")
    q.add_argument("--max-images", type=int, default=None, metavar="N", help="write at most N images")
    q.add_argument("--channels", type=int, default=None, choices=(1, 3),
                   help="1 (gray PNGs) or 3 (RGB); default: as the source (files: the first image's)")
    q.set_defaults(func=cmd_prepare)


def _missing(parser: argparse.ArgumentParser) -> int:
    raise UsageError(f"'{parser.prog}' needs a command: prepare; see '{parser.prog} --help'")
