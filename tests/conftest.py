"""Shared test set-up: one torch thread, and slow tests only when asked for with -m slow."""

from __future__ import annotations

import pytest
import torch

import _torchvision_double

# The test machine has 2 shared cores; with more than one intra-op thread under contention
# tiny torch ops become ~100x slower. One thread keeps the default run fast.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Reset torch to one thread after every test."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per reason the torchvision test double stood in for torchvision (tests/_torchvision_double.py)."""
    for line in _torchvision_double.USED:
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked slow unless the -m expression names 'slow' (e.g. `pytest -m slow`)."""
    markexpr = config.getoption("markexpr", default="") or ""
    if "slow" in markexpr:
        return
    skip_slow = pytest.mark.skip(reason="slow end-to-end training; run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def train_tiny_toy_run():
    """A function that trains a tiny toy run on grid25 into `out` (40 steps; report written) and returns `out`."""
    from pathlib import Path

    def make(out: Path) -> Path:
        from ganstab.pipeline import load_config
        from ganstab.train import train

        cfg = load_config(None, ["model.width=16", "model.depth=2", "train.steps=40", "log.every=10",
                                 "log.sample_every=10", "log.checkpoint_every=20", "train.batch_size=64",
                                 "train.device=cpu", "train.threads=1", "log.progress=false", f"out={out}"], "toy")
        train(cfg, echo=lambda _m: None)
        return out

    return make
