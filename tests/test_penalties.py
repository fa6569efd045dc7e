"""Gradient penalty, R1 and weight clipping: per-sample maths checked against exact values."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import ganstab.penalties as pen
from ganstab.penalties import (clip_weights, consistency_penalty, gradient_penalty, interpolate, lazy_weight,
                               perturb_latents, r1_penalty, r2_penalty)


class LinearCritic(nn.Module):
    """D(x) = w . flatten(x): its input gradient is w for every sample."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def unit_w(n: int, norm: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, generator=gen)
    return w / w.norm() * norm


def mlp_critic(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, 1))


def conv_critic(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(4, 8, 4, stride=2, padding=1), nn.Tanh(),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 1),
    )


def single_penalty_by_hand(critic: nn.Module, x_hat: torch.Tensor, target: float) -> torch.Tensor:
    """(||grad_x D(x)|| - target)^2 for one sample, written without the library."""
    x = x_hat.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return (grad.flatten().norm() - target) ** 2


def alphas(batch: int, rank: int, seed: int) -> torch.Tensor:
    """The alphas `interpolate` draws from a generator seeded with `seed` (same call, same numbers)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((batch,) + (1,) * (rank - 1), generator=gen)


# ---------------------------------------------------------------- interpolate

@pytest.mark.parametrize("shape", [(6, 2), (5, 1, 28, 28), (3, 3, 4, 5)])
def test_interpolate_uses_one_alpha_per_sample_of_matching_rank(shape):
    real = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    fake = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    x_hat = interpolate(real, fake, torch.Generator().manual_seed(7))
    alpha = alphas(shape[0], len(shape), 7)
    assert x_hat.shape == real.shape
    assert alpha.shape == (shape[0],) + (1,) * (len(shape) - 1)
    assert_close(x_hat, alpha * real + (1 - alpha) * fake)
    assert not x_hat.requires_grad


def test_interpolate_detaches_its_inputs():
    real = torch.randn(4, 2, requires_grad=True)
    fake = torch.randn(4, 2, requires_grad=True)
    assert not interpolate(real, fake).requires_grad


def test_interpolate_shape_mismatch():
    with pytest.raises(ValueError) as info:
        interpolate(torch.zeros(4, 2), torch.zeros(4, 3))
    assert str(info.value) == "real and fake shapes differ: (4, 2) vs (4, 3)"


# ---------------------------------------------------------------- batch penalty = mean of per-sample penalties

@pytest.mark.parametrize("make_critic,shape", [(mlp_critic, (8, 2)), (conv_critic, (5, 1, 28, 28))])
def test_gradient_penalty_is_mean_of_single_sample_penalties(make_critic, shape, monkeypatch):
    critic = make_critic()
    real = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    fake = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    batch = gradient_penalty(critic, real, fake, target=1.0, generator=torch.Generator().manual_seed(11))

    alpha = alphas(shape[0], len(shape), 11)
    x_hat = alpha * real + (1 - alpha) * fake
    by_hand = torch.stack([single_penalty_by_hand(critic, x_hat[i:i + 1], 1.0) for i in range(shape[0])])
    assert_close(batch, by_hand.mean())

    # the library's own single-sample penalties at the same interpolates, averaged
    singles = []
    for i in range(shape[0]):
        singles.append(gradient_penalty(critic, real[i:i + 1], fake[i:i + 1], target=1.0, alpha=alpha[i:i + 1]))
    assert_close(batch, torch.stack(singles).mean())
    assert_close(torch.stack(singles), by_hand)
    # the penalties are not all equal, so the comparison means something
    assert by_hand.std() > 0


def test_gradient_penalty_with_other_target(monkeypatch):
    critic = mlp_critic(seed=5)
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    batch = gradient_penalty(critic, real, fake, target=0.5, generator=torch.Generator().manual_seed(2))
    alpha = alphas(6, 2, 2)
    x_hat = alpha * real + (1 - alpha) * fake
    by_hand = torch.stack([single_penalty_by_hand(critic, x_hat[i:i + 1], 0.5) for i in range(6)]).mean()
    assert_close(batch, by_hand)


# ---------------------------------------------------------------- linear critic: exact values

@pytest.mark.parametrize("shape", [(16, 2), (7, 1, 4, 4), (3, 3, 2, 5)])
def test_gradient_penalty_of_linear_critic_with_norm_two_is_one(shape):
    n = math.prod(shape[1:])
    critic = LinearCritic(unit_w(n, 2.0))
    real, fake = torch.randn(shape), torch.randn(shape)
    # ||grad|| = ||w|| = 2 for every sample: (2 - 1)^2 = 1 (one norm over the batch would give (2 sqrt(B) - 1)^2)
    assert_close(gradient_penalty(critic, real, fake, target=1.0), torch.tensor(1.0))
    # target 3: (2 - 3)^2 = 1; target 0.5: 1.5^2 = 2.25
    assert_close(gradient_penalty(critic, real, fake, target=3.0), torch.tensor(1.0))
    assert_close(gradient_penalty(critic, real, fake, target=0.5), torch.tensor(2.25))


def test_gradient_penalty_gradient_reaches_the_critic_weights():
    w = unit_w(2, 2.0)
    critic = LinearCritic(w)
    gp = gradient_penalty(critic, torch.randn(8, 2), torch.randn(8, 2), target=1.0)
    assert gp.requires_grad
    gp.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = w when ||w|| = 2
    assert_close(critic.w.grad, w)


@pytest.mark.parametrize("make_critic,shape", [(mlp_critic, (8, 2)), (conv_critic, (4, 1, 28, 28))])
def test_penalties_backpropagate_into_every_weight(make_critic, shape):
    for penalty in ("gp", "r1"):
        critic = make_critic()
        real, fake = torch.randn(shape), torch.randn(shape)
        value = (gradient_penalty(critic, real, fake) if penalty == "gp" else r1_penalty(critic, real))
        value.backward()
        for name, param in critic.named_parameters():
            if name.endswith("bias") and name.startswith(str(len(critic) - 1)):
                continue  # the last bias does not change the input gradient
            assert param.grad is not None, f"{penalty}: no gradient for {name}"
            assert param.grad.abs().sum() > 0, f"{penalty}: zero gradient for {name}"


@pytest.mark.parametrize("shape", [(16, 2), (5, 1, 4, 4)])
def test_r1_of_linear_critic_is_squared_norm(shape):
    w = unit_w(math.prod(shape[1:]), 2.0)
    critic = LinearCritic(w)
    r1 = r1_penalty(critic, torch.randn(shape))
    assert_close(r1, torch.tensor(4.0))
    r1.backward()
    # d/dw ||w||^2 = 2 w
    assert_close(critic.w.grad, 2 * w)


def test_r1_is_mean_of_single_sample_values():
    critic = conv_critic()
    real = torch.randn(4, 1, 28, 28)
    batch = r1_penalty(critic, real)
    singles = []
    for i in range(4):
        x = real[i:i + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x)
        singles.append(grad.pow(2).sum())
    assert_close(batch, torch.stack(singles).mean())


def test_penalties_leave_inputs_without_grad():
    critic = mlp_critic()
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    gradient_penalty(critic, real, fake)
    r1_penalty(critic, real)
    assert real.grad is None and not real.requires_grad


# ---------------------------------------------------------------- AMP scale

@pytest.mark.parametrize("scale", [1024.0, 0.125])
def test_scale_gives_same_result_as_one(scale):
    critic = conv_critic(seed=3)
    real, fake = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    gp1 = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(9), scale=1.0)
    gps = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(9), scale=scale)
    assert_close(gps, gp1)
    assert_close(r1_penalty(critic, real, scale=scale), r1_penalty(critic, real, scale=1.0))

    lin = LinearCritic(unit_w(2, 2.0))
    assert_close(gradient_penalty(lin, torch.randn(8, 2), torch.randn(8, 2), scale=scale), torch.tensor(1.0))
    assert_close(r1_penalty(lin, torch.randn(8, 2), scale=scale), torch.tensor(4.0))


# ---------------------------------------------------------------- R2: R1's penalty on fakes, detached from G

def single_r2_by_hand(critic: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """||grad_x D(x)||^2 for one sample, written without the library."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return grad.pow(2).sum()


