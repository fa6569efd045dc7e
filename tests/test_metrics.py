"""Numeric tests of the evaluation maths in ganstab.metrics (stats and modes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from ganstab import metrics
from ganstab.metrics import stats


def _points_on_line(xs: list[float]) -> torch.Tensor:
    """Points (x, 0) in the plane, float64, so that every distance below is exact."""
    return torch.tensor([[x, 0.0] for x in xs], dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------------------------


def test_fd_same_samples_is_zero() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 16, generator=gen) @ torch.randn(16, 16, generator=gen)
    assert_close(metrics.frechet_distance(x, x), 0.0, atol=1e-8, rtol=0)
    assert_close(metrics.frechet_distance(x.numpy(), x.numpy()), 0.0, atol=1e-8, rtol=0)


def test_fd_gaussian_mean_shift_large_n() -> None:
    # N(0, I) vs N(mu, I) in D = 8 with N = 100k each: FD -> ||mu||^2 = 4. The estimate differs
    # from 4 by 2 mu.(m_f - m_r) (std 2 * ||mu|| * sqrt(2/N) = 0.018), the bias 2D/N = 1.6e-4 of
    # ||m_f - m_r||^2 and the covariance term ~ ||S_r - S_f||_F^2 / 4 ~ D^2 / N = 6e-4.
    # atol = 0.1 is more than 5 standard deviations.
    gen = torch.Generator().manual_seed(1)
    mu = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    real = torch.randn(100_000, 8, generator=gen)
    fake = torch.randn(100_000, 8, generator=gen) + mu
    assert_close(metrics.frechet_distance(real, fake), 4.0, atol=0.1, rtol=0)


def test_fd_exact_on_hand_built_samples() -> None:
    # X1 = {(+-1, 0), (0, +-2)}: mean 0, unbiased covariance diag(2/3, 8/3).
    # X2 = {(+-2, 0), (0, +-3)} + (1, 1): mean (1, 1), covariance diag(8/3, 18/3).
    # FD = |(1,1)|^2 + (10/3 + 26/3) - 2 (sqrt(16/9) + sqrt(144/9)) = 2 + 12 - 2 (4/3 + 4) = 10/3.
    x1 = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=torch.float64)
    x2 = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 3.0], [0.0, -3.0]], dtype=torch.float64) + 1.0
    assert_close(metrics.frechet_distance(x1, x2), 10.0 / 3.0, atol=1e-12, rtol=0)


def test_fd_from_stats_non_commuting_covariances() -> None:
    # For 2x2 PSD A: tr sqrt(A) = sqrt(tr A + 2 sqrt(det A)); with A ~ S1^1/2 S2 S1^1/2,
    # tr A = tr(S1 S2) = tr([[2,4],[1,8]]) = 10 and det A = det S1 det S2 = 3 * 4 = 12.
    # FD = |(1,2)|^2 + tr S1 + tr S2 - 2 sqrt(10 + 2 sqrt 12) = 5 + 4 + 5 - 2 sqrt(10 + 4 sqrt 3).
    s1 = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    s2 = torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    expected = 14.0 - 2.0 * math.sqrt(10.0 + 4.0 * math.sqrt(3.0))
    value = metrics.frechet_distance_from_stats(torch.zeros(2), s1, torch.tensor([1.0, 2.0]), s2)
    assert_close(value, expected, atol=1e-12, rtol=0)
    # Diagonal case: sqrt(1*4) + sqrt(4*9) = 8, so FD = 0 + 5 + 13 - 16 = 2.
    diagonal = metrics.frechet_distance_from_stats(
        np.zeros(2), np.diag([1.0, 4.0]), np.zeros(2), np.diag([4.0, 9.0])
    )
    assert_close(diagonal, 2.0, atol=1e-12, rtol=0)


def test_fd_matches_scipy_sqrtm() -> None:
    rng = np.random.default_rng(2)
    real = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    fake = rng.normal(size=(250, 12)) @ rng.normal(size=(12, 12)) + 0.3
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert_close(metrics.frechet_distance(real, fake), expected, rtol=1e-8, atol=1e-8)
    assert_close(metrics.frechet_distance(torch.from_numpy(real).float(), fake), expected, rtol=1e-5, atol=1e-4)


def test_fd_stable_when_covariance_is_singular() -> None:
    # Fewer samples than dimensions: both covariances are singular; identical sets still give 0.
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(10, 64, generator=gen)
    value = metrics.frechet_distance(x, x)
    assert math.isfinite(value)
    assert_close(value, 0.0, atol=1e-8, rtol=0)


def test_fd_rejects_bad_shapes() -> None:
    for real, fake, message in (
            (torch.zeros(10, 3), torch.zeros(10, 4), "feature dimensions differ: real 3, fake 4"),
            (torch.zeros(10), torch.zeros(10), "real_features must have shape (N, D), got (10,)"),
            (torch.zeros(10, 3), torch.zeros(10, 3, 1), "fake_features must have shape (N, D), got (10, 3, 1)"),
            (torch.zeros(1, 3), torch.zeros(10, 3), "need at least 2 samples for a covariance, got 1")):
        with pytest.raises(ValueError) as error:
            metrics.frechet_distance(real, fake)
        assert str(error.value) == message


def test_fd_of_two_samples_each_by_hand() -> None:
    # {0, 2}: mean 1, unbiased variance 2; {1, 3}: mean 2, variance 2. FD = 1 + 2 + 2 - 2 sqrt(2 * 2) = 1
    assert_close(metrics.frechet_distance(_points_on_line([0.0, 2.0])[:, :1], _points_on_line([1.0, 3.0])[:, :1]),
                 1.0, atol=1e-12, rtol=0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 40), d=st.integers(1, 6))
def test_fd_symmetric_and_non_negative(seed: int, n: int, d: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    b = torch.randn(n + 2, d, generator=gen, dtype=torch.float64) * 2 + 1
    ab, ba = metrics.frechet_distance(a, b), metrics.frechet_distance(b, a)
    assert ab >= -1e-9
    assert_close(ab, ba, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------------------------


def test_mmd2_unbiased_by_hand() -> None:
    # d = 1, k(a, b) = (a b + 1)^3; x = {0, 1}, y = {1, 2}.
    # within x: k(0,1) = 1 -> 2 * 1 / (2 * 1) = 1; within y: k(1,2) = 27 -> 27;
    # across: (k(0,1) + k(0,2) + k(1,1) + k(1,2)) / 4 = (1 + 1 + 8 + 27) / 4 = 9.25.
    # MMD^2_u = 1 + 27 - 2 * 9.25 = 9.5. With two samples each, every subset is the whole set.
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    assert_close(metrics.mmd2_unbiased(x, y), 9.5, atol=1e-12, rtol=0)
    mean, std = metrics.kid(x, y, subsets=3, subset_size=1000)
    assert_close(mean, 9.5, atol=1e-12, rtol=0)
    assert_close(std, 0.0, atol=1e-12, rtol=0)


def test_kid_same_distribution_near_zero_and_shift_positive() -> None:
    gen = torch.Generator().manual_seed(4)
    real = torch.randn(2000, 16, generator=gen)
    same = torch.randn(2000, 16, generator=gen)
    shifted = torch.randn(2000, 16, generator=gen) + 0.5
    same_mean, same_std = metrics.kid(real, same, subsets=20, subset_size=500)
    shift_mean, shift_std = metrics.kid(real, shifted, subsets=20, subset_size=500)
    # Same law: the unbiased estimate is centred on 0; its subset std here is about 0.01.
    assert abs(same_mean) < 0.01
    assert 0 < same_std < 0.05
    # Shift of 0.5 in all 16 dims: the mean term alone is about 3 * (|mu|^2 / d) = 0.75.
    assert shift_mean > 0.3
    assert shift_mean > 20 * shift_std


def test_kid_deterministic_by_seed() -> None:
    gen = torch.Generator().manual_seed(5)
    real = torch.randn(300, 4, generator=gen)
    fake = torch.randn(300, 4, generator=gen) + 0.1
    state = torch.get_rng_state()
    first = metrics.kid(real, fake, subsets=5, subset_size=100, seed=7)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    assert first == metrics.kid(real, fake, subsets=5, subset_size=100, seed=7)
    assert first != metrics.kid(real, fake, subsets=5, subset_size=100, seed=8)
    # subset size clipped to the smaller set (50 here)
    mean, _ = metrics.kid(real[:50], fake, subsets=2, subset_size=1000)
    assert math.isfinite(mean)


# ---------------------------------------------------------------------------------------------
# Precision / recall / density / coverage
# ---------------------------------------------------------------------------------------------

# Real points on a line at 0, 1, 2, 3; fake points at 3, 3.5, 4.5, 10.
REAL = [0.0, 1.0, 2.0, 3.0]
FAKE = [3.0, 3.5, 4.5, 10.0]


def test_precision_recall_by_hand() -> None:
    # k = 1. Real radii: every real's nearest other real is at 1, so the real manifold is
    # [-1, 4] (closed balls). Fakes inside: 3 (yes), 3.5 (yes), 4.5 (no, 1.5 from 3), 10 (no)
    # -> precision 2/4. Fake radii: 3 -> 0.5, 3.5 -> 0.5, 4.5 -> 1, 10 -> 5.5; balls
    # [2.5, 3.5], [3, 4], [3.5, 5.5], [4.5, 15.5]. Reals inside: only 3 -> recall 1/4.
    result = metrics.precision_recall(_points_on_line(REAL), _points_on_line(FAKE), k=1)
    assert result == {"precision": 0.5, "recall": 0.25}


def test_density_coverage_by_hand() -> None:
    # k = 1, real radii all 1. Balls holding each fake: 3 -> reals 2 and 3 (2 balls),
    # 3.5 -> real 3 (1), 4.5 -> none, 10 -> none: density = 3 / (k * M) = 3 / 4.
    # Coverage: nearest fake to 0, 1, 2, 3 is at 3, 2, 1, 0 <= 1 only for 2 and 3 -> 2/4.
    result = metrics.density_coverage(_points_on_line(REAL), _points_on_line(FAKE), k=1)
    assert result == {"density": 0.75, "coverage": 0.5}
    # k = 2: real radii 0 -> 2, 1 -> 1, 2 -> 1, 3 -> 2. Balls holding each fake:
    # 3 -> reals 2 (d 1 <= 1) and 3 (d 0 <= 2): 2; 3.5 -> real 3 (0.5 <= 2): 1;
    # 4.5 -> real 3 (1.5 <= 2): 1; 10 -> 0. density = 4 / (2 * 4) = 0.5.
    # Coverage: 0 (nearest fake 3 > 2) no, 1 (2 > 1) no, 2 (1 <= 1) yes, 3 (0) yes -> 0.5.
    result = metrics.density_coverage(_points_on_line(REAL), _points_on_line(FAKE), k=2)
    assert result == {"density": 0.5, "coverage": 0.5}


def test_manifold_metrics_identical_sets() -> None:
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(6))
    result = metrics.manifold_metrics(x, x.clone(), k_pr=3, k_dc=5)
    assert result["precision"] == 1.0
    assert result["recall"] == 1.0
    assert result["coverage"] == 1.0
    # Each sample sits in its own ball and in those of the reals that count it among their
    # k nearest; on average exactly (k + 1) / k balls per sample when there are no ties.
    assert_close(result["density"], 6.0 / 5.0, atol=1e-12, rtol=0)


def test_manifold_metrics_chunking_is_exact() -> None:
    gen = torch.Generator().manual_seed(7)
    real = torch.randn(301, 8, generator=gen)
    fake = torch.randn(257, 8, generator=gen) * 1.3 + 0.2
    whole = metrics.manifold_metrics(real, fake, chunk_size=10_000)
    for chunk in (1, 7, 64):
        assert metrics.manifold_metrics(real, fake, chunk_size=chunk) == whole
    assert metrics.manifold_metrics(real, fake, max_chunk_elements=1000) == whole
    assert metrics.precision_recall(real, fake) == {k: whole[k] for k in ("precision", "recall")}
    assert metrics.density_coverage(real, fake) == {k: whole[k] for k in ("density", "coverage")}


def test_manifold_metrics_too_few_samples() -> None:
    with pytest.raises(ValueError):
        metrics.precision_recall(torch.randn(3, 2), torch.randn(10, 2), k=3)
    with pytest.raises(ValueError):
        metrics.precision_recall(torch.randn(10, 2), torch.randn(3, 2), k=3)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(6, 30), m=st.integers(6, 30))
def test_manifold_metrics_ranges(seed: int, n: int, m: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    fake = torch.randn(m, 3, generator=gen, dtype=torch.float64) + 0.5
    result = metrics.manifold_metrics(real, fake, k_pr=2, k_dc=3, chunk_size=4)
    for key in ("precision", "recall", "coverage"):
        assert 0.0 <= result[key] <= 1.0
    assert 0.0 <= result["density"] <= n / 3


# ---------------------------------------------------------------------------------------------
# Class statistics
# ---------------------------------------------------------------------------------------------


def test_class_kl_by_hand() -> None:
    uniform = torch.full((4,), 0.25)
    # labels cover classes 0 and 1 equally: KL((1/2, 1/2, 0, 0) || uniform) = log 2.
    assert_close(metrics.class_kl(torch.tensor([0, 0, 1, 1]), uniform), math.log(2), atol=1e-12, rtol=0)
    assert_close(metrics.class_kl(torch.tensor([0, 1, 2, 3]), uniform), 0.0, atol=1e-12, rtol=0)
    # probabilities: mean (0.5, 0.25, 0.25, 0); reference unnormalised counts (2, 1, 1, 0) -> same: 0.
    probs = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]])
    assert_close(metrics.class_kl(probs, [2, 1, 1, 0]), 0.0, atol=1e-12, rtol=0)
    # mean (0.5, 0.25, 0.25, 0) against uniform: 0.5 log 2 + 2 * 0.25 log 1 = 0.5 log 2.
    assert_close(metrics.class_kl(probs, uniform), 0.5 * math.log(2), atol=1e-12, rtol=0)


def test_inception_score_extremes() -> None:
    one_hot = torch.eye(5).repeat(4, 1)  # 20 confident predictions spread over 5 classes
    assert_close(metrics.inception_score(one_hot, splits=1), (5.0, 0.0), atol=1e-9, rtol=0)
    assert_close(metrics.inception_score(one_hot, splits=4), (5.0, 0.0), atol=1e-9, rtol=0)
    same_class = torch.zeros(20, 5)
    same_class[:, 2] = 1.0
    assert_close(metrics.inception_score(same_class, splits=2), (1.0, 0.0), atol=1e-9, rtol=0)
    unsure = torch.full((20, 5), 0.2)
    assert_close(metrics.inception_score(unsure, splits=2), (1.0, 0.0), atol=1e-9, rtol=0)


# ---------------------------------------------------------------------------------------------
# 2-D mode coverage
# ---------------------------------------------------------------------------------------------


def test_centers() -> None:
    ring = metrics.ring8_centers()
    assert ring.shape == (8, 2)
    assert_close(ring.norm(dim=1), torch.ones(8))
    grid = metrics.grid25_centers()
    assert grid.shape == (25, 2)
    assert set(grid.unique().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert (metrics.RING8_STD, metrics.GRID25_STD) == (0.01, 0.05)


def test_mode_coverage_one_mode() -> None:
    centers = metrics.ring8_centers()
    samples = centers[3].repeat(100, 1) + 0.01 * torch.tensor([0.5, -0.5])  # 0.71 std away
    result = metrics.mode_coverage(samples, centers, 0.01)
    assert result["modes"] == 1
    assert result["hq_fraction"] == 1.0
    assert_close(result["reverse_kl"], math.log(8), atol=1e-12, rtol=0)


def test_mode_coverage_far_away() -> None:
    centers = metrics.grid25_centers()
    samples = torch.full((50, 2), 10.0)
    result = metrics.mode_coverage(samples, centers, 0.05)
    # Documented: no high-quality sample -> reverse_kl = log K (the collapse value).
    assert result == {"modes": 0, "hq_fraction": 0.0, "reverse_kl": math.log(25)}


def test_mode_coverage_uniform() -> None:
    centers = metrics.grid25_centers()
    samples = centers.repeat(4, 1)
    result = metrics.mode_coverage(samples, centers, 0.05)
    assert result == {"modes": 25, "hq_fraction": 1.0, "reverse_kl": 0.0}


def test_mode_coverage_mixed_by_hand() -> None:
    # 3 samples on mode A, 1 on mode B (2.9 std off), 1 at 3.5 std from mode B (not HQ), 2 far:
    # HQ = 4 / 7, modes = 2, p = (3/4, 1/4) over K = 25: KL = 3/4 log(25 * 3/4) + 1/4 log(25/4).
    centers = metrics.grid25_centers().double()
    std = 0.05
    a, b = centers[0], centers[12]
    samples = torch.stack(
        [a, a, a, b + torch.tensor([2.9 * std, 0.0]), b + torch.tensor([0.0, 3.5 * std]), a + 1.0, b - 1.0]
    )
    result = metrics.mode_coverage(samples, centers, std)
    assert result["modes"] == 2
    assert_close(result["hq_fraction"], 4 / 7, atol=1e-12, rtol=0)
    expected = 0.75 * math.log(25 * 0.75) + 0.25 * math.log(25 * 0.25)
    assert_close(result["reverse_kl"], expected, atol=1e-12, rtol=0)


def test_mode_coverage_true_mixture() -> None:
    # 2,500 samples of the grid mixture itself: all 25 modes; a 2-D Gaussian puts
    # P(|z| <= 3) = 1 - exp(-9/2) = 0.98889 within 3 std, binomial std 0.0021 -> atol 0.01.
    gen = torch.Generator().manual_seed(8)
    centers = metrics.grid25_centers()
    which = torch.randint(0, 25, (2500,), generator=gen)
    samples = centers[which] + 0.05 * torch.randn(2500, 2, generator=gen)
    result = metrics.mode_coverage(samples, centers, 0.05)
    assert result["modes"] == 25
    assert_close(result["hq_fraction"], 1 - math.exp(-4.5), atol=0.01, rtol=0)
    assert result["reverse_kl"] < 0.02  # multinomial noise only: about (K - 1) / (2 n) = 0.005


def test_mode_coverage_counts_a_sample_at_exactly_three_std_as_high_quality() -> None:
    # distance 1.5 = 3 * 0.5 exactly (float64): HQ (<= 3 std); 1.5 + 2^-20 is not
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    samples = _points_on_line([1.5, 10.0 - 1.5 - 2.0 ** -20])
    result = metrics.mode_coverage(samples, centers, 0.5)
    assert result == {"modes": 1, "hq_fraction": 0.5, "reverse_kl": math.log(2)}


def test_mode_coverage_refuses_bad_input_naming_it() -> None:
    centers = torch.zeros(3, 2)
    with pytest.raises(ValueError) as shapes:
        metrics.mode_coverage(torch.zeros(4, 3), centers, 0.1)
    assert str(shapes.value) == "samples (N, d) and centers (K, d) must agree, got (4, 3), (3, 2)"
    with pytest.raises(ValueError) as flat:
        metrics.mode_coverage(torch.zeros(4), centers, 0.1)
    assert str(flat.value) == "samples (N, d) and centers (K, d) must agree, got (4,), (3, 2)"
    with pytest.raises(ValueError) as empty:
        metrics.mode_coverage(torch.zeros(0, 2), centers, 0.1)
    assert str(empty.value) == "need at least one sample and one centre"
    with pytest.raises(ValueError) as no_centre:
        metrics.mode_coverage(torch.zeros(4, 2), torch.zeros(0, 2), 0.1)
    assert str(no_centre.value) == "need at least one sample and one centre"
    for std in (0.0, -0.1):
        with pytest.raises(ValueError) as bad_std:
            metrics.mode_coverage(torch.zeros(4, 2), centers, std)
        assert str(bad_std.value) == f"std must be positive, got {std}"


def test_stacked_modes_by_hand() -> None:
    # 2 channels of 3 classes: K = 9 tuples, read as c0 * 3 + c1: 1, 1, 3, 8 -> p = (1/2, 1/4, 1/4)
    result = metrics.stacked_modes(torch.tensor([[0, 1], [0, 1], [1, 0], [2, 2]]), classes=3)
    assert result["modes"] == 3
    assert_close(result["reverse_kl"], 0.5 * math.log(9 * 0.5) + 0.5 * math.log(9 * 0.25), atol=1e-12, rtol=0)
    # every tuple once: the even spread, KL 0; one tuple only: log K
    every = torch.tensor([[a, b] for a in range(3) for b in range(3)])
    assert metrics.stacked_modes(every, classes=3) == {"modes": 9, "reverse_kl": 0.0}
    one = metrics.stacked_modes(torch.tensor([[2, 1]] * 5), classes=3)
    assert one["modes"] == 1
    assert_close(one["reverse_kl"], math.log(9), atol=1e-12, rtol=0)
    default = metrics.stacked_modes(torch.tensor([[9, 9, 9]]))  # default: ten classes, K = 1,000 tuples
    assert default["modes"] == 1
    assert_close(default["reverse_kl"], math.log(1000), atol=1e-12, rtol=0)


def test_stacked_modes_refuses_bad_classes_naming_them() -> None:
    for bad, shape in ((torch.zeros(4, dtype=torch.long), "(4,)"), (torch.zeros(0, 3, dtype=torch.long), "(0, 3)"),
                       (torch.zeros(4, 0, dtype=torch.long), "(4, 0)")):
        with pytest.raises(ValueError) as error:
            metrics.stacked_modes(bad, classes=3)
        assert str(error.value) == f"channel classes must have shape (N, C) with N, C >= 1, got {shape}"
    for bad, values in ((torch.tensor([[0, 3]]), "0..3"), (torch.tensor([[-1, 2]]), "-1..2"),
                        (torch.tensor([[0.0, 1.0]]), "0.0..1.0")):
        with pytest.raises(ValueError) as error:
            metrics.stacked_modes(bad, classes=3)
        assert str(error.value) == f"channel classes must be integers in [0, 3), got values {values}"


# ---------------------------------------------------------------------------------------------
# classifier statistics and sample spread: values and refusals
# ---------------------------------------------------------------------------------------------


def test_class_histogram_of_labels_and_probabilities() -> None:
    assert_close(metrics.class_histogram(torch.tensor([0, 2, 2, 1]), 4),
                 torch.tensor([0.25, 0.25, 0.5, 0.0], dtype=torch.float64), atol=0, rtol=0)
    assert_close(metrics.class_histogram(torch.tensor([2], dtype=torch.int32), 3),
                 torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=0, rtol=0)
    assert_close(metrics.class_histogram(np.array([[0.5, 0.5], [1.0, 0.0]]), 2),
                 torch.tensor([0.75, 0.25], dtype=torch.float64), atol=0, rtol=0)


def test_class_histogram_refuses_bad_input_naming_it() -> None:
    for bad, classes, message in (
            (torch.tensor([0.0, 1.0]), 2, "1-D input to class_histogram must hold integer labels"),
            (torch.tensor([], dtype=torch.int64), 2, "no samples"),
            (torch.tensor([0, 3]), 3, "labels exceed the 3 classes"),
            (torch.zeros(4, 2), 3, "expected 3 class columns, got 2"),
            (torch.zeros(2, 2, 2), 2, "expected (N,) labels or (N, K) probabilities, got shape (2, 2, 2)")):
        with pytest.raises(ValueError) as error:
            metrics.class_histogram(bad, classes)
        assert str(error.value) == message


def inception_score_by_hand(probs: list[list[float]], sizes: list[int]) -> tuple[float, float]:
    """exp(mean_x KL(p(y|x) || p(y))) per consecutive part of the given sizes, in plain Python: mean, population std."""
    scores, start = [], 0
    for size in sizes:
        part = probs[start:start + size]
        start += size
        marginal = [sum(row[k] for row in part) / size for k in range(len(part[0]))]
        kls = [sum(p * math.log(p / m) for p, m in zip(row, marginal) if p > 0) for row in part]
        scores.append(math.exp(sum(kls) / size))
    mean = sum(scores) / len(scores)
    return mean, math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))


def test_inception_score_splits_in_order_into_ten_parts_by_default() -> None:
    gen = torch.Generator().manual_seed(3)
    probs = torch.softmax(3 * torch.randn(23, 4, generator=gen, dtype=torch.float64), dim=1)
    rows = probs.tolist()
    # 23 rows into 10 consecutive parts: three of 3 rows, then seven of 2
    assert_close(metrics.inception_score(probs), inception_score_by_hand(rows, [3] * 3 + [2] * 7), atol=1e-12, rtol=0)
    assert_close(metrics.inception_score(probs, splits=4), inception_score_by_hand(rows, [6, 6, 6, 5]),
                 atol=1e-12, rtol=0)
    assert metrics.inception_score(probs[:1]) == (1.0, 0.0)  # one row: its own marginal


def test_inception_score_refuses_bad_input_naming_it() -> None:
    for bad, message in ((torch.full((3,), 0.5), "class_probs must have shape (N, K) with N >= 1, got (3,)"),
                         (torch.zeros(0, 3), "class_probs must have shape (N, K) with N >= 1, got (0, 3)")):
        with pytest.raises(ValueError) as error:
            metrics.inception_score(bad)
        assert str(error.value) == message
    with pytest.raises(ValueError) as error:
        metrics.inception_score(torch.full((2, 2), 0.5), splits=0)
    assert str(error.value) == "splits must be >= 1, got 0"


def test_sample_spread_is_the_mean_per_feature_population_std() -> None:
    # feature 0: (0, 2) -> std 1; feature 1: (10, 10) -> 0; mean 0.5
    assert metrics.sample_spread(torch.tensor([[0.0, 10.0], [2.0, 10.0]])) == 0.5
    assert metrics.sample_spread(torch.tensor([[[[0.0, 10.0]]], [[[2.0, 10.0]]]])) == 0.5  # images flatten
    assert_close(metrics.sample_spread(np.array([[0.0], [2.0], [4.0]])), math.sqrt(8 / 3), atol=1e-12, rtol=0)
    assert metrics.sample_spread(torch.tensor([[1.0, 5.0]])) == 0.0
    rows = torch.zeros(4097, 3)
    rows[4096] = 1.0  # beyond the default first 4,096 rows
    assert metrics.sample_spread(rows) == 0.0
    assert_close(metrics.sample_spread(rows, max_n=4097), math.sqrt(4096) / 4097, atol=1e-12, rtol=0)


def test_class_kl_normalises_the_fakes_mean_prediction_and_refuses_a_bad_reference() -> None:
    # rows summing to 0.5 each: mean (0.25, 0.25), normalised (0.5, 0.5) = the reference: KL 0
    assert_close(metrics.class_kl(torch.tensor([[0.5, 0.0], [0.0, 0.5]]), [1.0, 1.0]), 0.0, atol=1e-12, rtol=0)
    for bad in ([1.0, -1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(ValueError) as error:
            metrics.class_kl(torch.tensor([0, 1]), bad)
        assert str(error.value) == "real_class_distribution must be non-negative with a positive sum"


def test_precision_recall_and_density_coverage_pass_their_chunk_size_on() -> None:
    real, fake = _points_on_line([0.0, 1.0, 2.0, 3.0, 4.0]), _points_on_line([0.5, 10.0])
    for metric in (metrics.precision_recall, metrics.density_coverage):
        with pytest.raises(ValueError) as error:
            metric(real, fake, 1, chunk_size=0)
        assert str(error.value) == "chunk_size must be >= 1, got 0"


def test_fd_from_stats_and_trace_sqrt_product_compute_in_float64_from_float32_input() -> None:
    mu1, mu2 = np.array([0.1, 0.2], np.float32), np.array([0.3, -0.7], np.float32)
    a, b = np.array([0.1, 0.7], np.float32), np.array([0.3, 1.1], np.float32)
    # the float32 values widened exactly to float64, then every operation in float64
    a64, b64, m1, m2 = (v.astype(np.float64).tolist() for v in (a, b, mu1, mu2))
    root_term = math.sqrt(a64[0] * b64[0]) + math.sqrt(a64[1] * b64[1])
    expected = sum((x - y) ** 2 for x, y in zip(m1, m2)) + sum(a64) + sum(b64) - 2 * root_term
    assert_close(metrics.frechet_distance_from_stats(mu1, np.diag(a), mu2, np.diag(b)), expected, atol=1e-12, rtol=0)
    assert_close(metrics.trace_sqrt_product(torch.diag(torch.from_numpy(a)), torch.diag(torch.from_numpy(b))),
                 root_term, atol=1e-12, rtol=0)


def test_fd_from_stats_and_mmd_refuse_mismatched_input() -> None:
    eye = torch.eye(2, dtype=torch.float64)
    for mu2, sigma2 in ((torch.zeros(3), eye), (torch.zeros(2), torch.eye(3))):
        with pytest.raises(ValueError) as error:
            metrics.frechet_distance_from_stats(torch.zeros(2), eye, mu2, sigma2)
        assert str(error.value) == "the two sets of statistics have different shapes"
    for x, y in ((torch.zeros(3, 2), torch.zeros(4, 2)), (torch.zeros(1, 2), torch.zeros(1, 2))):
        with pytest.raises(ValueError) as error:
            metrics.mmd2_unbiased(x, y)
        assert str(error.value) == "mmd2_unbiased needs two samples of the same size >= 2"


def kid_by_hand(real: torch.Tensor, fake: torch.Tensor, subsets: int, m: int) -> tuple[float, float]:
    """Per round, a fresh permutation of the real rows, then of the fake rows (generator seeded 0), first m of each."""
    draws = torch.Generator().manual_seed(0)
    values = []
    for _ in range(subsets):
        real_rows = torch.randperm(real.shape[0], generator=draws)[:m]
        fake_rows = torch.randperm(fake.shape[0], generator=draws)[:m]
        values.append(metrics.mmd2_unbiased(real[real_rows].double(), fake[fake_rows].double()))
    return float(np.mean(values)), float(np.std(values))


def test_kid_defaults_are_100_subsets_of_1000_rows_drawn_by_the_seeded_generator() -> None:
    gen = torch.Generator().manual_seed(6)
    real, fake = torch.randn(1001, 1, generator=gen), torch.randn(1001, 1, generator=gen) + 0.2
    assert_close(metrics.kid(real, fake, subsets=1), kid_by_hand(real, fake, 1, 1000), atol=1e-12, rtol=0)
    assert_close(metrics.kid(real[:4], fake[:4], subset_size=2), kid_by_hand(real[:4], fake[:4], 100, 2),
                 atol=1e-12, rtol=0)


def test_kid_refuses_bad_input_naming_it() -> None:
    rows = torch.zeros(4, 2)
    for real, fake, kwargs, message in (
            (torch.zeros(4), rows, {}, "real_features must have shape (N, D), got (4,)"),
            (rows, torch.zeros(4), {}, "fake_features must have shape (N, D), got (4,)"),
            (rows, rows, {"subsets": 0}, "subsets must be >= 1, got 0"),
            (rows, rows, {"subset_size": 1}, "KID needs at least 2 samples per set, got subset size 1")):
        with pytest.raises(ValueError) as error:
            metrics.kid(real, fake, **kwargs)
        assert str(error.value) == message
    assert metrics.kid(torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]]), subsets=1) == (9.5, 0.0)


def test_kid_subset_size_is_clipped_to_the_smaller_fake_set_too() -> None:
    gen = torch.Generator().manual_seed(9)
    real, fake = torch.randn(5, 2, generator=gen), torch.randn(3, 2, generator=gen)
    assert_close(metrics.kid(real, fake, subsets=2), kid_by_hand(real, fake, 2, 3), atol=1e-12, rtol=0)


def test_knn_squared_radii_by_hand_in_the_points_dtype_and_its_refusals() -> None:
    points = _points_on_line([0.0, 0.1, 0.3, 0.7])
    radii = stats.knn_squared_radii(points, [1, 3])
    # nearest other point: 0.1, 0.1, 0.2, 0.4; third nearest (n = k + 1: the farthest): 0.7, 0.6, 0.4, 0.7
    assert radii[1].dtype == torch.float64
    assert_close(radii[1], torch.tensor([0.1, 0.1, 0.2, 0.4], dtype=torch.float64) ** 2, atol=1e-15, rtol=0)
    assert_close(radii[3], torch.tensor([0.7, 0.6, 0.4, 0.7], dtype=torch.float64) ** 2, atol=1e-15, rtol=0)
    for ks, kwargs, message in (([0, 2], {}, "k must be >= 1, got 0"),
                                ([4], {}, "need more than k=4 samples for k-NN radii, got 4"),
                                ([1], {"chunk_size": 0}, "chunk_size must be >= 1, got 0")):
        with pytest.raises(ValueError) as error:
            stats.knn_squared_radii(points, ks, **kwargs)
        assert str(error.value) == message


def test_manifold_metrics_mix_float32_and_float64_features_and_refuse_bad_input() -> None:
    real, fake = _points_on_line(REAL), _points_on_line(FAKE)
    expected = metrics.manifold_metrics(real, fake, k_pr=1, k_dc=1)
    assert metrics.manifold_metrics(real.float(), fake, k_pr=1, k_dc=1) == expected
    assert metrics.manifold_metrics(real, fake.float(), k_pr=1, k_dc=1) == expected
    for bad_real, bad_fake, kwargs, message in (
            (real, fake, {"k_pr": None, "k_dc": None}, "nothing to compute: k_pr and k_dc are both None"),
            (real[:, 0], fake, {}, "real_features must have shape (N, D), got (4,)"),
            (real, fake[:, 0], {}, "fake_features must have shape (N, D), got (4,)")):
        with pytest.raises(ValueError) as error:
            metrics.manifold_metrics(bad_real, bad_fake, **kwargs)
        assert str(error.value) == message


def test_precision_and_recall_balls_are_closed() -> None:
    # real 0, 1, 2 (k=1 radii 1), fake 3, 6 (radii 3): fake 3 lies on real 2's ball, real 0 on fake 3's ball
    result = metrics.precision_recall(_points_on_line([0.0, 1.0, 2.0]), _points_on_line([3.0, 6.0]), k=1)
    assert result == {"precision": 0.5, "recall": 1.0}


def test_as_features_gives_floating_features_and_names_a_bad_shape() -> None:
    assert stats.as_features(torch.tensor([[1, 2]])).dtype == torch.float32
    assert_close(stats.as_features(np.array([[1, 2]], dtype=np.int64)), torch.tensor([[1.0, 2.0]]), atol=0, rtol=0)
    for dtype in (torch.float16, torch.bfloat16):
        assert stats.as_features(torch.tensor([[0.5, 2.0]], dtype=dtype)).dtype == torch.float32
    assert stats.as_features(torch.tensor([[0.1]], dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError) as error:
        stats.as_features(torch.zeros(3))
    assert str(error.value) == "features must have shape (N, D), got (3,)"


def test_mode_coverage_assigns_each_sample_to_its_own_nearest_centre() -> None:
    # two samples on centre (-2, 0), one on (5, 0), none on (2, 0): p = (2/3, 0, 1/3) over K = 3
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [5.0, 0.0]], dtype=torch.float64)
    result = metrics.mode_coverage(_points_on_line([-2.0, -2.0, 5.0]), centers, 0.1)
    assert result["modes"] == 2 and result["hq_fraction"] == 1.0
    assert_close(result["reverse_kl"], 2 / 3 * math.log(2), atol=1e-12, rtol=0)
