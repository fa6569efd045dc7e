"""LeCam's anchors: EMAs of D's mean logit on reals (alpha_R) and on fakes (alpha_F), kept as training state.

`ganstab.losses.lecam_penalty` is the pure penalty; this object holds the two moving averages that it
compares the logits with. As in the official StyleGAN2 code of Tseng et al. 2021 (google/lecam-gan,
`stylegan2/lecam_loss.py`), the averages start at zero, are zero-debiased (divided by 1 - decay^t after
t updates, so the first value is the first batch's mean) and are updated with the current batch
before the penalty uses them. Under torchrun the batch means are averaged over ranks first, so every
rank holds the same anchors and W ranks x batch B follow 1 rank x batch W*B. The state (the biased
sums and the update count) goes into every checkpoint, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganstab.training.parallel import DistContext, mean_over_ranks

__all__ = ["LeCamAnchors"]


class LeCamAnchors:
    """alpha_R and alpha_F: zero-debiased EMAs (decay `decay`) of D's mean real and fake logits, on the device."""

    def __init__(self, decay: float, device: torch.device) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the LeCam EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.biased = torch.zeros(2, dtype=torch.float32, device=device)  # (real, fake), before debiasing
        self.count = 0

    def update(self, real_logits: Tensor, fake_logits: Tensor, ctx: DistContext) -> tuple[Tensor, Tensor]:
        """Fold this batch's mean logits (averaged over ranks) into the EMAs; return (alpha_R, alpha_F)."""
        means = torch.stack([real_logits.detach().float().mean(), fake_logits.detach().float().mean()])
        means = mean_over_ranks(means, ctx)
        self.biased = self.decay * self.biased + (1.0 - self.decay) * means
        self.count += 1
        anchors = self.biased / (1.0 - self.decay ** self.count)
        return anchors[0], anchors[1]

    def state_dict(self) -> dict[str, Any]:
        """The biased sums and the update count (what a checkpoint needs to continue exactly)."""
        return {"biased": self.biased.detach().cpu().clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by `state_dict`."""
        self.biased = state["biased"].to(device=self.biased.device, dtype=torch.float32).clone()
        self.count = int(state["count"])
