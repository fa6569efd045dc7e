"""Training: the loop (`train`), its Trainer, checkpoints, EMA, the recorder and schedules."""

from __future__ import annotations

TRAINERS: dict = {}  # model.arch -> Trainer subclass (filled by optional modules, e.g. progressive)

from ganstab.train.loop import RunResult, Trainer, load_run_config, make_trainer, train  # noqa: E402

__all__ = ["TRAINERS", "RunResult", "Trainer", "load_run_config", "make_trainer", "train"]
