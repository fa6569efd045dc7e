"""Leakage statistics: each one rises on images carrying its augmentation and stays put on clean ones."""

from __future__ import annotations

import pytest
import torch

from ganstab.augment import adjust_color, cutout_square, translate
from ganstab.metrics.leakage import (
    border_rows,
    constant_squares,
    dark_offset,
    leakage_range,
    leakage_statistics,
    leaks,
)


def _clean(n: int = 8, side: int = 16) -> torch.Tensor:
    """Smooth images with no background edges and no flat squares."""
    torch.manual_seed(0)
    return (torch.rand(n, 1, side, side) * 0.8 - 0.2)


def test_translation_shows_in_border_rows() -> None:
    x = _clean()
    assert border_rows(x) == 0.0
    moved = translate(x, torch.full((8,), 2), torch.zeros(8, dtype=torch.long))
    assert border_rows(moved) == pytest.approx(0.25)  # the top edge of every image (1 of 4 edges) is background


def test_cutout_shows_in_constant_squares() -> None:
    x = _clean()
    assert constant_squares(x) == 0.0
    half = cutout_square(x[:4], torch.full((4,), 4), torch.full((4,), 4), (8, 8))
    assert constant_squares(torch.cat([half, x[4:]])) == pytest.approx(0.5)
    blank = torch.full((2, 1, 16, 16), -1.0)  # flat background is not a cutout
    assert constant_squares(blank) == 0.0


def test_colour_shows_in_dark_offset() -> None:
    x = torch.rand(8, 1, 16, 16) * 1.8 - 0.8
    x[:, :, :4] = -1.0  # a quarter of every image is background: the 5th percentile is -1
    assert dark_offset(x) == 0.0
    brighter = adjust_color(x, torch.full((8,), 0.3), torch.ones(8), torch.ones(8))
    assert dark_offset(brighter) == pytest.approx(0.3, abs=1e-6)
    darker = adjust_color(x, torch.full((8,), -0.2), torch.ones(8), torch.ones(8))
    assert dark_offset(darker) == pytest.approx(0.2, abs=1e-6)  # below the background counts too
    assert set(leakage_statistics(x)) == {"border_rows", "constant_squares", "dark_offset"}


def test_range_over_real_subsets_and_one_sided_leaks() -> None:
    x = _clean(n=10)
    x[:5, :, 0, :] = -1.0  # the first five images have a black top row: border_rows 0.25 on each
    ranges = leakage_range(x, parts=2)
    assert ranges["border_rows"] == (0.0, 0.25)
    assert ranges["constant_squares"] == (0.0, 0.0)
    assert leaks({"border_rows": 0.2, "constant_squares": 0.0, "dark_offset": 0.0}, ranges) == []
    assert leaks({"border_rows": 0.3, "constant_squares": 0.1, "dark_offset": 0.0}, ranges) == [
        "border_rows", "constant_squares"]
    with pytest.raises(ValueError, match="leakage_range needs at least 10 images for 10 parts, got 8"):
        leakage_range(_clean(), parts=10)
