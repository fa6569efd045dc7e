"""Training: the loop and its phases over built objects, checkpoints, EMA, the recorder and schedules.

`TRAINERS` lists the Trainer of each architecture that needs its own (progressive growing);
every other architecture trains with `Trainer`. Building objects from a config and writing the
report happen in `ganstab.pipeline`.
"""

from __future__ import annotations

from ganstab.training.loop import Divergence, RunResult, RunScorer, Trainer, Watcher
from ganstab.training.progressive import ProgressiveTrainer

TRAINERS: dict[str, type[Trainer]] = {"progressive": ProgressiveTrainer}


def trainer_class(arch: str) -> type[Trainer]:
    """The Trainer class for an architecture name."""
    return TRAINERS.get(arch, Trainer)


__all__ = ["TRAINERS", "Divergence", "ProgressiveTrainer", "RunResult", "RunScorer", "Trainer", "Watcher",
           "trainer_class"]
