"""`ganstab.train.train`, the README's entry point, kept at its old path: training a config end to end
(build -> train -> export -> plots -> report) is `ganstab.pipeline.train`."""

from ganstab.pipeline import RunResult, make_trainer, train

__all__ = ["RunResult", "make_trainer", "train"]
