"""Class-conditional blocks: conditional BN, projection and AC-GAN heads, labelled penalties, a toy run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ganstab.errors import DataError
from ganstab.models.conditional import (
    ACGANHead,
    ConditionalBatchNorm1d,
    ConditionalBatchNorm2d,
    ConditionalDCGANGenerator,
    ConditionalDiscriminator,
    ConditionalMLPGenerator,
    ProjectionHead,
    acgan_class_loss,
    class_frequencies,
    conditional_dcgan_discriminator,
    conditional_gradient_penalty,
    conditional_mlp_discriminator,
    conditional_r1,
    sample_labels,
)


# --- conditional batch norm -------------------------------------------------------------------

@pytest.mark.parametrize("cbn_cls, bn_cls, shape", [
    (ConditionalBatchNorm2d, nn.BatchNorm2d, (6, 3, 4, 4)),
    (ConditionalBatchNorm1d, nn.BatchNorm1d, (6, 3)),
])
def test_one_class_equals_plain_batch_norm_in_train_and_eval(cbn_cls, bn_cls, shape) -> None:
    cbn, bn = cbn_cls(3, num_classes=1), bn_cls(3)
    gen = torch.Generator().manual_seed(0)
    y = torch.zeros(shape[0], dtype=torch.long)
    for _ in range(3):  # several train steps so the running statistics move away from (0, 1)
        x = torch.randn(shape, generator=gen) * 2 + 1
        assert_close(cbn(x, y), bn(x))
    assert_close(cbn.norm.running_mean, bn.running_mean)
    assert_close(cbn.norm.running_var, bn.running_var)
    cbn.eval()
    bn.eval()
    x = torch.randn(shape, generator=gen)
    assert_close(cbn(x, y), bn(x))


def test_conditional_batch_norm_uses_each_samples_class_parameters() -> None:
    cbn = ConditionalBatchNorm1d(2, num_classes=2).eval()  # eval: running stats (0, 1) -> x_hat ~= x
    with torch.no_grad():
        cbn.gamma.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, -1.0]]))
        cbn.beta.weight.copy_(torch.tensor([[0.0, 0.0], [0.5, 3.0]]))
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    x_hat = x / math.sqrt(1 + 1e-5)
    expected = torch.stack([x_hat[0], x_hat[1] * torch.tensor([2.0, -1.0]) + torch.tensor([0.5, 3.0])])
    assert_close(cbn(x, torch.tensor([0, 1])), expected)


def test_labels_of_wrong_shape_are_refused() -> None:
    cbn = ConditionalBatchNorm2d(3, num_classes=2)
    with pytest.raises(ValueError, match="labels must have shape"):
        cbn(torch.zeros(4, 3, 2, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        cbn(torch.zeros(4, 3, 2, 2), torch.zeros(4))


# --- heads --------------------------------------------------------------------------------------

def test_projection_head_matches_hand_computation() -> None:
    head = ProjectionHead(2, num_classes=2)
    with torch.no_grad():
        head.psi.weight.copy_(torch.tensor([[1.0, -2.0]]))
        head.psi.bias.fill_(0.5)
        head.embed.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    phi = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    # sample 0: (1 - 4 + 0.5) + (1*1 + 0*2) = -1.5; sample 1: (3 + 2 + 0.5) + (0*3 + 3*-1) = 2.5
    assert_close(head(phi, torch.tensor([0, 1])), torch.tensor([-1.5, 2.5]))
    # the same features with the labels swapped: -2.5 + 6 = 3.5 and 5.5 + 3 = 8.5
    assert_close(head(phi, torch.tensor([1, 0])), torch.tensor([3.5, 8.5]))


def test_spectral_norm_heads_are_parametrised() -> None:
    for head in (ProjectionHead(4, 3, sn=True), ACGANHead(4, 3, sn=True)):
        assert sum(hasattr(m, "parametrizations") for m in head.modules()) == 2
    assert ProjectionHead(4, 3, sn=True)(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])).shape == (5,)


def test_acgan_class_loss_matches_hand_computation() -> None:
    class_logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    # -log(e^2 / (e^2 + 1)) = log(1 + e^-2) = 0.126928;  -log(1/2) = 0.693147
    assert_close(acgan_class_loss(class_logits, torch.tensor([0, 1])), torch.tensor(0.4100378))


def test_acgan_head_shapes() -> None:
    logits, class_logits = ACGANHead(4, 3)(torch.randn(5, 4))
    assert logits.shape == (5,) and class_logits.shape == (5, 3)


# --- conditional D and G ------------------------------------------------------------------------

def test_discriminator_factories_give_logits_in_both_modes() -> None:
    torch.manual_seed(0)
    y = torch.tensor([0, 2, 1])
    for d, x in ((conditional_mlp_discriminator((2,), (8, 8), "layer", 3), torch.randn(3, 2)),
                 (conditional_dcgan_discriminator(1, 8, 4, "spectral", 3), torch.randn(3, 1, 8, 8))):
        assert d(x, y).shape == (3,)
        with pytest.raises(ValueError, match="needs labels"):
            d(x)
        with pytest.raises(ValueError, match="mode 'acgan'"):
            d.forward_with_classes(x)
    d = conditional_dcgan_discriminator(1, 8, 4, "none", 3, mode="acgan")
    x = torch.randn(3, 1, 8, 8)
    logits, class_logits = d.forward_with_classes(x)
    assert class_logits.shape == (3, 3)
    assert_close(d(x, y), logits)
    assert_close(d(x), logits)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="projection, acgan"):
        ConditionalDiscriminator(nn.Identity(), 2, 2, mode="cgan")


def test_mlp_generator_depends_on_the_label() -> None:
    torch.manual_seed(0)
    g = ConditionalMLPGenerator(4, (2,), (8,), "none", 3, tanh=False)
    assert g.embed_dim == 4
    assert ConditionalMLPGenerator(64, (2,), (8,), "none", 3).embed_dim == 50
    z = torch.randn(1, 4).expand(3, 4)
    out = g(z, torch.tensor([0, 1, 2]))
    assert out.shape == (3, 2)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


@pytest.mark.parametrize("norm, conditional_bn", [("batch", True), ("spectral", False)])
def test_dcgan_generator_conditions_through_batch_norm_and_input(norm, conditional_bn) -> None:
    torch.manual_seed(0)
    g = ConditionalDCGANGenerator(4, 1, 8, 4, norm, 2)
    n_cbn = sum(isinstance(m, ConditionalBatchNorm2d) for m in g.modules())
    n_plain_bn = sum(type(m) is nn.BatchNorm2d and m.affine for m in g.modules())
    assert (n_cbn > 0, g.embed_dim, n_plain_bn) == (conditional_bn, 4, 0)
    z = torch.randn(1, 4).expand(4, 4)
    out = g(z, torch.tensor([0, 0, 1, 1]))
    assert out.shape == (4, 1, 8, 8)
    assert not torch.allclose(out[0], out[2])  # the label embedding tells classes apart from the first step
    assert torch.allclose(out[0], out[1])
    if conditional_bn:  # and each class's batch-norm gains act on it
        with torch.no_grad():
            g.layers[0].beta.weight[1].fill_(1.0)
        moved = g(z, torch.tensor([0, 0, 1, 1]))
        assert torch.allclose(moved[0], out[0]) and not torch.allclose(moved[2], out[2])


# --- label sampling -----------------------------------------------------------------------------

def test_class_frequencies_exact() -> None:
    freqs = class_frequencies(torch.tensor([0, 2, 2, 1, 2, 0]), 4)
    assert_close(freqs, torch.tensor([2 / 6, 1 / 6, 3 / 6, 0.0], dtype=torch.float64))
    with pytest.raises(DataError, match="0..2"):
        class_frequencies(torch.tensor([0, 3]), 3)


def test_sample_labels_repeat_with_the_same_generator_state() -> None:
    probs = torch.tensor([0.5, 0.0, 0.5])
    first = sample_labels(200, probs, torch.Generator().manual_seed(3))
    second = sample_labels(200, probs, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    assert first.dtype == torch.long and first.shape == (200,)
    assert set(first.tolist()) == {0, 2}
    assert sample_labels(0, probs, None).shape == (0,)


# --- penalties with labels ----------------------------------------------------------------------

def projection_critic(seed: int = 0) -> ConditionalDiscriminator:
    """A small projection MLP D without batch norm, in float64 so per-sample sums compare tightly."""
    torch.manual_seed(seed)
    d = conditional_mlp_discriminator((2,), (16, 16), "layer", 3)
    with torch.no_grad():
        d.head.embed.weight.normal_()  # clearly non-zero class embeddings
    return d.double()


def test_penalties_use_each_samples_own_label() -> None:
    d = projection_critic()
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    fake = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    alpha = torch.rand(5, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1, 0])
    batch_gp = conditional_gradient_penalty(d, real, fake, y, alpha)
    single_gp = torch.stack([conditional_gradient_penalty(d, real[i:i + 1], fake[i:i + 1], y[i:i + 1], alpha[i:i + 1])
                             for i in range(5)])
    assert_close(batch_gp, single_gp.mean())
    batch_r1 = conditional_r1(d, real, y)
    single_r1 = torch.stack([conditional_r1(d, real[i:i + 1], y[i:i + 1]) for i in range(5)])
    assert_close(batch_r1, single_r1.mean())
    permuted = torch.tensor([2, 0, 1, 0, 2])
    assert not torch.allclose(conditional_gradient_penalty(d, real, fake, permuted, alpha), batch_gp)
    assert not torch.allclose(conditional_r1(d, real, permuted), batch_r1)


def test_gradient_penalty_alpha_is_per_sample_on_points_and_images() -> None:
    # D(x, y) = c_y * sum(x): grad norm is |c_y| * sqrt(numel per sample), whatever alpha is
    scale = torch.tensor([1.0, 2.0])

    def critic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return scale[y] * x.flatten(1).sum(1)

    y = torch.tensor([0, 1, 1])
    for shape in ((3, 2), (3, 1, 2, 2)):
        numel = math.prod(shape[1:])
        real, fake = torch.randn(shape), torch.randn(shape)
        expected = torch.tensor([(math.sqrt(numel) - 1) ** 2, (2 * math.sqrt(numel) - 1) ** 2,
                                 (2 * math.sqrt(numel) - 1) ** 2]).mean()
        assert_close(conditional_gradient_penalty(critic, real, fake, y, torch.rand(3)), expected)
        assert_close(conditional_r1(critic, real, y), torch.tensor([numel, 4.0 * numel, 4.0 * numel]).mean())
    with pytest.raises(ValueError, match="one value per sample"):
        conditional_gradient_penalty(critic, torch.randn(3, 2), torch.randn(3, 2), y, torch.rand(3, 2))


def test_penalty_gradient_reaches_the_critic() -> None:
    d = projection_critic()
    real = torch.randn(4, 2, dtype=torch.float64)
    conditional_r1(d, real, torch.tensor([0, 1, 2, 0])).backward()
    assert d.head.embed.weight.grad is not None and d.head.embed.weight.grad.abs().sum() > 0


# --- training sanity ----------------------------------------------------------------------------

def test_conditional_gan_learns_which_gaussian_each_class_is() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    g = ConditionalMLPGenerator(4, (2,), (32, 32), "none", 2, tanh=False)
    d = conditional_mlp_discriminator((2,), (32, 32), "none", 2)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.9))
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    balanced = torch.full((2,), 0.5)
    batch = 64
    for _ in range(300):
        y = sample_labels(batch, balanced, gen)
        real = centres[y] + 0.3 * torch.randn(batch, 2, generator=gen)
        with torch.no_grad():
            fake = g(torch.randn(batch, 4, generator=gen), y)
        d_loss = F.softplus(-d(real, y)).mean() + F.softplus(d(fake, y)).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        y = sample_labels(batch, balanced, gen)
        g_loss = F.softplus(-d(g(torch.randn(batch, 4, generator=gen), y), y)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    g.eval()
    with torch.no_grad():
        x0 = g(torch.randn(500, 4, generator=gen), torch.zeros(500, dtype=torch.long))
        x1 = g(torch.randn(500, 4, generator=gen), torch.ones(500, dtype=torch.long))
    assert (x0[:, 0] < 0).float().mean() > 0.9
    assert (x1[:, 0] > 0).float().mean() > 0.9
    assert x0[:, 0].mean() < 0 < x1[:, 0].mean()
