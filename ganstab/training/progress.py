"""Progress of a training run for the person watching: a bar in a terminal."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """A tqdm bar over G steps with the latest losses and images/s (nothing when `enabled` is false)."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.bar: Optional[tqdm] = None
        if enabled:
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, trainer: Any, line: Mapping[str, Any]) -> None:
        """Show the losses of a freshly logged line and the images/s so far."""
        if self.bar is None:
            return
        self.bar.set_postfix(loss_d=f"{line.get('loss_d') or 0:.3f}", loss_g=f"{line.get('loss_g') or 0:.3f}",
                             img_s=f"{trainer.images_seen / max(trainer.elapsed, 1e-9):.0f}")

    def advance(self) -> None:
        """One more G step done."""
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
