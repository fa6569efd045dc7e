"""Sample-based distances between two sets of feature vectors.

Every function takes (N, D) torch tensors or numpy arrays and returns plain Python numbers.
Nothing here trains or owns a network: the features come from `ganstab.metrics.evaluator`
(or from anywhere else).

- `frechet_distance`: the FID formula on feature means and covariances (float64).
- `kid`: the unbiased MMD^2 with the cubic polynomial kernel, averaged over random subsets.
- `precision_recall` (Kynkaanniemi et al. 2019) and `density_coverage` (Naeem et al. 2020):
  k-nearest-neighbour manifold estimates, computed in row chunks so that memory stays
  bounded (about `max_chunk_elements` distances at a time) for 50k x 50k sample sets.
- `class_kl` and `inception_score`: statistics of a classifier's predictions on samples.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

#: Default upper bound on the number of pairwise distances held in memory at once
#: (2**24 float32 values = 64 MiB, plus a few boolean masks of the same shape).
MAX_CHUNK_ELEMENTS = 2**24


def as_features(features: ArrayLike, name: str = "features") -> Tensor:
    """Convert (N, D) features (tensor or array) to a floating tensor without copying when possible."""
    tensor = torch.as_tensor(features)
    if tensor.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    elif tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.to(torch.float32)
    return tensor.detach()


def _check_pair(real: Tensor, fake: Tensor) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, fake {fake.shape[1]}")


# ---------------------------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------------------------


def feature_mean_cov(features: ArrayLike) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    x = as_features(features).to(torch.float64)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {n}")
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / (n - 1)
    return mean, cov


def _psd_eigenvalues_floor(eigenvalues: Tensor) -> Tensor:
    """Zero the eigenvalues that round-off cannot tell from 0 (below D * eps * the largest one)."""
    threshold = eigenvalues.shape[0] * torch.finfo(eigenvalues.dtype).eps * eigenvalues.abs().max()
    return torch.where(eigenvalues > threshold, eigenvalues, torch.zeros_like(eigenvalues))


def _sqrt_psd(matrix: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix via eigh."""
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    root = _psd_eigenvalues_floor(eigenvalues).sqrt()
    return (eigenvectors * root) @ eigenvectors.T


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> float:
    """tr sqrt(sigma1 @ sigma2) for PSD matrices, via the eigenvalues of sqrt(s1) s2 sqrt(s1)."""
    root1 = _sqrt_psd(sigma1.to(torch.float64))
    product = root1 @ sigma2.to(torch.float64) @ root1
    eigenvalues = torch.linalg.eigvalsh((product + product.T) / 2)
    return float(_psd_eigenvalues_floor(eigenvalues).sqrt().sum())


