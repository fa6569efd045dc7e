"""The evaluator of stacked images: the 1-channel evaluator network applied to every channel.

A stacked image (N, C, H, W) holds C independent 1-channel images, so it is scored by the
evaluator network trained on the 1-channel data (one network and one cache entry with plain runs):
- features: the C channels' features side by side, (N, C * D). The FD over them is, for two sets
  with independent channels, the sum of the per-channel FDs, and it also charges a generator whose
  channels are correlated (e.g. the same garment three times), a form of mode collapse;
- class probabilities: the product of the channels' distributions over the classes ** C tuples,
  flattened like the data's labels (c0 * 100 + c1 * 10 + c2), so class_kl, IS and the conditional
  accuracy work on the tuples;
- modes: the PacGAN/VEEGAN count of distinct class tuples and the reverse KL of their histogram.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ganstab.metrics.evaluator import Evaluator
from ganstab.metrics.modes import stacked_modes

__all__ = ["StackedEvaluator", "joint_class_probs"]


def joint_class_probs(channel_probs: list[Tensor]) -> Tensor:
    """Per-channel (N, K) distributions -> (N, K ** C) distribution of independent channels, tuple index
    sum_c k_c * K^(C-1-c) (the first channel the most significant digit)."""
    joint = channel_probs[0]
    for probs in channel_probs[1:]:
        joint = (joint[:, :, None] * probs[:, None, :]).flatten(1)
    return joint


class StackedEvaluator:
    """A 1-channel `Evaluator` applied channel by channel to (N, channels, H, W) images."""

    def __init__(self, channel_evaluator: Evaluator, channels: int) -> None:
        self.channel_evaluator = channel_evaluator
        self.channels = channels

    @property
    def is_classifier(self) -> bool:
        """True when the channel network was trained with labels (class metrics and modes available)."""
        return self.channel_evaluator.is_classifier

    @property
    def feature_dim(self) -> int:
        """Length of the feature vectors: channels x the channel network's."""
        return self.channels * self.channel_evaluator.feature_dim

    @property
    def classes(self) -> int:
        """Classes of one channel (0 for an autoencoder)."""
        return self.channel_evaluator.settings.num_classes

    @property
    def test_accuracy(self) -> float:
        """The channel network's accuracy on the real 1-channel test split."""
        return self.channel_evaluator.test_accuracy

    @property
    def device(self) -> torch.device:
        """Where the channel network runs."""
        return self.channel_evaluator.device

    def _channel_images(self, images: Tensor) -> list[Tensor]:
        if images.ndim != 4 or images.shape[1] != self.channels:
            raise ValueError(f"stacked evaluator expects images of shape (N, {self.channels}, H, W), "
                             f"got {tuple(images.shape)}")
        return [images[:, c:c + 1] for c in range(self.channels)]

    def features(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """(N, channels * D) features: each channel's, side by side."""
        return torch.cat([self.channel_evaluator.features(x, batch_size) for x in self._channel_images(images)], dim=1)

    def class_probs(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """(N, classes ** channels) probabilities of the class tuples (channels independent)."""
        return joint_class_probs([self.channel_evaluator.class_probs(x, batch_size)
                                  for x in self._channel_images(images)])

    def features_and_probs(self, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Optional[Tensor]]:
        """Features and (classifiers) tuple probabilities in one pass over each channel."""
        pairs = [self.channel_evaluator.features_and_probs(x, batch_size) for x in self._channel_images(images)]
        features = torch.cat([f for f, _ in pairs], dim=1)
        if not self.is_classifier:
            return features, None
        return features, joint_class_probs([p for _, p in pairs if p is not None])

    def channel_classes(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """(N, channels) predicted class of every channel, on the CPU."""
        return torch.stack([self.channel_evaluator.class_probs(x, batch_size).argmax(dim=1).cpu()
                            for x in self._channel_images(images)], dim=1)

    def mode_scores(self, images: Tensor, batch_size: int = 500) -> dict[str, float]:
        """`stacked_modes` of the predicted class tuples: modes captured and reverse KL to uniform."""
        return stacked_modes(self.channel_classes(images, batch_size), self.classes)
