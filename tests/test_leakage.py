"""Leakage statistics: each one rises on images carrying its augmentation and stays put on clean ones."""

from __future__ import annotations

import pytest
import torch

from ganstab.augment import adjust_color, augment, cutout_square, translate
from ganstab.metrics.leakage import (
    EXPOSES,
    border_rows,
    constant_squares,
    dark_offset,
    leakage_range,
    leak_thresholds,
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


def test_range_over_real_subsets_thresholds_and_one_sided_leaks() -> None:
    x = _clean(n=10)
    x[:5, :, 0, :] = -1.0  # the first five images have a black top row: border_rows 0.25 on each
    ranges = leakage_range(x, parts=2)
    assert ranges["border_rows"] == (0.0, 0.25)
    assert ranges["constant_squares"] == (0.0, 0.0)
    # a quarter of the way from the real top to the augmented reals' value; never below the real top
    limits = leak_thresholds(ranges, {"border_rows": 0.65, "constant_squares": 1.0, "dark_offset": -1.0})
    assert limits["border_rows"] == pytest.approx(0.35) and limits["constant_squares"] == pytest.approx(0.25)
    assert limits["dark_offset"] == ranges["dark_offset"][1]
    assert leaks({"border_rows": 0.3, "constant_squares": 0.25, "dark_offset": 0.0}, limits) == []
    assert leaks({"border_rows": 0.4, "constant_squares": 0.3, "dark_offset": 0.0}, limits) == [
        "border_rows", "constant_squares"]
    with pytest.raises(ValueError, match="leakage_range needs at least 10 images for 10 parts, got 8"):
        leakage_range(_clean(), parts=10)


def test_each_statistic_rises_on_reals_put_through_its_transform() -> None:
    x = torch.rand(64, 1, 16, 16) * 1.8 - 0.8
    x[:, :, :, :3] = -1.0  # a background band on the left: every left edge is black already
    gen = torch.Generator().manual_seed(0)
    before = leakage_statistics(x)
    for name, transform in EXPOSES.items():
        after = leakage_statistics(augment(x, (transform,), gen, 1.0))
        assert after[name] > before[name], (name, transform, before[name], after[name])
