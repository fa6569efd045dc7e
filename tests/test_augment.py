"""Differentiable augmentations (DiffAugment) and the ADA controller in ganstab.augment."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from ganstab.augment import (
    CUTOUT_FILL,
    POLICIES,
    TRANSLATION_FILL,
    AdaController,
    ada_signal,
    ada_update,
    adjust_color,
    augment,
    color,
    cutout,
    cutout_square,
    parse_policy,
    translate,
    translation,
)
from ganstab.errors import GanstabError

ALL = ("color", "translation", "cutout")


def _images(n: int = 4, c: int = 3, side: int = 8, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Images in [-1, 1] drawn from their own generator."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, side, side, generator=g, dtype=dtype) * 2 - 1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- differentiability -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_each_transform_passes_gradcheck_with_fixed_parameters(name: str) -> None:
    x = _images(n=2, c=3, side=5, dtype=torch.float64).requires_grad_()
    transform = POLICIES[name]
    assert torch.autograd.gradcheck(lambda t: transform(t, _gen(7)), (x,))


def test_augment_with_probability_passes_gradcheck() -> None:
    x = _images(n=3, c=3, side=5, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: augment(t, ALL, _gen(1), p=0.5), (x,))


def test_translation_gradient_reaches_exactly_the_pixels_still_in_view() -> None:
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)
    translate(x, torch.tensor([1]), torch.tensor([-2])).sum().backward()
    expected = torch.tensor([[0.0, 0.0, 1.0, 1.0],
                             [0.0, 0.0, 1.0, 1.0],
                             [0.0, 0.0, 1.0, 1.0],
                             [0.0, 0.0, 0.0, 0.0]])
    assert_close(x.grad[0, 0], expected)


# --- randomness: explicit generator, per-sample probability -----------------------------------

def test_same_generator_state_gives_identical_output_and_global_rng_is_untouched() -> None:
    x = _images(n=6)
    torch.manual_seed(123)
    first = augment(x, ALL, _gen(5), p=0.5)
    global_after = torch.rand(3)
    torch.manual_seed(123)
    second = augment(x, ALL, _gen(5), p=0.5)
    assert_close(first, second, rtol=0, atol=0)
    torch.manual_seed(123)
    assert_close(torch.rand(3), global_after, rtol=0, atol=0)
    assert not torch.equal(first, augment(x, ALL, _gen(6), p=0.5))


def test_p_zero_returns_the_input_values_exactly() -> None:
    x = _images(n=5)
    assert torch.equal(augment(x, ALL, _gen(), p=0.0), x)


def test_each_transform_draws_one_apply_decision_per_sample_before_its_parameters() -> None:
    x = _images(n=5)
    expected_gen = _gen(2)
    chosen = torch.rand(5, generator=expected_gen) < 0.6
    moved = translation(x, expected_gen)
    expected = torch.where(chosen.view(-1, 1, 1, 1), moved, x)
    assert_close(augment(x, ("translation",), _gen(2), p=0.6), expected, rtol=0, atol=0)


def test_probability_applies_cutout_to_about_p_of_the_samples() -> None:
    x = torch.full((200, 1, 8, 8), 0.7)
    changed_always = (augment(x, ("cutout",), _gen(3), p=1.0) != x).flatten(1).any(dim=1)
    assert int(changed_always.sum()) == 200
    changed_half = (augment(x, ("cutout",), _gen(3), p=0.5) != x).flatten(1).any(dim=1)
    assert 70 <= int(changed_half.sum()) <= 130


def test_probability_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match=r"within \[0, 1\], got 1.5"):
        augment(_images(), ALL, _gen(), p=1.5)


# --- translation ------------------------------------------------------------------------------

def test_translation_moves_a_bright_pixel_by_the_hand_set_shift() -> None:
    x = torch.full((2, 1, 8, 8), -1.0)
    x[:, 0, 3, 4] = 1.0
    out = translate(x, torch.tensor([2, -3]), torch.tensor([-1, 3]))
    expected = torch.full((2, 1, 8, 8), -1.0)
    expected[0, 0, 5, 3] = 1.0
    expected[1, 0, 0, 7] = 1.0
    assert_close(out, expected, rtol=0, atol=0)


def test_translation_pads_uncovered_pixels_with_background_minus_one() -> None:
    assert TRANSLATION_FILL == -1.0
    x = torch.full((1, 3, 6, 6), 0.5)
    out = translate(x, torch.tensor([1]), torch.tensor([-2]))
    expected = torch.full((1, 3, 6, 6), -1.0)
    expected[:, :, 1:, :4] = 0.5
    assert_close(out, expected, rtol=0, atol=0)


def test_random_translation_reaches_but_never_exceeds_an_eighth_of_the_side() -> None:
    side, n = 16, 300
    x = torch.full((n, 1, side, side), -1.0)
    x[:, 0, 8, 8] = 1.0
    out = translation(x, _gen(4))
    flat = out.flatten(1).argmax(dim=1)
    shift_y, shift_x = flat // side - 8, flat % side - 8
    assert int(shift_y.abs().max()) == 2 and int(shift_x.abs().max()) == 2
    assert_close(out.flatten(1).max(dim=1).values, torch.ones(n))


# --- cutout -----------------------------------------------------------------------------------

def test_cutout_square_sets_the_hand_set_square_to_zero() -> None:
    assert CUTOUT_FILL == 0.0
    x = torch.full((1, 3, 8, 8), 0.5)
    out = cutout_square(x, torch.tensor([2]), torch.tensor([3]), (4, 4))
    expected = torch.full((1, 3, 8, 8), 0.5)
    expected[:, :, 2:6, 3:7] = 0.0
    assert_close(out, expected, rtol=0, atol=0)


def test_cutout_square_is_clipped_at_the_border() -> None:
    x = torch.full((1, 1, 8, 8), 0.5)
    out = cutout_square(x, torch.tensor([-2]), torch.tensor([6]), (4, 4))
    expected = torch.full((1, 1, 8, 8), 0.5)
    expected[:, :, 0:2, 6:8] = 0.0
    assert_close(out, expected, rtol=0, atol=0)


def test_random_cutout_is_a_square_of_half_the_side_when_fully_inside() -> None:
    x = torch.full((300, 1, 8, 8), 0.5)
    out = cutout(x, _gen(8))
    cut = out == CUTOUT_FILL
    assert torch.equal(out[~cut], x[~cut])
    rows, cols = cut.any(dim=3).sum(dim=(1, 2)), cut.any(dim=2).sum(dim=(1, 2))
    assert_close(cut.sum(dim=(1, 2, 3)), rows * cols)  # one axis-aligned rectangle per sample
    assert int(rows.max()) == 4 and int(cols.max()) == 4 and int(rows.min()) >= 2 and int(cols.min()) >= 2
    full = (rows == 4) & (cols == 4)
    assert 0 < int(full.sum()) < 300


# --- color ------------------------------------------------------------------------------------

def test_color_on_one_channel_literal_values() -> None:
    x = torch.tensor([[[[-1.0, 0.0], [0.5, 1.0]]]])
    out = adjust_color(x, torch.tensor([0.25]), torch.tensor([1.7]), torch.tensor([0.5]))
    expected = torch.tensor([[[[-0.1875, 0.3125], [0.5625, 0.8125]]]])
    assert_close(out, expected, rtol=0, atol=1e-6)


def test_saturation_is_a_no_op_on_one_channel_and_scales_channel_spread_on_rgb() -> None:
    gray = _images(n=2, c=1)
    assert_close(adjust_color(gray, torch.zeros(2), torch.tensor([0.0, 2.0]), torch.ones(2)), gray)
    rgb = torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1)
    out = adjust_color(rgb.repeat(2, 1, 1, 1), torch.zeros(2), torch.tensor([0.0, 2.0]), torch.ones(2))
    assert_close(out.flatten(1), torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, -2.0]]))


def test_random_color_on_one_channel_draws_brightness_in_its_range() -> None:
    out = color(torch.zeros(1000, 1, 1, 1), _gen(9)).flatten()  # one gray pixel: only brightness acts
    assert float(out.min()) >= -0.5 and float(out.max()) <= 0.5
    assert float(out.min()) < -0.45 and float(out.max()) > 0.45


# --- policy parsing ---------------------------------------------------------------------------

def test_parse_policy_splits_and_strips_names() -> None:
    assert parse_policy(" color , translation,cutout") == ALL
    assert parse_policy("") == ()


def test_unknown_policy_name_gives_one_line_message() -> None:
    message = "unknown augmentation 'flip' in augment.policy; known: color, translation, cutout"
    with pytest.raises(GanstabError) as parsed:
        parse_policy("color,flip")
    assert str(parsed.value) == message
    with pytest.raises(GanstabError) as applied:
        augment(_images(), ("flip",), _gen())
    assert str(applied.value) == message


# --- ADA --------------------------------------------------------------------------------------

def test_ada_signal_is_mean_sign_of_real_logits() -> None:
    assert_close(ada_signal(torch.tensor([2.0, -1.0, 0.0, 3.0])), torch.tensor(0.25))


def test_ada_update_moves_p_toward_the_target_side_and_clamps() -> None:
    assert_close(ada_update(0.5, 0.7, 0.6, 1000), 0.502)
    assert_close(ada_update(0.5, 0.5, 0.6, 1000), 0.498)
    assert ada_update(0.5, 0.6, 0.6, 1000) == 0.5
    assert ada_update(0.9995, 1.0, 0.6, 1000) == 1.0
    assert ada_update(0.0005, -1.0, 0.6, 1000) == 0.0


def test_ada_p_goes_from_zero_to_one_in_speed_images() -> None:
    p = 0.0
    for _ in range(499):
        p = ada_update(p, 0.9, 0.6, 1000, speed_images=500_000)
    assert_close(p, 0.998)
    assert ada_update(p, 0.9, 0.6, 1000, speed_images=500_000) == 1.0


def test_controller_rises_on_overfitting_falls_otherwise_and_waits_for_the_interval() -> None:
    ada = AdaController(target=0.6, interval=64, speed_images=6400)
    ada.observe(torch.ones(32))
    assert ada.step(32) == 0.0
    ada.observe(torch.ones(32))
    assert_close(ada.step(32), 0.01)
    for _ in range(3):
        ada.observe(torch.tensor([1.0, -1.0] * 32))  # r_t = 0 < 0.6
        ada.step(64)
    assert ada.p == 0.0
    assert ada.step(64) == 0.0  # an interval with no observation leaves p alone


def test_controller_state_round_trip_continues_identically() -> None:
    g = torch.Generator().manual_seed(11)
    batches = [torch.randn(16, generator=g) + 0.8 for _ in range(40)]
    first = AdaController(target=0.6, interval=48, speed_images=1600)
    for logits in batches[:13]:
        first.observe(logits)
        first.step(16)
    state = first.state_dict()
    assert state["images_since_update"] == 16 and state["signal_count"] == 16
    assert all(type(v) in (float, int) for v in state.values())
    second = AdaController(target=0.6, interval=48, speed_images=1600)
    second.load_state_dict(dict(state))
    ps_first, ps_second = [], []
    for logits in batches[13:]:
        for ada, ps in ((first, ps_first), (second, ps_second)):
            ada.observe(logits)
            ps.append(ada.step(16))
    assert ps_first == ps_second
    assert first.state_dict() == second.state_dict()
    assert 0.0 < ps_first[-1] < 1.0


def test_parse_policy_names_the_key_that_held_the_unknown_transform() -> None:
    with pytest.raises(GanstabError) as error:
        parse_policy("color, flip", key="penalty.bcr.policy")
    assert str(error.value) == "unknown augmentation 'flip' in penalty.bcr.policy; known: color, translation, cutout"


def test_ada_update_default_speed_and_its_refusal() -> None:
    assert ada_update(0.0, 1.0, 0.6, 250_000) == 0.5  # half of the default 500,000 images
    assert ada_update(0.0, 1.0, 0.6, 1, speed_images=1) == 1.0
    for speed in (0, -5):
        with pytest.raises(ValueError) as error:
            ada_update(0.0, 1.0, 0.6, 1, speed_images=speed)
        assert str(error.value) == f"speed_images must be positive, got {speed}"


def test_controller_defaults_are_the_papers_and_start_from_a_clean_state() -> None:
    ada = AdaController()
    assert (ada.target, ada.interval, ada.speed_images, ada.p) == (0.6, 256, 500_000, 0.0)
    assert ada.state_dict() == {"p": 0.0, "signal_sum": 0.0, "signal_count": 0, "images_since_update": 0,
                                "last_signal": 0.0}
    smallest = AdaController(interval=1, speed_images=1, p=1.0)
    assert (smallest.interval, smallest.speed_images, smallest.p) == (1, 1, 1.0)


def test_controller_refuses_bad_settings_naming_them() -> None:
    for interval, speed in ((0, 100), (4, 0)):
        with pytest.raises(ValueError) as error:
            AdaController(interval=interval, speed_images=speed)
        assert str(error.value) == f"interval and speed_images must be >= 1, got {interval} and {speed}"
    for p in (1.5, -0.1):
        with pytest.raises(ValueError) as error:
            AdaController(p=p)
        assert str(error.value) == f"augmentation probability p must be within [0, 1], got {p}"


def test_controller_signal_is_the_mean_sign_over_every_observed_batch() -> None:
    ada = AdaController(target=0.6, interval=8, speed_images=800)
    ada.observe(torch.tensor([1.0, 2.0, 3.0]))
    ada.observe(torch.tensor([-1.0, 4.0, -2.0, 5.0, 0.5]))
    assert ada.state_dict()["signal_count"] == 8 and ada.state_dict()["signal_sum"] == 4.0
    # r_t = 4 / 8 = 0.5 < 0.6: p would fall below 0 and stays 0; the sums restart from zero
    assert ada.step(8) == 0.0
    assert ada.state_dict() == {"p": 0.0, "signal_sum": 0.0, "signal_count": 0, "images_since_update": 0,
                                "last_signal": 0.5}
    one = AdaController(target=0.6, interval=1, speed_images=100)
    one.observe(torch.tensor([2.0]))  # a single observed logit is a signal too
    assert one.step(1) == 0.01 and one.last_signal == 1.0


def test_controller_load_state_dict_restores_every_field() -> None:
    state = {"p": 0.25, "signal_sum": -3.0, "signal_count": 7, "images_since_update": 5, "last_signal": 0.75}
    ada = AdaController()
    ada.load_state_dict(state)
    assert ada.state_dict() == state


def test_random_translation_draws_every_shift_from_minus_to_plus_the_largest() -> None:
    side, n = 16, 300
    x = torch.full((n, 1, side, side), -1.0)
    x[:, 0, 8, 8] = 1.0
    flat = translation(x, _gen(5)).flatten(1).argmax(dim=1)
    assert set((flat // side - 8).tolist()) == {-2, -1, 0, 1, 2}
    assert set((flat % side - 8).tolist()) == {-2, -1, 0, 1, 2}


def test_cutout_square_of_a_non_square_size() -> None:
    x = torch.full((1, 1, 4, 6), 0.5)
    out = cutout_square(x, torch.tensor([1]), torch.tensor([2]), (2, 3))
    expected = torch.full((1, 1, 4, 6), 0.5)
    expected[:, :, 1:3, 2:5] = 0.0
    assert_close(out, expected, rtol=0, atol=0)


def test_random_cutout_centres_are_the_generators_uniform_pixels_on_a_non_square_image() -> None:
    n, h, w = 80, 8, 12
    x = torch.full((n, 1, h, w), 0.5)
    out = cutout(x, _gen(21))
    # the same draws by hand: centres uniform in [0, h - 1] x [0, w - 1]; a (4, 6) box (half the side, rounded)
    # whose top-left corner is the centre minus (4 // 2, 6 // 2)
    g = _gen(21)
    centre_y, centre_x = torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)
    expected = x.clone()
    for i in range(n):
        top, left = int(centre_y[i]) - 2, int(centre_x[i]) - 3
        expected[i, :, max(top, 0):top + 4, max(left, 0):left + 6] = 0.0
    assert_close(out, expected, rtol=0, atol=0)
    assert {0, h - 1} <= set(centre_y.tolist()) and {0, w - 1} <= set(centre_x.tolist())


def test_translation_up_and_right_fills_the_bottom_rows_and_left_columns() -> None:
    x = torch.full((1, 2, 5, 6), 0.5)
    out = translate(x, torch.tensor([-2]), torch.tensor([2]))
    expected = torch.full((1, 2, 5, 6), -1.0)
    expected[:, :, :3, 2:] = 0.5
    assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_every_transform_keeps_the_images_dtype(dtype: torch.dtype) -> None:
    for name in ALL:
        assert POLICIES[name](_images(dtype=dtype), _gen()).dtype == dtype, name
    assert augment(_images(dtype=dtype), ALL, _gen(), p=0.5).dtype == dtype


def test_random_color_draws_brightness_saturation_and_contrast_in_their_ranges() -> None:
    x, n = _images(n=6, c=3), 6
    g = _gen(13)
    draws = [torch.rand(n, generator=g) for _ in range(3)]
    brightness, saturation, contrast = draws[0] - 0.5, 2.0 * draws[1], 0.5 + draws[2]
    assert_close(color(x, _gen(13)), adjust_color(x, brightness, saturation, contrast))