def frechet_distance_from_stats(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); see `frechet_distance`."""
    mu1_t = torch.as_tensor(mu1, dtype=torch.float64)
    mu2_t = torch.as_tensor(mu2, dtype=torch.float64, device=mu1_t.device)
    sigma1_t = torch.as_tensor(sigma1, dtype=torch.float64, device=mu1_t.device)
    sigma2_t = torch.as_tensor(sigma2, dtype=torch.float64, device=mu1_t.device)
    if mu1_t.shape != mu2_t.shape or sigma1_t.shape != sigma2_t.shape:
        raise ValueError("the two sets of statistics have different shapes")
    mean_term = float(((mu1_t - mu2_t) ** 2).sum())
    trace_term = float(torch.trace(sigma1_t) + torch.trace(sigma2_t))
    return mean_term + trace_term - 2.0 * trace_sqrt_product(sigma1_t, sigma2_t)


def frechet_distance(real_features: ArrayLike, fake_features: ArrayLike) -> float:
    """Frechet distance ||mu_r - mu_f||^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)) of two feature sets (float64).

    The formula is the one of FID (Heusel et al. 2017) applied to the Gaussians fitted to the
    two feature sets (unbiased covariances). The awkward term tr((S_r S_f)^(1/2)) is computed
    without a general (non-symmetric) matrix square root: S_r S_f is similar to the symmetric
    positive semi-definite matrix M = S_r^(1/2) S_f S_r^(1/2) (conjugate by S_r^(1/2)), so the
    eigenvalues of S_r S_f are those of M, which are real and >= 0, and the trace of the square
    root is sum_i sqrt(lambda_i(M)). S_r^(1/2) and the lambda_i come from `torch.linalg.eigh`;
    eigenvalues below D * eps * lambda_max (round-off, including small negative ones) are set
    to 0, since sqrt would blow their noise up to about sqrt(eps). This is stable for singular
    covariances (fewer samples than dimensions, dead features) where `scipy.linalg.sqrtm`
    returns complex parts or needs an epsilon on the diagonal.
    """
    real = as_features(real_features, "real_features")
    fake = as_features(fake_features, "fake_features")
    _check_pair(real, fake)
    mu_r, sigma_r = feature_mean_cov(real)
    mu_f, sigma_f = feature_mean_cov(fake.to(real.device))
    return frechet_distance_from_stats(mu_r, sigma_r, mu_f, sigma_f)


# ---------------------------------------------------------------------------------------------
# Kernel inception distance
# ---------------------------------------------------------------------------------------------


def _polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 of two equal-size samples under the cubic kernel k(a,b) = (a.b/d + 1)^3."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError("mmd2_unbiased needs two samples of the same size >= 2")
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    across = k_xy.sum() / (m * m)
    return float(within_x + within_y - 2.0 * across)


def kid(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    *,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel distance (KID): mean and std over random subsets of the unbiased cubic-kernel MMD^2.

    Each of `subsets` rounds draws, without replacement, m = min(subset_size, N_real, N_fake)
    real and m fake rows with a `torch.Generator` seeded by `seed` (so the value is
    deterministic and the caller's global RNG is untouched) and computes
    MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2
    with k(a, b) = (a.b / d + 1)^3 in float64. Returns (mean, population std) over the rounds.
    The estimator is unbiased, so it can be slightly negative when the sets match.
    """
    real = as_features(real_features, "real_features")
    fake = as_features(fake_features, "fake_features").to(real.device)
    _check_pair(real, fake)
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got subset size {m}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    values = []
    for _ in range(subsets):
        real_rows = torch.randperm(real.shape[0], generator=generator)[:m].to(real.device)
        fake_rows = torch.randperm(fake.shape[0], generator=generator)[:m].to(real.device)
        x = real[real_rows].to(torch.float64)
        y = fake[fake_rows].to(torch.float64)
        values.append(mmd2_unbiased(x, y))
    scores = np.asarray(values, dtype=np.float64)
    return float(scores.mean()), float(scores.std())


# ---------------------------------------------------------------------------------------------
# k-NN manifold metrics: precision / recall / density / coverage
# ---------------------------------------------------------------------------------------------


