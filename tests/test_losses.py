"""GAN losses against values computed by hand from small logits."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch.testing import assert_close

from ganstab.losses import (LOSS_KINDS, RELATIVISTIC_KINDS, TARGETED_KINDS, class_loss, discriminator_loss,
                            discriminator_objective, drift_penalty, generator_loss, generator_objective, lecam_penalty)

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
    # real logits are read by the relativistic kinds only
    assert_close(generator_loss(kind, t(FAKE).view(2, 1), t(REAL).view(2, 1)), generator_loss(kind, t(FAKE), t(REAL)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_half_precision_logits_give_float32_scalars(kind, dtype):
    # REAL and FAKE are exact in both half formats, and every loss computes in float32
    d = discriminator_loss(kind, t(REAL).to(dtype), t(FAKE).to(dtype))
    g = generator_loss(kind, t(FAKE).to(dtype), t(REAL).to(dtype))
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    assert_close(d, discriminator_loss(kind, t(REAL), t(FAKE)))
    assert_close(g, generator_loss(kind, t(FAKE), t(REAL)))


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

KNOWN = "minimax, nonsaturating, wasserstein, lsgan, hinge, relativistic, relativistic_average"


def test_unknown_kind_names_the_known_kinds():
    with pytest.raises(ValueError) as info:
        discriminator_loss("vanilla", t(REAL), t(FAKE))
    assert str(info.value) == f"unknown loss kind 'vanilla'; known kinds: {KNOWN}"
    with pytest.raises(ValueError, match=re.escape(f"unknown loss kind 'wgan'; known kinds: {KNOWN}")):
        generator_loss("wgan", t(FAKE))


def test_loss_kind_registry():
    assert LOSS_KINDS == ("minimax", "nonsaturating", "wasserstein", "lsgan", "hinge", "relativistic",
                          "relativistic_average")
    assert TARGETED_KINDS == {"minimax", "nonsaturating", "lsgan"}
    assert RELATIVISTIC_KINDS == {"relativistic", "relativistic_average"}


def test_config_loss_kinds_match_the_registry():
    from typing import get_args

    from ganstab.config import LossConfig

    assert get_args(LossConfig.model_fields["kind"].annotation) == LOSS_KINDS


@pytest.mark.parametrize("kind", ["wasserstein", "hinge", "relativistic", "relativistic_average"])
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


# ---------------------------------------------------------------- relativistic losses (pairs and averages)

def softplus(x: float) -> float:
    return math.log(1.0 + math.exp(x))


# RpGAN pairs real i with fake i: (2, 0.5) and (-1, -3).
#   D: mean(softplus(0.5 - 2), softplus(-3 + 1)) = mean(softplus(-1.5), softplus(-2)) = mean(0.201413, 0.126928)
#   G: mean(softplus(2 - 0.5), softplus(-1 + 3)) = mean(softplus(1.5), softplus(2)) = mean(1.701413, 2.126928)
RP_D = mean([softplus(-1.5), softplus(-2.0)])
RP_G = mean([softplus(1.5), softplus(2.0)])
# RaGAN: mean(REAL) = 0.5, mean(FAKE) = -1.25, each sample against the other side's mean.
#   D: mean(softplus(-1.25 - 2), softplus(-1.25 + 1)) + mean(softplus(0.5 - 0.5), softplus(-3 - 0.5))
#   G: mean(softplus(0.5 - 0.5), softplus(0.5 + 3)) + mean(softplus(2 + 1.25), softplus(-1 + 1.25))
RA_D = mean([softplus(-3.25), softplus(-0.25)]) + mean([softplus(0.0), softplus(-3.5)])
RA_G = mean([softplus(0.0), softplus(3.5)]) + mean([softplus(3.25), softplus(0.25)])


def test_relativistic_values_by_hand():
    assert_close(discriminator_loss("relativistic", t(REAL), t(FAKE)), expect(RP_D))
    assert_close(generator_loss("relativistic", t(FAKE), t(REAL)), expect(RP_G))
    assert_close(expect(RP_D), expect(0.164170), atol=1e-6, rtol=0)
    assert_close(expect(RP_G), expect(1.914170), atol=1e-6, rtol=0)


def test_relativistic_average_values_by_hand():
    assert_close(discriminator_loss("relativistic_average", t(REAL), t(FAKE)), expect(RA_D))
    assert_close(generator_loss("relativistic_average", t(FAKE), t(REAL)), expect(RA_G))
    # 0.5 * (0.038041 + 0.575939) + 0.5 * (0.693147 + 0.029750) and its mirror
    # 0.5 * (0.693147 + 3.529750) + 0.5 * (3.288041 + 0.825939)
    assert_close(expect(RA_D), expect(0.668439), atol=1e-6, rtol=0)
    assert_close(expect(RA_G), expect(4.168439), atol=1e-6, rtol=0)


def test_relativistic_pairs_sample_i_with_sample_i():
    # swapping the fakes pairs (2, -3) and (-1, 0.5): mean(softplus(-5), softplus(1.5))
    swapped = t([FAKE[1], FAKE[0]])
    assert_close(discriminator_loss("relativistic", t(REAL), swapped), expect(mean([softplus(-5.0), softplus(1.5)])))
    assert_close(generator_loss("relativistic", swapped, t(REAL)), expect(mean([softplus(5.0), softplus(-1.5)])))
    # RaGAN compares with means, so the order of the samples does not matter
    assert_close(discriminator_loss("relativistic_average", t(REAL), swapped), expect(RA_D))
    assert_close(generator_loss("relativistic_average", swapped, t(REAL)), expect(RA_G))


def test_relativistic_gradients_by_hand():
    real, fake = t(REAL).requires_grad_(True), t(FAKE).requires_grad_(True)
    discriminator_loss("relativistic", real, fake).backward()
    # d/dfake_i mean softplus(fake - real) = sigmoid(fake_i - real_i) / B; real gets the opposite
    by_hand = t([sigmoid(f - r) / 2 for r, f in zip(REAL, FAKE)])
    assert_close(fake.grad, by_hand)
    assert_close(real.grad, -by_hand)
    fake = t(FAKE).requires_grad_(True)
    generator_loss("relativistic", fake, t(REAL)).backward()
    # d/dfake_i mean softplus(real - fake) = -sigmoid(real_i - fake_i) / B
    assert_close(fake.grad, t([-sigmoid(r - f) / 2 for r, f in zip(REAL, FAKE)]))


def test_relativistic_average_gradients_by_hand():
    mean_real, mean_fake = mean(REAL), mean(FAKE)
    real, fake = t(REAL).requires_grad_(True), t(FAKE).requires_grad_(True)
    discriminator_loss("relativistic_average", real, fake).backward()
    # D = 1/B sum_i softplus(m_f - r_i) + 1/B sum_i softplus(f_i - m_r)
    # dD/dr_j = -sigmoid(m_f - r_j) / B - 1/B^2 sum_i sigmoid(f_i - m_r)
    # dD/df_j = 1/B^2 sum_i sigmoid(m_f - r_i) + sigmoid(f_j - m_r) / B
    s_real = sum(sigmoid(mean_fake - r) for r in REAL)
    s_fake = sum(sigmoid(f - mean_real) for f in FAKE)
    assert_close(real.grad, t([-sigmoid(mean_fake - r) / 2 - s_fake / 4 for r in REAL]))
    assert_close(fake.grad, t([s_real / 4 + sigmoid(f - mean_real) / 2 for f in FAKE]))
    fake = t(FAKE).requires_grad_(True)
    generator_loss("relativistic_average", fake, t(REAL)).backward()
    # G = 1/B sum_i softplus(m_r - f_i) + 1/B sum_i softplus(r_i - m_f)
    # dG/df_j = -sigmoid(m_r - f_j) / B - 1/B^2 sum_i sigmoid(r_i - m_f)  (m_f holds f_j with weight 1/B)
    s_g = sum(sigmoid(r - mean_fake) for r in REAL)
    assert_close(fake.grad, t([-sigmoid(mean_real - f) / 2 - s_g / 4 for f in FAKE]))


@pytest.mark.parametrize("kind", ["relativistic", "relativistic_average"])
@pytest.mark.parametrize("real_shape,fake_shape", [((2,), (3,)), ((2, 1), (2,)), ((4,), (2, 2))])
def test_relativistic_refuses_logits_of_different_shapes(kind, real_shape, fake_shape):
    real, fake = torch.zeros(real_shape), torch.zeros(fake_shape)
    message = (f"the {kind} loss pairs real logit i with fake logit i, so both need one shape; got real "
               f"{real_shape} and fake {fake_shape}")
    with pytest.raises(ValueError) as info:
        discriminator_loss(kind, real, fake)
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        generator_loss(kind, fake, real)
    assert str(info.value) == message


@pytest.mark.parametrize("kind", ["relativistic", "relativistic_average"])
def test_relativistic_generator_loss_needs_real_logits(kind):
    with pytest.raises(ValueError) as info:
        generator_loss(kind, t(FAKE))
    assert str(info.value) == (f"the {kind} loss compares fakes with reals; pass real_logits (D's logits on a "
                               "real batch)")


# ---------------------------------------------------------------- LeCam

# anchors alpha_R = 0.5 (EMA of D's mean real logit), alpha_F = -0.5 (fake)
#   real part: mean(relu(2 + 0.5)^2, relu(-1 + 0.5)^2) = mean(6.25, 0) = 3.125
#   fake part: mean(relu(0.5 - 0.5)^2, relu(0.5 + 3)^2) = mean(0, 12.25) = 6.125
LECAM = 3.125 + 6.125


def test_lecam_value_and_gradients_by_hand():
    real, fake = t(REAL).requires_grad_(True), t(FAKE).requires_grad_(True)
    anchor_real, anchor_fake = expect(0.5).requires_grad_(True), expect(-0.5).requires_grad_(True)
    value = lecam_penalty(real, fake, anchor_real, anchor_fake)
    assert_close(value, expect(LECAM))
    value.backward()
    # d/dr_i mean(relu(r - a_F)^2) = 2 relu(r_i - a_F) / B; d/df_i mean(relu(a_R - f)^2) = -2 relu(a_R - f_i) / B
    assert_close(real.grad, t([2.5, 0.0]))
    assert_close(fake.grad, t([0.0, -3.5]))
    assert anchor_real.grad is None and anchor_fake.grad is None  # the anchors are constants


def test_lecam_without_clipping_is_the_papers_squared_distance():
    # every real above alpha_F and every fake below alpha_R: mean((r - a_F)^2) + mean((f - a_R)^2)
    real, fake = t([2.0, 1.0]), t([-1.0, -2.0])
    assert_close(lecam_penalty(real, fake, expect(0.5), expect(-0.5)), expect(mean([6.25, 2.25]) + mean([2.25, 6.25])))
    assert_close(lecam_penalty(real.view(2, 1).bfloat16(), fake.view(2, 1).bfloat16(), expect(0.5), expect(-0.5)),
                 expect(8.5))


# ---------------------------------------------------------------- D's objective with R2 and LeCam

def test_objective_adds_r1_r2_and_lecam_with_their_weights():
    r1, r2 = expect(0.4), expect(0.6)
    total, parts = discriminator_objective("hinge", t(REAL), t(FAKE), r1=r1, r1_gamma=2.0, r2=r2, r2_gamma=10.0,
                                           lecam_anchors=(expect(0.5), expect(-0.5)), lecam_weight=0.3)
    # hinge 1.75 + 2/2 * 0.4 + 10/2 * 0.6 + 0.3 * 9.25
    assert_close(total, expect(1.75 + 0.4 + 3.0 + 2.775))
    assert sorted(parts) == ["lecam", "loss_d", "r1", "r2"]
    assert_close(parts["r2"], r2)
    assert_close(parts["lecam"], expect(LECAM))
    total, parts = discriminator_objective("relativistic", t(REAL), t(FAKE))
    assert_close(total, expect(RP_D))
    assert sorted(parts) == ["loss_d"]


# ---------------------------------------------------------------- every weighted term of D's objective, G's objective

def test_objective_adds_every_weighted_term_and_reports_it_unweighted():
    total, parts = discriminator_objective(
        "wasserstein", t(REAL), t(FAKE), gp=expect(0.3), gp_weight=10.0, drift_weight=0.001, aux_class=expect(0.7),
        aux_weight=2.0, bcr_real=expect(0.2), bcr_real_weight=5.0, bcr_fake=expect(0.1), bcr_fake_weight=3.0,
        zcr=expect(0.05), zcr_weight=4.0)
    # wasserstein mean(fake) - mean(real) = -1.25 - 0.5 = -1.75; drift mean(2^2, (-1)^2) = 2.5
    # -1.75 + 10 * 0.3 + 0.001 * 2.5 + 2 * 0.7 + 5 * 0.2 + 3 * 0.1 + 4 * 0.05 = 4.1525
    assert_close(total, expect(4.1525))
    assert sorted(parts) == ["bcr_fake", "bcr_real", "class_d", "drift", "gp", "loss_d", "zcr_d"]
    for name, value in (("loss_d", -1.75), ("gp", 0.3), ("drift", 2.5), ("class_d", 0.7), ("bcr_real", 0.2),
                        ("bcr_fake", 0.1), ("zcr_d", 0.05)):
        assert_close(parts[name], expect(value))


def test_objective_passes_label_targets_to_the_loss():
    total, parts = discriminator_objective("lsgan", t(REAL), t(FAKE), real_target=0.9, fake_target=0.1)
    # 0.5 * mean((2 - 0.9)^2, (-1 - 0.9)^2) + 0.5 * mean((0.5 - 0.1)^2, (-3 - 0.1)^2)
    assert_close(total, expect(0.5 * mean([1.21, 3.61]) + 0.5 * mean([0.16, 9.61])))
    assert sorted(parts) == ["loss_d"]


def test_generator_objective_subtracts_the_weighted_diversity_term():
    total, parts = generator_objective(expect(1.5), zcr=expect(0.25), zcr_weight=2.0)
    assert_close(total, expect(1.0))
    assert sorted(parts) == ["zcr_g"]
    assert_close(parts["zcr_g"], expect(0.25))
    total, parts = generator_objective(expect(1.5))
    assert_close(total, expect(1.5))
    assert parts == {}


def test_class_loss_is_the_cross_entropy_in_float32():
    logits, labels = t([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]]), torch.tensor([0, 2])
    # -log softmax: sample 0 picks logit 2 of (2, 0, -1), sample 1 logit 1 of (0.5, 0.5, 1)
    by_hand = mean([-math.log(math.exp(2.0) / (math.exp(2.0) + 1.0 + math.exp(-1.0))),
                    -math.log(math.exp(1.0) / (2 * math.exp(0.5) + math.exp(1.0)))])
    assert_close(class_loss(logits, labels), expect(by_hand))
    value = class_loss(logits.bfloat16(), labels)
    assert value.dtype == torch.float32
    assert_close(value, expect(by_hand), atol=2e-2, rtol=0)


def test_objective_logs_terms_given_without_a_weight_but_adds_nothing():
    # every weight defaults to 0: the terms are reported (unweighted) and the total is the loss alone
    total, parts = discriminator_objective("hinge", t(REAL), t(FAKE), gp=expect(0.3), r1=expect(0.4),
                                           aux_class=expect(0.7), r2=expect(0.6), bcr_real=expect(0.2),
                                           bcr_fake=expect(0.1), zcr=expect(0.05),
                                           lecam_anchors=(expect(0.5), expect(-0.5)))
    assert_close(total, expect(1.75))
    assert sorted(parts) == ["bcr_fake", "bcr_real", "class_d", "gp", "lecam", "loss_d", "r1", "r2", "zcr_d"]
    total, parts = generator_objective(expect(1.5), zcr=expect(0.25))
    assert_close(total, expect(1.5))
    assert sorted(parts) == ["zcr_g"]
