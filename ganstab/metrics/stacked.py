"""The evaluator of stacked images: the 1-channel evaluator network applied to every channel.

A stacked image (N, C, H, W) holds C independent 1-channel images, so it is scored by the
evaluator network trained on the 1-channel data (one network and one cache entry with plain runs):
- features: the C channels' features side by side, (N, C * D). The FD over them is, for two sets
  with independent channels, the sum of the per-channel FDs, and it also charges a generator whose
  channels are correlated (e.g. the same garment three times), a form of mode collapse;
- class probabilities: the channels' distributions side by side, each weighted 1/C, one distribution
  over C x K (channel, class) pairs. Then class_kl is the mean over channels of each channel's class KL
  and IS the geometric mean of the channels' scores, on the scale and with the sampling noise of a
  1-channel run (over the 1,000 tuples instead, 2,500 real images score a class KL of about 0.2 against
  other real ones, and the doctor would call that a collapse); the conditional accuracy compares each
  sample's predicted tuple with its label (c0 * 100 + c1 * 10 + c2);
- modes: the PacGAN/VEEGAN count of distinct class tuples and the reverse KL of their histogram.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ganstab.data.stacked import triple_labels
from ganstab.metrics.evaluator import Evaluator
from ganstab.metrics.modes import stacked_modes

__all__ = ["StackedEvaluator", "channel_class_probs"]


def channel_class_probs(channel_probs: list[Tensor]) -> Tensor:
    """Per-channel (N, K) distributions -> (N, C * K): channel c's in columns c*K..(c+1)*K-1, each times 1/C."""
    return torch.cat(channel_probs, dim=1) / len(channel_probs)


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
        """(N, channels * classes) `channel_class_probs`: every channel's class distribution, weighted 1/channels."""
        return channel_class_probs([self.channel_evaluator.class_probs(x, batch_size)
                                    for x in self._channel_images(images)])

    def features_and_probs(self, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Optional[Tensor]]:
        """Features and (classifiers) `class_probs` in one pass over each channel."""
        pairs = [self.channel_evaluator.features_and_probs(x, batch_size) for x in self._channel_images(images)]
        features = torch.cat([f for f, _ in pairs], dim=1)
        if not self.is_classifier:
            return features, None
        return features, channel_class_probs([p for _, p in pairs if p is not None])

    def classes_from_probs(self, probs: Tensor) -> Tensor:
        """(N, channels) predicted class of every channel from `class_probs` output, on the CPU."""
        return probs.reshape(len(probs), self.channels, self.classes).argmax(dim=2).cpu()

    def labels_from_probs(self, probs: Tensor) -> Tensor:
        """(N,) predicted tuple label (c0 * 100 + c1 * 10 + c2 for three channels) from `class_probs` output."""
        return triple_labels(self.classes_from_probs(probs), self.classes)

    def channel_classes(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """(N, channels) predicted class of every channel, on the CPU."""
        return self.classes_from_probs(self.class_probs(images, batch_size))

    def mode_scores(self, images: Tensor, batch_size: int = 500) -> dict[str, float]:
        """`stacked_modes` of the predicted class tuples: modes captured and reverse KL to uniform."""
        return stacked_modes(self.channel_classes(images, batch_size), self.classes)