@pytest.mark.parametrize("make_critic,shape", [(mlp_critic, (8, 2)), (conv_critic, (5, 1, 28, 28))])
def test_r2_is_mean_of_single_sample_penalties(make_critic, shape):
    critic = make_critic()
    fake = torch.randn(shape, generator=torch.Generator().manual_seed(6))
    batch = r2_penalty(critic, fake)
    by_hand = torch.stack([single_r2_by_hand(critic, fake[i:i + 1]) for i in range(shape[0])])
    assert batch.shape == torch.Size([])
    assert_close(batch, by_hand.mean())
    singles = torch.stack([r2_penalty(critic, fake[i:i + 1]) for i in range(shape[0])])
    assert_close(singles, by_hand)
    assert by_hand.std() > 0  # the per-sample values differ, so the comparison means something


@pytest.mark.parametrize("shape", [(16, 2), (5, 1, 4, 4)])
def test_r2_of_linear_critic_is_squared_norm_and_its_gradient(shape):
    w = unit_w(math.prod(shape[1:]), 2.0)
    critic = LinearCritic(w)
    r2 = r2_penalty(critic, torch.randn(shape))
    # ||grad|| = ||w|| = 2 for every sample: 4 (one norm over the batch would give 4 B)
    assert_close(r2, torch.tensor(4.0))
    r2.backward()
    assert_close(critic.w.grad, 2 * w)  # d/dw ||w||^2 = 2 w


