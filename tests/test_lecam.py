"""LeCam's anchors (zero-debiased EMAs of D's mean logits): values by hand, state round trip, checkpointed state."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from ganstab.pipeline import load_config, make_trainer, train
from ganstab.training.checkpoint import load_checkpoint, newest_valid_checkpoint
from ganstab.training.lecam import LeCamAnchors
from ganstab.training.parallel import DistContext, mean_over_ranks

ONE = DistContext()
CPU = torch.device("cpu")


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_first_update_gives_the_batch_means():
    anchors = LeCamAnchors(0.99, CPU)
    # means: reals (1 + 3) / 2 = 2, fakes (-1 - 2 + 0) / 3 = -1 (any batch sizes; column logits too)
    alpha_real, alpha_fake = anchors.update(t([[1.0], [3.0]]), t([-1.0, -2.0, 0.0]), ONE)
    assert_close(alpha_real, t(2.0))
    assert_close(alpha_fake, t(-1.0))
    assert anchors.count == 1


def test_zero_debiased_ema_by_hand():
    anchors = LeCamAnchors(0.9, CPU)
    anchors.update(t([1.0]), t([-1.0]), ONE)
    alpha_real, alpha_fake = anchors.update(t([3.0]), t([1.0]), ONE)
    # biased: 0.1 * 1 = 0.1, then 0.9 * 0.1 + 0.1 * 3 = 0.39; debiased by 1 - 0.9^2 = 0.19
    # (the average of 1 and 3 with weights 0.09 and 0.1); fakes: (0.09 * -1 + 0.1 * 1) / 0.19
    assert_close(alpha_real, t(0.39 / 0.19))
    assert_close(alpha_fake, t(0.01 / 0.19))
    assert_close(anchors.biased, t([0.39, 0.01]))
    alpha_real, _ = anchors.update(t([0.0]), t([0.0]), ONE)
    assert_close(alpha_real, t(0.9 * 0.39 / (1 - 0.9 ** 3)))


def test_decay_zero_follows_the_last_batch():
    anchors = LeCamAnchors(0.0, CPU)
    anchors.update(t([5.0]), t([5.0]), ONE)
    alpha_real, alpha_fake = anchors.update(t([1.0, 2.0]), t([-4.0, 0.0]), ONE)
    assert_close(alpha_real, t(1.5))
    assert_close(alpha_fake, t(-2.0))


def test_update_takes_no_gradient_from_the_logits():
    real = t([1.0, 2.0]).requires_grad_(True)
    alpha_real, alpha_fake = LeCamAnchors(0.99, CPU).update(real, t([0.0, 1.0]), ONE)
    assert not alpha_real.requires_grad and not alpha_fake.requires_grad


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_decay_outside_the_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match=re.escape(f"the LeCam EMA decay must be in [0, 1), got {decay}")):
        LeCamAnchors(decay, CPU)


def test_state_round_trip_continues_exactly():
    first = LeCamAnchors(0.9, CPU)
    for real, fake in ((1.0, -1.0), (2.5, 0.5), (-0.5, -3.0)):
        first.update(t([real]), t([fake]), ONE)
    state = first.state_dict()
    assert sorted(state) == ["biased", "count"] and state["count"] == 3
    restored = LeCamAnchors(0.9, CPU)
    restored.load_state_dict(state)
    fresh = LeCamAnchors(0.9, CPU)  # what a resume that forgot the state would do
    expected = first.update(t([0.7]), t([-0.2]), ONE)
    assert torch.equal(torch.stack(restored.update(t([0.7]), t([-0.2]), ONE)), torch.stack(expected))
    assert not torch.equal(torch.stack(fresh.update(t([0.7]), t([-0.2]), ONE)), torch.stack(expected))
    state["biased"][0] = 100.0  # the saved state is a copy
    assert first.biased[0] != 100.0


def test_mean_over_ranks_in_one_process_is_the_tensor():
    x = t([1.0, -2.0])
    assert torch.equal(mean_over_ranks(x, ONE), x)


# ---------------------------------------------------------------- in the trainer

def lecam_cfg(out: Path, *overrides: str):
    base = ["train.steps=10", "train.batch_size=32", "log.every=5", "log.progress=false", "model.width=16",
            "penalty.lecam=0.3", "penalty.lecam_decay=0.9", "log.checkpoint_every=5", "eval.final=false",
            f"out={out}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_config(None, base + list(overrides), preset="toy")


def test_d_step_updates_the_anchors_and_logs_the_penalty_by_hand(tmp_path):
    trainer = make_trainer(lecam_cfg(tmp_path / "run"), echo=lambda m: None)
    seen = []
    handle = trainer.critic_net.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        trainer.d_step()
    finally:
        handle.remove()
    d_real, d_fake = seen[0][0].detach(), seen[0][1].detach()
    # first update: the anchors are this batch's means
    alpha_real, alpha_fake = d_real.mean(), d_fake.mean()
    assert trainer.lecam.count == 1
    assert_close(trainer.lecam.biased, 0.1 * torch.stack([alpha_real, alpha_fake]))
    by_hand = (torch.relu(d_real - alpha_fake).pow(2).mean() + torch.relu(alpha_real - d_fake).pow(2).mean())
    assert by_hand > 0
    assert trainer.recorder.pending()["lecam"] == pytest.approx(by_hand.item(), rel=1e-6, abs=1e-9)


def test_checkpoint_holds_the_anchors_and_load_state_restores_them(tmp_path):
    out = tmp_path / "run"
    train(lecam_cfg(out, "train.n_critic=2"), echo=lambda m: None)
    state = load_checkpoint(newest_valid_checkpoint(out / "checkpoints"))
    assert state["step"] == 10 and state["lecam"]["count"] == 20  # one update per D step
    assert state["lecam"]["biased"].dtype == torch.float32 and state["lecam"]["biased"].shape == (2,)
    trainer = make_trainer(lecam_cfg(out, "train.n_critic=2"), echo=lambda m: None)
    assert trainer.lecam.count == 0
    trainer.load_state(state)
    assert trainer.lecam.count == 20
    assert torch.equal(trainer.lecam.biased, state["lecam"]["biased"])


def test_no_anchors_without_lecam(tmp_path):
    cfg = lecam_cfg(tmp_path / "off", "penalty.lecam=0", "penalty.lecam_decay=0.99")
    trainer = make_trainer(cfg, echo=lambda m: None)
    assert trainer.lecam is None and trainer.state()["lecam"] is None
    trainer.d_step()
    assert "lecam" not in trainer.recorder.pending()
