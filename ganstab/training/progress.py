"""Progress of a training run for the person watching: a bar in a terminal, plain lines in a log file."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional

from tqdm import tqdm

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """Seconds as H:MM:SS (M:SS under an hour)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A tqdm bar over G steps in a terminal; without one, a plain line every `every_seconds` through `echo`.

    The line reads `progress: step 120/2000 (6%), 5400 images/s, loss_d 1.234, loss_g 0.987, ETA 1:02`.
    Nothing at all when `enabled` is false.
    """

    def __init__(self, total: int, initial: int, enabled: bool, terminal: bool = True,
                 echo: Optional[Callable[[str], None]] = None, every_seconds: float = 30.0) -> None:
        self.bar: Optional[tqdm] = None
        self.total, self.step, self.initial = total, initial, initial
        self.echo = echo if enabled and not terminal else None
        self.every_seconds = every_seconds
        self.started = self.last_line = time.monotonic()
        self.losses: tuple[Optional[float], Optional[float]] = (None, None)
        self.images_per_second: Optional[float] = None
        if enabled and terminal:
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, trainer: Any, line: Mapping[str, Any]) -> None:
        """Show the losses of a freshly logged line and the images/s so far."""
        self.losses = (line.get("loss_d"), line.get("loss_g"))
        self.images_per_second = trainer.images_seen / max(trainer.elapsed, 1e-9)
        if self.bar is None:
            return
        self.bar.set_postfix(loss_d=f"{line.get('loss_d') or 0:.3f}", loss_g=f"{line.get('loss_g') or 0:.3f}",
                             img_s=f"{self.images_per_second:.0f}")

    def advance(self) -> None:
        """One more G step done (and a plain line when it is time for one)."""
        self.step += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.echo is None:
            return
        now = time.monotonic()
        if now - self.last_line >= self.every_seconds or self.step == self.total:
            self.last_line = now
            self.echo(self.line(now))

    def line(self, now: float) -> str:
        """The plain progress line at time `now` (time.monotonic())."""
        done = self.step - self.initial
        eta = (now - self.started) / done * (self.total - self.step) if done > 0 else None
        loss_d, loss_g = (f"{v:.3f}" if isinstance(v, (int, float)) else "-" for v in self.losses)
        rate = "-" if self.images_per_second is None else f"{self.images_per_second:.0f}"
        return (f"progress: step {self.step}/{self.total} ({100 * self.step // max(self.total, 1)}%), "
                f"{rate} images/s, loss_d {loss_d}, loss_g {loss_g}, "
                f"ETA {'-' if eta is None else format_duration(eta)}")

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
