"""Issue #26 in the loop: relativistic G steps on a fresh real batch, R2 (lazy too) and LeCam in short real runs."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ganstab.penalties import r2_penalty
from ganstab.pipeline import load_config, make_trainer, train

QUIET = dict(echo=lambda message: None)


def toy_cfg(out: Path, *overrides: str, preset: str = "toy"):
    """The toy preset on grid25, shrunk: 10 steps of batch 32, a log line every 5 steps."""
    base = ["train.steps=10", "train.batch_size=32", "log.every=5", "log.progress=false", "model.width=16",
            "eval.final=false", f"out={out}"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_config(None, base + list(overrides), preset=preset)


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# one short real run per new switch (and one with all of them under bf16 autocast, one on images)
RUNS = {
    "relativistic": (["loss.kind=relativistic"], set()),
    "relativistic_average": (["loss.kind=relativistic_average"], set()),
    "r2": (["penalty.r2=1"], {"r2"}),
    "r1-r2-lazy": (["penalty.r1=1", "penalty.r1_every=2", "penalty.r2=1", "penalty.r2_every=2"], {"r1", "r2"}),
    "lecam": (["penalty.lecam=0.3"], {"lecam"}),
    "all-bf16": (["loss.kind=relativistic", "penalty.r1=1", "penalty.r2=1", "penalty.lecam=0.3",
                  "train.precision=bf16"], {"r1", "r2", "lecam"}),
    "images-dcgan": (["data.name=digits", "model.arch=dcgan", "model.width=8", "train.batch_size=16",
                      "loss.kind=relativistic_average", "penalty.r2=1", "penalty.lecam=0.3", "train.n_critic=2"],
                     {"r2", "lecam"}),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_short_run_of_each_switch_has_finite_losses(tmp_path, name):
    overrides, keys = RUNS[name]
    out = tmp_path / name
    result = train(toy_cfg(out, *overrides), **QUIET)
    assert result.steps == 10
    lines = metrics(out)
    assert [line["step"] for line in lines] == [5, 10]
    for line in lines:
        assert "nonfinite" not in line
        assert keys | {"loss_d", "loss_g", "d_real", "d_fake"} <= set(line)
        assert not ({"r1", "r2", "lecam"} - keys) & set(line)  # only the active regularisers are logged
        for key in keys | {"loss_d", "loss_g"}:
            assert math.isfinite(line[key]), key
        for key in keys:
            assert line[key] >= 0, key


def test_lazy_r1_and_r2_run_on_their_own_intervals(tmp_path):
    out = tmp_path / "lazy"
    train(toy_cfg(out, "train.steps=6", "log.every=1", "penalty.r1=1", "penalty.r1_every=2", "penalty.r2=1",
                  "penalty.r2_every=3"), **QUIET)
    lines = metrics(out)
    # D step d (0-based) runs R1 when d % 2 == 0 and R2 when d % 3 == 0; G step s follows D step s - 1
    assert [line["step"] for line in lines if "r1" in line] == [1, 3, 5]
    assert [line["step"] for line in lines if "r2" in line] == [1, 4]


def test_d_step_r2_is_the_penalty_on_the_fakes_with_weight_gamma_over_two(tmp_path):
    trainer = make_trainer(toy_cfg(tmp_path / "r2", "penalty.r2=4", "train.reuse_fakes=false"), **QUIET)
    seen = []
    handle = trainer.critic_net.register_forward_hook(lambda module, args, out: seen.append((args, out)))
    before = copy.deepcopy(trainer.D)
    try:
        trainer.d_step()
    finally:
        handle.remove()
    (real, fake), out = seen[0][0], seen[0][1]
    r2 = r2_penalty(before, fake)
    assert_close(out[5].detach(), r2.detach())
    pending = trainer.recorder.pending()
    assert pending["r2"] == pytest.approx(r2.item(), rel=1e-5)
    # the toy preset's non-saturating D loss, logged apart from R2; D's gradient is that of loss + 4 / 2 * R2
    loss = F.softplus(-before(real)).mean() + F.softplus(before(fake)).mean()
    assert pending["loss_d"] == pytest.approx(loss.item(), rel=1e-5)
    (loss + 2.0 * r2).backward()
    for (name, param), (_, mine) in zip(trainer.D.named_parameters(), before.named_parameters()):
        assert_close(param.grad, mine.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert any(p.grad.abs().sum() > 0 for p in before.parameters())


def d_calls(trainer):
    """Hook D: the inputs and outputs of every call, whether grad was enabled, and the hook's handle."""
    inputs, outputs, grad = [], [], []

    def hook(module, args, out):
        inputs.append(args[0].detach().clone())
        outputs.append(out.detach().clone())
        grad.append(torch.is_grad_enabled())

    return inputs, outputs, grad, trainer.D.register_forward_hook(hook)


