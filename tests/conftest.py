"""Shared test set-up: one torch thread, and slow tests only when asked for with -m slow."""

from __future__ import annotations

import pytest
import torch

# The test machine has 2 shared cores; with more than one intra-op thread under contention
# tiny torch ops become ~100x slower. One thread keeps the default run fast.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Reset torch to one thread after every test."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked slow unless the -m expression names 'slow' (e.g. `pytest -m slow`)."""
    markexpr = config.getoption("markexpr", default="") or ""
    if "slow" in markexpr:
        return
    skip_slow = pytest.mark.skip(reason="slow end-to-end training; run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
