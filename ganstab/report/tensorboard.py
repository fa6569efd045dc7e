"""TensorBoard output of a run (`log.tensorboard=true`): scalars, evaluation metrics, findings and samples.

The events go to RUN/tensorboard/ through `torch.utils.tensorboard`, which needs the optional
`tensorboard` package (`pip install 'ganstab[tensorboard]'`). The pipeline builds a TensorBoardSink
and hands it to the Trainer, which calls it after each logged line, finding and sample grid.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ganstab.errors import ConfigError
from ganstab.rundir import EVAL_PROVENANCE_KEYS

__all__ = ["tensorboard_available", "require_tensorboard", "scalar_tag", "TensorBoardSink"]

_SKIPPED = frozenset({"step", "time"})


def tensorboard_available() -> bool:
    """Whether the tensorboard package (needed by torch.utils.tensorboard) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def require_tensorboard() -> None:
    """ConfigError with the fix when log.tensorboard=true but tensorboard is not installed."""
    if not tensorboard_available():
        raise ConfigError("log.tensorboard=true needs the tensorboard package; install it with pip install "
                          "'ganstab[tensorboard]' (or pip install tensorboard), or set log.tensorboard=false")


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a metrics.jsonl key: eval_fd -> eval/fd, loss_d -> train/loss_d."""
    return f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"


class TensorBoardSink:
    """Writes a run's lines, findings and sample images as TensorBoard events under `folder`.

    The writer opens at the first event, purging any events at or after that step (a resumed run
    continues its curves without duplicates).
    """

    def __init__(self, folder: str | Path) -> None:
        require_tensorboard()
        self.folder = Path(folder)
        self.writer: Optional[Any] = None

    def _open(self, step: int) -> Any:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when asked for

            self.writer = SummaryWriter(log_dir=str(self.folder), purge_step=step)
        return self.writer

    def scalars(self, step: int, record: Mapping[str, Any]) -> None:
        """Every finite number of a logged line (training or evaluation) as a scalar at `step`."""
        writer = self._open(step)
        for key, value in record.items():
            if (key in _SKIPPED or key in EVAL_PROVENANCE_KEYS or isinstance(value, bool)
                    or not isinstance(value, (int, float))):
                continue
            if np.isfinite(value):
                writer.add_scalar(scalar_tag(key), float(value), step)

    def text(self, step: int, tag: str, text: str) -> None:
        """A text entry (a finding with its advice) at `step`."""
        self._open(step).add_text(tag, text, step)

    def image(self, step: int, tag: str, png: str | Path) -> None:
        """A PNG file (a sample grid or scatter plot) as an image at `step`."""
        from PIL import Image

        with Image.open(png) as img:
            array = np.asarray(img.convert("RGB"))
        self._open(step).add_image(tag, array, step, dataformats="HWC")

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
