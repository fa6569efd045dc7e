"""Evaluators shipped inside the package for the bundled data sets (digits, Fashion-MNIST).

Each is `weights/<name>.safetensors` (weights, no pickle) plus `weights/<name>.json`: the evaluator's
settings and test accuracy as `Evaluator.save` writes them, and `data_sha256` (`data_digest` of the
evaluator's training and test tensors), `weights_sha256` (sha256 of the .safetensors file) and the command
that made them. They are trained by `benchmarks/train_evaluator.py` with `RECIPES`, seeded, on one CPU thread.

A shipped evaluator is used only for the data it was trained on: `shipped_evaluator` compares the data's
digest with `data_sha256` and returns None, with the reason, when they differ (other files or other data
settings, such as data.image_size); the caller then trains one as for data a user brings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

from ganstab.metrics.evaluator import Evaluator, tensor_digest
from ganstab.rundir import sha256_file

__all__ = ["EVALUATOR_CHOICES", "RECIPES", "WEIGHTS_DIR", "ShippedCheck", "data_digest",
           "shipped_evaluator", "shipped_paths"]

#: Values of eval.evaluator: auto (the shipped network when it matches the data, else trained), shipped
#: (the shipped network or an error), train (always trained and cached, as for data a user brings)
EVALUATOR_CHOICES = ("auto", "shipped", "train")

#: Where the shipped files live (installed as package data)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: The training recipe of each shipped evaluator: `train_evaluator` keyword arguments (all training images,
#: no eval.evaluator_images cap)
RECIPES: dict[str, dict[str, Any]] = {
    "digits": dict(widths=(32, 64, 128), feature_dim=128, epochs=40, batch_size=64, lr=3e-3, weight_decay=1e-4,
                   dropout=0.2, shift=1, seed=0),
    "fashion-mnist": dict(widths=(32, 64, 128), feature_dim=128, epochs=10, batch_size=128, lr=3e-3,
                          weight_decay=1e-4, dropout=0.2, shift=0, flip=True, seed=0),
}


def data_digest(images: Tensor, labels: Optional[Tensor], test_images: Optional[Tensor],
                test_labels: Optional[Tensor]) -> str:
    """sha256 (hex) over the dtypes, shapes and bytes of an evaluator's training and test tensors."""
    return tensor_digest(images, labels, test_images, test_labels)


def shipped_paths(name: str) -> tuple[Path, Path]:
    """(weights, JSON) paths of the shipped evaluator of data set `name` (they may not exist)."""
    return WEIGHTS_DIR / f"{name}.safetensors", WEIGHTS_DIR / f"{name}.json"


@dataclass(frozen=True)
class ShippedCheck:
    """The outcome of looking for a shipped evaluator: the evaluator, or None and why not."""

    evaluator: Optional[Evaluator]
    reason: str = ""


def shipped_evaluator(name: str, images: Tensor, labels: Optional[Tensor], test_images: Optional[Tensor],
                      test_labels: Optional[Tensor], device: torch.device | str = "cpu") -> ShippedCheck:
    """The shipped evaluator of `name` when its data digest matches these tensors and its weights file its
    recorded sha256; otherwise no evaluator and a one-line reason."""
    weights_path, json_path = shipped_paths(name)
    if not (weights_path.is_file() and json_path.is_file()):
        return ShippedCheck(None, f"no evaluator is shipped for {name!r} (shipped: {', '.join(RECIPES)})")
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    digest = data_digest(images, labels, test_images, test_labels)
    if meta.get("data_sha256") != digest:
        return ShippedCheck(None, f"the shipped {name} evaluator was made for other data (data sha256 "
                                  f"{digest[:12]}, shipped for {str(meta.get('data_sha256'))[:12]}: other files or "
                                  f"data settings)")
    if sha256_file(weights_path) != meta.get("weights_sha256"):
        return ShippedCheck(None, f"{weights_path} does not match its recorded weights_sha256 (a damaged "
                                  f"install: reinstall ganstab)")
    return ShippedCheck(Evaluator.load(weights_path, device=device))