def test_r2_is_r1_at_the_same_points_and_gives_g_no_gradient():
    critic = mlp_critic(seed=2)
    weight = torch.randn(3, 2, requires_grad=True)  # a linear "generator" of the fakes
    fake = torch.randn(6, 3) @ weight
    r2 = r2_penalty(critic, fake)
    assert_close(r2, r1_penalty(critic, fake.detach()))
    r2.backward()
    assert weight.grad is None  # the penalty is taken at the detached fakes
    assert critic[0].weight.grad is not None and critic[0].weight.grad.abs().sum() > 0  # D gets one


@pytest.mark.parametrize("scale", [1024.0, 0.125])
def test_r2_scale_gives_same_result_as_one(scale):
    critic = conv_critic(seed=4)
    fake = torch.randn(4, 1, 28, 28)
    assert_close(r2_penalty(critic, fake, scale=scale), r2_penalty(critic, fake, scale=1.0))
    assert_close(r2_penalty(LinearCritic(unit_w(2, 2.0)), torch.randn(8, 2), scale=scale), torch.tensor(4.0))


def test_r2_under_bf16_autocast_is_close_to_float32():
    critic = conv_critic(seed=5)
    fake = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(8))
    exact = r2_penalty(critic, fake)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = r2_penalty(critic, fake)
    assert low.dtype == torch.float32
    assert_close(low, exact, rtol=0.05, atol=0.0)  # bf16 keeps 8 bits of mantissa
    lin = LinearCritic(unit_w(2, 2.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_close(r2_penalty(lin, torch.randn(8, 2)), torch.tensor(4.0), rtol=0.02, atol=0.0)


def test_lazy_r2_weight_schedule():
    # R2 every 3 D steps with weight 3 gamma, on d_steps 0, 3, 6 (the same rule as lazy R1)
    assert [lazy_weight(0.5, 3, d) for d in range(7)] == [1.5, 0.0, 0.0, 1.5, 0.0, 0.0, 1.5]


# ---------------------------------------------------------------- weight clipping

def test_clip_weights_bounds_every_parameter():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.5, -0.005, 0.02], [0.0, 0.01, -0.01],
                                          [-3.0, 0.009, 0.001], [0.011, -0.011, 0.0099]]))
        net[0].bias.copy_(torch.tensor([0.003, -0.2, 0.02, -0.001]))
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    clip_weights(net, 0.01)
    for name, param in net.named_parameters():
        assert param.abs().max() <= 0.01, name
        small = before[name].abs() <= 0.01
        assert torch.equal(param[small], before[name][small]), f"{name}: small values changed"
        assert_close(param[~small], 0.01 * before[name][~small].sign())
    assert_close(net[0].weight, torch.tensor([[0.01, -0.005, 0.01], [0.0, 0.01, -0.01],
                                              [-0.01, 0.009, 0.001], [0.01, -0.01, 0.0099]]))
    assert_close(net[0].bias, torch.tensor([0.003, -0.01, 0.01, -0.001]))


def test_clip_weights_is_not_tracked_by_autograd():
    net = nn.Linear(2, 2)
    clip_weights(net, 0.1)
    assert all(p.requires_grad and p.grad_fn is None for p in net.parameters())