@pytest.mark.parametrize("kind", ["relativistic", "relativistic_average"])
def test_relativistic_g_step_scores_a_fresh_real_batch(tmp_path, kind):
    trainer = make_trainer(toy_cfg(tmp_path / kind, f"loss.kind={kind}"), **QUIET)
    trainer.d_step()
    index, seen = trainer.batch_index, trainer.images_seen
    next_batch = trainer.data.rank_batch(index, 32, 0, 1, trainer.device)
    inputs, outputs, grad, handle = d_calls(trainer)
    try:
        trainer.g_step()
    finally:
        handle.remove()
    # the next batch of the data stream, scored without a graph, then the fakes
    assert (trainer.batch_index, trainer.images_seen) == (index + 1, seen + 32)
    assert len(inputs) == 2 and torch.equal(inputs[0], next_batch)
    assert grad == [False, True]
    real, fake = outputs[0].flatten(), outputs[1].flatten()
    if kind == "relativistic":
        by_hand = F.softplus(real - fake).mean()
    else:
        by_hand = F.softplus(real.mean() - fake).mean() + F.softplus(real - fake.mean()).mean()
    assert trainer.recorder.pending()["loss_g"] == pytest.approx(by_hand.item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["hinge", "nonsaturating", "wasserstein"])
def test_other_losses_keep_one_d_pass_in_the_g_step(tmp_path, kind):
    trainer = make_trainer(toy_cfg(tmp_path / kind, f"loss.kind={kind}"), **QUIET)
    trainer.d_step()
    index, seen = trainer.batch_index, trainer.images_seen
    inputs, _, _, handle = d_calls(trainer)
    try:
        trainer.g_step()
    finally:
        handle.remove()
    assert len(inputs) == 1
    assert (trainer.batch_index, trainer.images_seen) == (index, seen)


def test_conditional_relativistic_g_step_passes_the_real_labels(tmp_path):
    cfg = toy_cfg(tmp_path / "cond", "loss.kind=relativistic", "model.conditional=true", "model.arch=mlp",
                  "data.name=digits", "train.batch_size=16")
    trainer = make_trainer(cfg, **QUIET)
    trainer.d_step()
    labels = trainer.data.rank_labels(trainer.batch_index, 16, 0, 1, trainer.device)
    seen = []
    handle = trainer.D.register_forward_hook(lambda module, args, kwargs, out: seen.append(kwargs.get("y")),
                                             with_kwargs=True)
    try:
        trainer.g_step()
    finally:
        handle.remove()
    assert len(seen) == 2 and torch.equal(seen[0], labels)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_with_r1_r2_lecam_relativistic(tmp_path, precision):
    """fp16: R1 and R2 through the AMP gradient-penalty recipe (scaled outputs, unscaled gradients)."""
    out = tmp_path / precision
    train(toy_cfg(out, "data.name=digits", "model.arch=dcgan", "model.width=8", "train.batch_size=16",
                  "model.d_norm=layer", "loss.kind=relativistic", "penalty.r1=1", "penalty.r2=1", "penalty.r2_every=2",
                  "penalty.lecam=0.3", f"train.precision={precision}", "train.device=cuda"), **QUIET)
    for line in metrics(out):
        assert "nonfinite" not in line
        assert {"r1", "r2", "lecam"} <= set(line)
