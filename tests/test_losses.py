"""GAN losses against values computed by hand from small logits."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch.testing import assert_close

from ganstab.losses import LOSS_KINDS, TARGETED_KINDS, discriminator_loss, drift_penalty, generator_loss

REAL = [2.0, -1.0]
FAKE = [0.5, -3.0]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def bce(logit: float, target: float) -> float:
    """Binary cross-entropy of one logit against a target, written from its definition."""
    p = sigmoid(logit)
    return -(target * math.log(p) + (1.0 - target) * math.log(1.0 - p))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def expect(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32)


# ---------------------------------------------------------------- discriminator, default targets

# minimax and nonsaturating share D's loss: BCE(real, 1) + BCE(fake, 0), each a batch mean.
#   real: -log sigmoid(2) = log(1 + e^-2) = 0.126928;  -log sigmoid(-1) = log(1 + e) = 1.313262
#   fake: -log(1 - sigmoid(0.5)) = log(1 + e^0.5) = 0.974077;  -log(1 - sigmoid(-3)) = log(1 + e^-3) = 0.048587
D_BCE = mean([math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(1.0))]) + mean(
    [math.log(1 + math.exp(0.5)), math.log(1 + math.exp(-3.0))]
)


@pytest.mark.parametrize("kind", ["minimax", "nonsaturating"])
def test_d_bce_default_targets(kind):
    assert_close(discriminator_loss(kind, t(REAL), t(FAKE)), expect(D_BCE))
    # the same number from the definition of cross-entropy
    assert_close(expect(D_BCE), expect(mean(bce(x, 1.0) for x in REAL) + mean(bce(x, 0.0) for x in FAKE)))
    assert_close(expect(D_BCE), expect(0.720095 + 0.511332), atol=1e-5, rtol=0)


def test_d_wasserstein():
    # mean(fake) - mean(real) = -1.25 - 0.5
    assert_close(discriminator_loss("wasserstein", t(REAL), t(FAKE)), expect(-1.75))


def test_d_lsgan_default_targets():
    # 0.5 * mean((2-1)^2, (-1-1)^2) + 0.5 * mean(0.5^2, (-3)^2) = 0.5 * 2.5 + 0.5 * 4.625
    assert_close(discriminator_loss("lsgan", t(REAL), t(FAKE)), expect(1.25 + 2.3125))


def test_d_hinge():
    # mean(relu(1-2), relu(1+1)) + mean(relu(1+0.5), relu(1-3)) = mean(0, 2) + mean(1.5, 0)
    assert_close(discriminator_loss("hinge", t(REAL), t(FAKE)), expect(1.0 + 0.75))


# ---------------------------------------------------------------- discriminator, smoothed targets

@pytest.mark.parametrize("kind", ["minimax", "nonsaturating"])
def test_d_bce_with_targets(kind):
    real_t, fake_t = 0.9, 0.1
    by_hand = mean(
        -(real_t * math.log(sigmoid(x)) + (1 - real_t) * math.log(1 - sigmoid(x))) for x in REAL
    ) + mean(-(fake_t * math.log(sigmoid(x)) + (1 - fake_t) * math.log(1 - sigmoid(x))) for x in FAKE)
    got = discriminator_loss(kind, t(REAL), t(FAKE), real_target=0.9, fake_target=0.1)
    assert_close(got, expect(by_hand))
    # smoothing changes the value
    assert not torch.equal(got, discriminator_loss(kind, t(REAL), t(FAKE)))


def test_d_bce_one_sided_smoothing():
    by_hand = mean(bce(x, 0.9) for x in REAL) + mean(bce(x, 0.0) for x in FAKE)
    got = discriminator_loss("nonsaturating", t(REAL), t(FAKE), real_target=0.9)
    assert_close(got, expect(by_hand))


def test_d_lsgan_with_targets():
    # 0.5 * mean((2-0.9)^2, (-1-0.9)^2) + 0.5 * mean((0.5-0.1)^2, (-3-0.1)^2)
    by_hand = 0.5 * mean([1.1**2, 1.9**2]) + 0.5 * mean([0.4**2, 3.1**2])
    got = discriminator_loss("lsgan", t(REAL), t(FAKE), real_target=0.9, fake_target=0.1)
    assert_close(got, expect(by_hand))
    assert_close(got, expect(0.5 * 2.41 + 0.5 * 4.885))


# ---------------------------------------------------------------- generator

def test_g_minimax_is_saturating_log_one_minus_d():
    # mean log(1 - sigmoid(f)) = -mean log(1 + e^f)
    by_hand = mean(math.log(1 - sigmoid(x)) for x in FAKE)
    assert_close(generator_loss("minimax", t(FAKE)), expect(by_hand))
    assert_close(expect(by_hand), expect(-mean([math.log(1 + math.exp(0.5)), math.log(1 + math.exp(-3.0))])))


def test_g_nonsaturating():
    # -mean log sigmoid(f) = mean log(1 + e^-f)
    by_hand = mean(-math.log(sigmoid(x)) for x in FAKE)
    assert_close(generator_loss("nonsaturating", t(FAKE)), expect(by_hand))
    assert_close(expect(by_hand), expect(mean([math.log(1 + math.exp(-0.5)), math.log(1 + math.exp(3.0))])))


@pytest.mark.parametrize("kind", ["wasserstein", "hinge"])
def test_g_wasserstein_and_hinge(kind):
    # -mean(fake) = -(0.5 - 3) / 2
    assert_close(generator_loss(kind, t(FAKE)), expect(1.25))


def test_g_lsgan():
    # 0.5 * mean((0.5-1)^2, (-3-1)^2) = 0.5 * (0.25 + 16) / 2
    assert_close(generator_loss("lsgan", t(FAKE)), expect(4.0625))


# ---------------------------------------------------------------- shapes, dtypes, gradients

@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_column_logits_give_the_same_value(kind):
    flat_d = discriminator_loss(kind, t(REAL), t(FAKE))
    col_d = discriminator_loss(kind, t(REAL).view(2, 1), t(FAKE).view(2, 1))
    assert_close(col_d, flat_d)
    assert col_d.shape == torch.Size([])
    assert_close(generator_loss(kind, t(FAKE).view(2, 1)), generator_loss(kind, t(FAKE)))


@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_half_precision_logits_give_float32_scalars(kind):
    d = discriminator_loss(kind, t(REAL).half(), t(FAKE).half())
    g = generator_loss(kind, t(FAKE).half())
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    assert_close(d, discriminator_loss(kind, t(REAL), t(FAKE)))
    assert_close(g, generator_loss(kind, t(FAKE)))


def test_wasserstein_gradients_by_hand():
    real = t(REAL).requires_grad_(True)
    fake = t(FAKE).requires_grad_(True)
    discriminator_loss("wasserstein", real, fake).backward()
    assert_close(real.grad, t([-0.5, -0.5]))
    assert_close(fake.grad, t([0.5, 0.5]))


def test_nonsaturating_g_gradient_by_hand():
    # d/df mean(log(1 + e^-f)) = -(1 - sigmoid(f)) / B
    fake = t(FAKE).requires_grad_(True)
    generator_loss("nonsaturating", fake).backward()
    assert_close(fake.grad, t([-(1 - sigmoid(x)) / 2 for x in FAKE]))


# ---------------------------------------------------------------- errors

KNOWN = "minimax, nonsaturating, wasserstein, lsgan, hinge"


def test_unknown_kind_names_the_known_kinds():
    with pytest.raises(ValueError) as info:
        discriminator_loss("vanilla", t(REAL), t(FAKE))
    assert str(info.value) == f"unknown loss kind 'vanilla'; known kinds: {KNOWN}"
    with pytest.raises(ValueError, match=re.escape(f"unknown loss kind 'wgan'; known kinds: {KNOWN}")):
        generator_loss("wgan", t(FAKE))


def test_loss_kind_registry():
    assert LOSS_KINDS == ("minimax", "nonsaturating", "wasserstein", "lsgan", "hinge")
    assert TARGETED_KINDS == {"minimax", "nonsaturating", "lsgan"}


@pytest.mark.parametrize("kind", ["wasserstein", "hinge"])
@pytest.mark.parametrize("targets", [dict(real_target=0.9), dict(fake_target=0.1),
                                     dict(real_target=0.9, fake_target=0.1)])
def test_targets_rejected_for_wasserstein_and_hinge(kind, targets):
    with pytest.raises(ValueError) as info:
        discriminator_loss(kind, t(REAL), t(FAKE), **targets)
    assert str(info.value) == (
        f"label targets have no meaning for the {kind} loss; use real_target=1.0, fake_target=0.0"
    )


@pytest.mark.parametrize("kind", ["wasserstein", "hinge"])
def test_default_targets_accepted_for_wasserstein_and_hinge(kind):
    got = discriminator_loss(kind, t(REAL), t(FAKE), real_target=1.0, fake_target=0.0)
    assert_close(got, discriminator_loss(kind, t(REAL), t(FAKE)))


# ---------------------------------------------------------------- drift

def test_drift_penalty():
    # mean(2^2, (-1)^2) = 2.5
    assert_close(drift_penalty(t(REAL)), expect(2.5))
    assert_close(drift_penalty(t(REAL).view(2, 1).half()), expect(2.5))


def test_drift_penalty_gradient():
    real = t(REAL).requires_grad_(True)
    drift_penalty(real).backward()
    # d/dx mean(x^2) = 2x / B
    assert_close(real.grad, t([2.0, -1.0]))