def _rows_per_chunk(columns: int, chunk_size: Optional[int], max_chunk_elements: int) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return chunk_size
    return max(1, max_chunk_elements // max(1, columns))


def _chunks(n: int, rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def _squared_distances(x: Tensor, y: Tensor, y_sq_norms: Tensor) -> Tensor:
    """(B, M) squared Euclidean distances via |x|^2 + |y|^2 - 2 x.y (one matmul), clamped at 0."""
    x_sq = (x * x).sum(dim=1, keepdim=True)
    distances = torch.addmm(y_sq_norms[None, :], x, y.T, beta=1.0, alpha=-2.0)  # one (B, M) buffer
    return distances.add_(x_sq).clamp_min_(0)


def knn_squared_radii(
    points: Tensor, ks: Sequence[int], *, chunk_size: Optional[int] = None, max_chunk_elements: int = MAX_CHUNK_ELEMENTS
) -> dict[int, Tensor]:
    """Squared distance from each point to its k-th nearest other point, for each k in `ks`."""
    n = points.shape[0]
    k_max = max(ks)
    if min(ks) < 1:
        raise ValueError(f"k must be >= 1, got {min(ks)}")
    if n <= k_max:
        raise ValueError(f"need more than k={k_max} samples for k-NN radii, got {n}")
    sq_norms = (points * points).sum(dim=1)
    radii = {k: torch.empty(n, dtype=points.dtype, device=points.device) for k in ks}
    for start, stop in _chunks(n, _rows_per_chunk(n, chunk_size, max_chunk_elements)):
        distances = _squared_distances(points[start:stop], points, sq_norms)
        # The point itself is at distance 0: the (k+1)-th smallest value is the k-th neighbour.
        nearest = distances.topk(k_max + 1, dim=1, largest=False).values
        for k in ks:
            radii[k][start:stop] = nearest[:, k]
    return radii


def _prepare_pair(real_features: ArrayLike, fake_features: ArrayLike) -> tuple[Tensor, Tensor]:
    real = as_features(real_features, "real_features")
    fake = as_features(fake_features, "fake_features").to(device=real.device)
    _check_pair(real, fake)
    dtype = torch.promote_types(real.dtype, fake.dtype)
    real = real.to(dtype)
    fake = fake.to(dtype)
    # Distances are translation invariant; centring on the real mean limits the cancellation in
    # |x|^2 + |y|^2 - 2 x.y when the features sit far from the origin.
    centre = real.mean(dim=0, keepdim=True)
    return real - centre, fake - centre


def manifold_metrics(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    *,
    k_pr: Optional[int] = 3,
    k_dc: Optional[int] = 5,
    chunk_size: Optional[int] = None,
    max_chunk_elements: int = MAX_CHUNK_ELEMENTS,
) -> dict[str, float]:
    """Precision/recall with k_pr and density/coverage with k_dc in one chunked pass (None skips a pair).

    Distances are Euclidean; a point is inside a k-NN ball when its distance is <= the radius
    (inclusive). Memory: at most about `max_chunk_elements` (or `chunk_size` x M) distances at
    a time; the real-vs-fake distances are computed once and shared by all four metrics.
    """
    if k_pr is None and k_dc is None:
        raise ValueError("nothing to compute: k_pr and k_dc are both None")
    real, fake = _prepare_pair(real_features, fake_features)
    n_real, n_fake = real.shape[0], fake.shape[0]
    ks_real = sorted({k for k in (k_pr, k_dc) if k is not None})
    real_radii = knn_squared_radii(real, ks_real, chunk_size=chunk_size, max_chunk_elements=max_chunk_elements)
    fake_radii = None
    if k_pr is not None:
        fake_radii = knn_squared_radii(fake, [k_pr], chunk_size=chunk_size, max_chunk_elements=max_chunk_elements)[k_pr]

    device = real.device
    fake_in_real_manifold = torch.zeros(n_fake, dtype=torch.bool, device=device)
    real_in_fake_manifold = torch.zeros(n_real, dtype=torch.bool, device=device)
    balls_containing_fake = torch.zeros(n_fake, dtype=torch.int64, device=device)
    real_covered = torch.zeros(n_real, dtype=torch.bool, device=device)
    fake_sq_norms = (fake * fake).sum(dim=1)
    rows = _rows_per_chunk(n_fake, chunk_size, max_chunk_elements)
    for start, stop in _chunks(n_real, rows):
        distances = _squared_distances(real[start:stop], fake, fake_sq_norms)  # (B, M)
        if k_pr is not None:
            inside_real_balls = distances <= real_radii[k_pr][start:stop, None]
            fake_in_real_manifold |= inside_real_balls.any(dim=0)
            real_in_fake_manifold[start:stop] = (distances <= fake_radii[None, :]).any(dim=1)
        if k_dc is not None:
            radius = real_radii[k_dc][start:stop, None]
            balls_containing_fake += (distances <= radius).sum(dim=0)
            real_covered[start:stop] = distances.min(dim=1).values <= radius[:, 0]

    result: dict[str, float] = {}
    if k_pr is not None:
        result["precision"] = float(fake_in_real_manifold.double().mean())
        result["recall"] = float(real_in_fake_manifold.double().mean())
    if k_dc is not None:
        result["density"] = float(balls_containing_fake.double().sum() / (k_dc * n_fake))
        result["coverage"] = float(real_covered.double().mean())
    return result


def precision_recall(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    k: int = 3,
    *,
    chunk_size: Optional[int] = None,
    max_chunk_elements: int = MAX_CHUNK_ELEMENTS,
) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls; keys precision, recall.

    precision = fraction of fake samples inside at least one real ball B(x_i, r_k(x_i)), where
    r_k(x_i) is the distance from real x_i to its k-th nearest other real sample; recall = the
    same with the roles of real and fake swapped. Balls are closed (distance <= radius).
    """
    return manifold_metrics(
        real_features, fake_features, k_pr=k, k_dc=None, chunk_size=chunk_size, max_chunk_elements=max_chunk_elements
    )


def density_coverage(
    real_features: ArrayLike,
    fake_features: ArrayLike,
    k: int = 5,
    *,
    chunk_size: Optional[int] = None,
    max_chunk_elements: int = MAX_CHUNK_ELEMENTS,
) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020) with k-NN balls around the real samples; keys density, coverage.

    density = (1 / (k M)) sum_j #{i : fake y_j in B(x_i, r_k(x_i))} (can exceed 1);
    coverage = fraction of real x_i whose ball B(x_i, r_k(x_i)) holds at least one fake sample.
    Balls are closed (distance <= radius); r_k is the distance to the k-th nearest other real.
    """
    return manifold_metrics(
        real_features, fake_features, k_pr=None, k_dc=k, chunk_size=chunk_size, max_chunk_elements=max_chunk_elements
    )


# ---------------------------------------------------------------------------------------------
# Classifier-based statistics
# ---------------------------------------------------------------------------------------------


def class_histogram(class_probs_or_labels: ArrayLike, num_classes: int) -> Tensor:
    """Class distribution (K,) float64: mean of (N, K) probabilities, or normalised counts of (N,) labels."""
    values = torch.as_tensor(class_probs_or_labels).detach()
    if values.ndim == 1:
        if values.is_floating_point():
            raise ValueError("1-D input to class_histogram must hold integer labels")
        if values.numel() == 0:
            raise ValueError("no samples")
        counts = torch.bincount(values.to(torch.int64).cpu(), minlength=num_classes)
        if counts.numel() > num_classes:
            raise ValueError(f"labels exceed the {num_classes} classes")
        return counts.to(torch.float64) / values.numel()
    if values.ndim == 2:
        if values.shape[1] != num_classes:
            raise ValueError(f"expected {num_classes} class columns, got {values.shape[1]}")
        return values.to(torch.float64).mean(dim=0).cpu()
    raise ValueError(f"expected (N,) labels or (N, K) probabilities, got shape {tuple(values.shape)}")


def class_kl(
    fake_class_probs_or_labels: ArrayLike, real_class_distribution: ArrayLike, *, eps: float = 1e-12
) -> float:
    """KL(p_fake || p_real) in nats between the fakes' class distribution and the real one.

    p_fake is the mean of (N, K) predicted probabilities, or the normalised histogram of (N,)
    integer labels (pass `probs.argmax(1)` for hard predictions); p_real is normalised to sum 1.
    Terms with p_fake = 0 count 0; p_real is clamped at `eps` so a class that the reference
    never shows gives a large, finite value. Dropping half of K balanced classes gives log 2.
    """
    reference = torch.as_tensor(real_class_distribution, dtype=torch.float64).detach().cpu().reshape(-1)
    if (reference < 0).any() or float(reference.sum()) <= 0:
        raise ValueError("real_class_distribution must be non-negative with a positive sum")
    reference = reference / reference.sum()
    fake = class_histogram(fake_class_probs_or_labels, reference.numel())
    fake = fake / fake.sum()
    terms = torch.where(fake > 0, fake * (fake.clamp_min(eps).log() - reference.clamp_min(eps).log()), 0.0)
    return float(terms.sum())


def inception_score(class_probs: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """Inception score exp(E_x KL(p(y|x) || p(y))) of (N, K) probabilities: mean and std over `splits` parts.

    The rows are split in order into `splits` nearly equal consecutive parts (at most N);
    p(y) is each part's mean prediction. Ranges from 1 (no confidence or one class) to K.
    """
    probs = torch.as_tensor(class_probs).detach().to(torch.float64).cpu()
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"class_probs must have shape (N, K) with N >= 1, got {tuple(probs.shape)}")
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    scores = []
    for part in torch.tensor_split(probs, min(splits, probs.shape[0])):
        marginal = part.mean(dim=0, keepdim=True)
        log_ratio = part.clamp_min(1e-30).log() - marginal.clamp_min(1e-30).log()
        kl = torch.where(part > 0, part * log_ratio, 0.0).sum(dim=1)
        scores.append(math.exp(float(kl.mean())))
    values = np.asarray(scores, dtype=np.float64)
    return float(values.mean()), float(values.std())


def sample_spread(samples: ArrayLike, max_n: int = 4096) -> float:
    """Mean over features of the standard deviation across samples (first `max_n` rows; 0 for one sample):
    0 when every sample is identical, about 0.5 for natural images scaled to [-1, 1]."""
    x = torch.as_tensor(samples)[:max_n].detach().double().flatten(1)
    if x.shape[0] < 2:
        return 0.0
    return float(x.std(dim=0, correction=0).mean())
