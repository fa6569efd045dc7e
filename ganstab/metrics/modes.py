"""Mode statistics: 2-D samples against known mixture centres, and stacked images by their class triples
(both the PacGAN protocol)."""

from __future__ import annotations

import math

import torch

from ganstab.data.stacked import triple_labels
from ganstab.data.toy import GRID25_STD, RING8_STD, grid25_centers, ring8_centers
from ganstab.metrics.stats import ArrayLike

__all__ = ["mode_coverage", "stacked_modes", "ring8_centers", "grid25_centers", "RING8_STD", "GRID25_STD", "HQ_STDS"]

#: A sample is high quality when it lies within this many standard deviations of its nearest mode.
HQ_STDS = 3.0


def mode_coverage(samples: ArrayLike, centers: ArrayLike, std: float) -> dict[str, float]:
    """PacGAN mode statistics of (N, d) samples against (K, d) centres; keys modes, hq_fraction, reverse_kl.

    Each sample is assigned to its nearest centre (Euclidean). It is high quality (HQ) when that
    distance is <= 3 * std. With n_k the number of HQ samples assigned to centre k and
    n = sum_k n_k:
      - modes = #{k : n_k >= 1} (an int: modes captured by at least one HQ sample);
      - hq_fraction = n / N;
      - reverse_kl = KL(p || u) = sum_k p_k log(K p_k), with p_k = n_k / n, u the uniform
        distribution over all K modes and 0 log 0 = 0; it lies in [0, log K], is 0 when the
        HQ samples spread evenly over all modes and log K when they all sit on one mode.
        With no HQ sample at all p is undefined and reverse_kl is reported as log K, the
        worst value that a collapsed generator can reach, so that "no sample near any mode"
        never looks better than "every sample on one mode".
    """
    points = torch.as_tensor(samples).detach()
    modes_t = torch.as_tensor(centers).detach()
    if points.ndim != 2 or modes_t.ndim != 2 or points.shape[1] != modes_t.shape[1]:
        raise ValueError(f"samples (N, d) and centers (K, d) must agree, got {tuple(points.shape)}, {tuple(modes_t.shape)}")
    if points.shape[0] == 0 or modes_t.shape[0] == 0:
        raise ValueError("need at least one sample and one centre")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    points = points.to(torch.float64)
    modes_t = modes_t.to(device=points.device, dtype=torch.float64)
    num_modes = modes_t.shape[0]

    squared = ((points[:, None, :] - modes_t[None, :, :]) ** 2).sum(dim=2)  # (N, K), d is tiny here
    nearest_sq, nearest = squared.min(dim=1)
    high_quality = nearest_sq <= (HQ_STDS * std) ** 2
    counts = torch.bincount(nearest[high_quality].cpu(), minlength=num_modes).to(torch.float64)
    total = float(counts.sum())

    if total == 0:
        reverse_kl = math.log(num_modes)
    else:
        p = counts / total
        terms = torch.where(p > 0, p * (p.clamp_min(1e-300) * num_modes).log(), 0.0)
        reverse_kl = max(0.0, float(terms.sum()))
    return {
        "modes": int((counts > 0).sum()),
        "hq_fraction": float(high_quality.double().mean()),
        "reverse_kl": reverse_kl,
    }


def stacked_modes(channel_classes: ArrayLike, classes: int = 10) -> dict[str, float]:
    """Modes of stacked images from the (N, C) class of each channel; keys modes, reverse_kl.

    A sample's mode is its class tuple, one of K = classes ** C (1,000 for three channels of ten
    classes). With n_k the samples of mode k and p_k = n_k / N:
      - modes = #{k : n_k >= 1}, the distinct tuples among the N samples;
      - reverse_kl = KL(p || u) = sum_k p_k log(K p_k), u uniform over all K modes and 0 log 0 = 0,
        the direction PacGAN and VEEGAN call reverse KL (the model's histogram first); 0 for an
        even spread over every mode, log K when every sample has the same tuple.
    """
    predictions = torch.as_tensor(channel_classes).detach().cpu()
    if predictions.ndim != 2 or predictions.shape[0] == 0 or predictions.shape[1] == 0:
        raise ValueError(f"channel classes must have shape (N, C) with N, C >= 1, got {tuple(predictions.shape)}")
    if predictions.is_floating_point() or int(predictions.min()) < 0 or int(predictions.max()) >= classes:
        raise ValueError(f"channel classes must be integers in [0, {classes}), got values "
                         f"{predictions.min().item()}..{predictions.max().item()}")
    num_modes = classes ** predictions.shape[1]
    counts = torch.bincount(triple_labels(predictions, classes), minlength=num_modes).to(torch.float64)
    p = counts / counts.sum()
    terms = torch.where(p > 0, p * (p.clamp_min(1e-300) * num_modes).log(), 0.0)
    return {"modes": int((counts > 0).sum()), "reverse_kl": max(0.0, float(terms.sum()))}