@pytest.mark.parametrize("c", [0.0, -0.01])
def test_clip_weights_rejects_non_positive(c):
    with pytest.raises(ValueError, match=re.escape(f"clip value must be positive, got {c}")):
        clip_weights(nn.Linear(2, 2), c)


def test_lazy_weight_refuses_an_interval_below_one():
    assert lazy_weight(0.5, 1, 7) == 0.5
    with pytest.raises(ValueError, match=re.escape("every must be >= 1, got 0")):
        lazy_weight(0.5, 0, 0)


# ---------------------------------------------------------------- consistency terms

def test_consistency_penalty_is_the_per_sample_feature_mean_then_the_batch_mean():
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 0.0], [1.0, -1.0, 2.0]])
    # sample 0: mean(0, 4, 9) = 13/3; sample 1: mean(1, 1, 4) = 2; batch mean 19/6
    assert_close(consistency_penalty(a, b), torch.tensor(19.0 / 6))
    # image-shaped (B, C, H, W): the mean over each sample's C*H*W features, in float32 from bf16
    value = consistency_penalty(a.reshape(2, 1, 3, 1).bfloat16(), b.reshape(2, 1, 3, 1).bfloat16())
    assert value.dtype == torch.float32
    assert_close(value, torch.tensor(19.0 / 6))
    with pytest.raises(ValueError, match=re.escape("consistency penalty needs equal shapes, got (2, 3) and (3, 2)")):
        consistency_penalty(a, b.reshape(3, 2))


def test_perturb_latents_adds_sigma_times_the_noise():
    z, noise = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 4.0]])
    assert_close(perturb_latents(z, noise, 0.1), torch.tensor([[1.05, -1.6]]))
    with pytest.raises(ValueError, match=re.escape("latents and noise shapes differ: (1, 2) vs (2, 1)")):
        perturb_latents(z, noise.reshape(2, 1), 0.1)


# ---------------------------------------------------------------- what the AMP scale is for, and alpha's dtype

def tiny_half_critic(x: torch.Tensor) -> torch.Tensor:
    """D(x) = 1e-8 * sum_j x_j computed in float16: its input gradient 1e-8 underflows to 0 in float16 unscaled."""
    return ((x.half() * 1e-4) * 1e-4).float().sum(dim=1)


def test_scale_keeps_half_precision_gradients_from_underflowing():
    real, fake = torch.ones(2, 4), torch.zeros(2, 4)
    # each input gradient is 1e-8 (float16's 1e-4 squared, 1.0003e-8): ||grad||^2 = 4 * 1e-16 per sample
    expected = torch.tensor(4 * (1e-4 * 1.0001659) ** 4)
    assert_close(r1_penalty(tiny_half_critic, real, scale=1024.0), expected, rtol=0.02, atol=0.0)
    assert_close(r2_penalty(tiny_half_critic, fake, scale=1024.0), expected, rtol=0.02, atol=0.0)
    assert_close(gradient_penalty(tiny_half_critic, real, fake, target=0.0, scale=1024.0), expected,
                 rtol=0.02, atol=0.0)
    assert r1_penalty(tiny_half_critic, real).item() == 0.0  # unscaled, float16 flushes 1e-8 to zero


def test_interpolate_draws_and_casts_alpha_in_the_inputs_dtype():
    real, fake = torch.ones(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    drawn = interpolate(real, fake, torch.Generator().manual_seed(5))
    alpha = torch.rand((3, 1), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert drawn.dtype == torch.float64
    assert torch.equal(drawn, alpha.expand(3, 2))  # float64 draws, not float32 ones widened
    given = interpolate(real.float(), fake.float(), alpha=torch.tensor([0.25, 0.5, 1 / 3], dtype=torch.float64))
    assert given.dtype == torch.float32
    assert_close(given, torch.tensor([[0.25] * 2, [0.5] * 2, [1 / 3] * 2]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_interpolate_puts_alpha_on_the_inputs_device():
    real, fake = torch.ones(3, 2, device="cuda"), torch.zeros(3, 2, device="cuda")
    assert interpolate(real, fake).device.type == "cuda"
    assert interpolate(real, fake, alpha=torch.tensor([0.25, 0.5, 0.75])).device.type == "cuda"
