"""class_kl's p_real is the class distribution the generator learns (its training labels, or the labels a
conditional run asks for), not the classifier's mean prediction on a small reference, whose own sampling noise
read as imbalance: the demo's digits runs got a class-KL warning from a 180-image validation reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganstab.config import DataConfig
from ganstab.data import make_dataset
from ganstab.metrics.run_eval import RunEvaluator
from ganstab.metrics.stats import class_kl

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    """The digits data and a scorer with the shipped digits evaluator (no training)."""
    data = make_dataset(DataConfig(name="digits"))
    return data, RunEvaluator(data, 180, CPU, echo=lambda m: None)


def test_the_prior_is_the_training_labels_histogram(digits) -> None:
    data, scorer = digits
    counts = torch.bincount(data.labels, minlength=10)
    assert int(counts.sum()) == len(data.labels) == 1437  # the digits training split
    torch.testing.assert_close(scorer.class_prior, counts.double() / 1437, rtol=0.0, atol=0.0)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_real_images_score_their_own_sampling_noise_against_the_prior(digits, split: str) -> None:
    data, scorer = digits
    real = data.reference("test", 180)  # the test reference's 180 images, scored as samples
    probs = scorer.evaluator.class_probs(real)
    scores = scorer.score_samples(real, None, split)
    # by hand: KL of their mean predicted class distribution to the training labels' histogram, whichever split
    torch.testing.assert_close(scores["class_kl"], class_kl(probs, scorer.class_prior), rtol=1e-9, atol=1e-12)
    assert scores["class_kl"] < 0.1  # real images stay under the doctor's warning
    if split == "validation":  # the old target, the validation reference's mean prediction, adds that 180-image
        old = class_kl(probs, scorer.evaluator.class_probs(data.reference("validation", 180)).mean(0))
        assert old > 1.5 * scores["class_kl"]  # sample's noise to theirs (0.040 against 0.026 measured)


def test_a_conditional_run_compares_with_the_labels_it_asks_for(digits) -> None:
    data, _ = digits
    asked = torch.tensor([0.5] + [0.5 / 9] * 9)
    scorer = RunEvaluator(data, 180, CPU, echo=lambda m: None, num_classes=10, label_probs=asked)
    torch.testing.assert_close(scorer.class_prior, asked.double(), rtol=0.0, atol=0.0)


def test_unlabelled_data_keeps_the_references_prediction(digits) -> None:
    data, scorer = digits
    assert scorer._class_prior(dataclasses.replace(data, labels=None)) is None  # then evaluate_images' own target
