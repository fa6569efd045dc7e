"""Consistency regularisation (Zhao et al. 2020): bCR and zCR against hand computations, then inside tiny runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganstab import losses
from ganstab.augment import translate
from ganstab.errors import ConfigError
from ganstab.penalties import consistency_penalty, perturb_latents
from ganstab.pipeline import load_config, make_trainer

W = torch.tensor([1.0, -2.0, 0.5, 3.0])


class LinearCritic(nn.Module):
    """D(x) = w . flatten(x)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(W.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


class LinearGenerator(nn.Module):
    """G(z) = A z, a (B, 2) latent to a (B, 4) sample."""

    def __init__(self) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.A.T


# two 2x2 one-channel images: D(x0) = 1 - 4 + 1.5 + 12 = 10.5, D(x1) = 0 + 2 + 1 + 3 = 6
X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, -1.0], [2.0, 1.0]]]])


def _translated() -> torch.Tensor:
    """T(x): sample 0 moved one pixel right, sample 1 one pixel down (the uncovered pixels become -1)."""
    return translate(X, torch.tensor([0, 1]), torch.tensor([1, 0]))


def test_translate_gives_the_hand_computed_transforms() -> None:
    assert_close(_translated(), torch.tensor([[[[-1.0, 1.0], [-1.0, 3.0]]], [[[-1.0, -1.0], [0.0, -1.0]]]]))


def test_bcr_value_and_gradient_by_hand() -> None:
    # D(T(x0)) = -1 - 2 - 0.5 + 9 = 5.5, D(T(x1)) = -1 + 2 + 0 - 3 = -2: differences 5 and 8
    critic = LinearCritic()
    value = consistency_penalty(critic(X), critic(_translated()))
    assert_close(value, torch.tensor((5.0 ** 2 + 8.0 ** 2) / 2))  # 44.5
    value.backward()
    # d/dw mean_i (w . d_i)^2 = mean_i 2 (w . d_i) d_i with d_0 = (2, 1, 4, 1), d_1 = (1, 0, 2, 2)
    assert_close(critic.w.grad, torch.tensor([18.0, 5.0, 36.0, 21.0]))


def test_bcr_per_sample_mean_of_single_sample_values() -> None:
    critic = LinearCritic()
    batch = consistency_penalty(critic(X), critic(_translated()))
    singles = [consistency_penalty(critic(X[i:i + 1]), critic(_translated()[i:i + 1])) for i in range(2)]
    assert_close(batch, torch.stack(singles).mean())
    assert_close(torch.stack(singles), torch.tensor([25.0, 64.0]))


def test_column_logits_give_the_same_value() -> None:
    a, b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 4.0, 3.0])
    assert_close(consistency_penalty(a, b), torch.tensor(5.0 / 3))
    assert_close(consistency_penalty(a[:, None], b[:, None]), torch.tensor(5.0 / 3))


def test_images_average_over_features_then_batch() -> None:
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[2.0, 0.0], [0.0, 0.0]]]])
    assert_close(consistency_penalty(a, b), torch.tensor((1.0 + 1.0) / 2))  # per sample 4/4 and 4/4


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError) as err:
        consistency_penalty(torch.zeros(3), torch.zeros(3, 1))
    assert str(err.value) == "consistency penalty needs equal shapes, got (3,) and (3, 1)"


Z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
NOISE = torch.tensor([[1.0, -1.0], [2.0, 0.0]])


def test_perturb_latents_is_z_plus_sigma_noise() -> None:
    assert_close(perturb_latents(Z, NOISE, 0.5), torch.tensor([[1.5, -0.5], [1.0, 2.0]]))
    with pytest.raises(ValueError) as err:
        perturb_latents(Z, NOISE[:1], 0.5)
    assert str(err.value) == "latents and noise shapes differ: (2, 2) vs (1, 2)"


def test_zcr_generator_term_value_and_gradient_by_hand() -> None:
    gen = LinearGenerator()
    fake, fake_eps = gen(Z), gen(perturb_latents(Z, NOISE, 0.5))
    # G(z') - G(z) = A * 0.5 * noise = (0.5, -0.5, 0, 1.5) and (1, 0, 1, 2)
    assert_close(fake_eps - fake, torch.tensor([[0.5, -0.5, 0.0, 1.5], [1.0, 0.0, 1.0, 2.0]]))
    diversity = consistency_penalty(fake, fake_eps)
    assert_close(diversity, torch.tensor((2.75 / 4 + 6.0 / 4) / 2))  # 1.09375
    total, parts = losses.generator_objective(torch.zeros(()), diversity, 0.5)
    assert_close(total, torch.tensor(-0.5 * 1.09375))
    assert set(parts) == {"zcr_g"}
    total.backward()
    # d diversity / dA = 1/4 * sum_i delta_i (0.5 noise_i)^T; G's objective has -0.5 times it
    expected = -0.5 * torch.tensor([[0.3125, -0.0625], [-0.0625, 0.0625], [0.25, 0.0], [0.6875, -0.1875]])
    assert_close(gen.A.grad, expected)


def test_zcr_discriminator_term_value_and_gradient_by_hand() -> None:
    gen, critic = LinearGenerator(), LinearCritic()
    with torch.no_grad():
        fake, fake_eps = gen(Z), gen(perturb_latents(Z, NOISE, 0.5))
    value = consistency_penalty(critic(fake), critic(fake_eps))
    assert_close(value, torch.tensor((6.0 ** 2 + 7.5 ** 2) / 2))  # w . delta = 6 and 7.5
    value.backward()
    assert_close(critic.w.grad, torch.tensor([10.5, -3.0, 7.5, 24.0]))


def test_discriminator_objective_adds_the_weighted_terms() -> None:
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])  # wasserstein loss 0.5 - 1.5 = -1
    total, parts = losses.discriminator_objective(
        "wasserstein", real, fake, bcr_real=torch.tensor(0.5), bcr_real_weight=10.0,
        bcr_fake=torch.tensor(0.25), bcr_fake_weight=4.0, zcr=torch.tensor(2.0), zcr_weight=5.0)
    assert_close(total, torch.tensor(-1.0 + 5.0 + 1.0 + 10.0))
    assert list(parts) == ["loss_d", "bcr_real", "bcr_fake", "zcr_d"]
    assert_close(parts["zcr_d"], torch.tensor(2.0))


def test_generator_objective_without_zcr_is_the_loss() -> None:
    loss = torch.tensor(0.7)
    total, parts = losses.generator_objective(loss)
    assert total is loss and parts == {}


# ------------------------------------------------------------------------------------------- inside the loop
BASE = ["log.progress=false", "eval.final=false", "eval.every=0", "log.every=5", "log.sample_every=1000",
        "log.checkpoint_every=1000", "train.batch_size=16", "train.device=cpu", "model.hidden=[32,32]"]


def _trainer(out: Path, *extra: str):
    return make_trainer(load_config(overrides=[f"out={out}", *BASE, *extra]), echo=lambda m: None)


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_generate_pairs_g_of_z_with_g_of_perturbed_z(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", "model.g_norm=none", "penalty.zcr=5", "penalty.zcr_sigma=0.25")
    state = trainer.gen.get_state()
    with torch.no_grad():
        fake, fake_eps = trainer.generate(4, {})
        trainer.gen.set_state(state)
        z, noise = trainer.latent(4), trainer.latent(4)
        assert_close(fake, trainer.G(z))
        assert_close(fake_eps, trainer.G(z + 0.25 * noise))


def test_generate_without_zcr_draws_one_latent_batch(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", "model.g_norm=none")
    state = trainer.gen.get_state()
    with torch.no_grad():
        fake, fake_eps = trainer.generate(4, {})
        trainer.gen.set_state(state)
        assert_close(fake, trainer.G(trainer.latent(4)))
    assert fake_eps is None


def test_augmented_pair_uses_the_same_draws_for_both(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", "augment.policy=translation,cutout")
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    state = trainer.aug_gen.get_state()
    first, second = trainer.augmented_pair(x, x.clone())
    assert torch.equal(first, second)
    after_pair = trainer.aug_gen.get_state()
    trainer.aug_gen.set_state(state)
    assert torch.equal(trainer.augmented(x), first)
    assert torch.equal(trainer.aug_gen.get_state(), after_pair)


def test_cr_transform_applies_cr_policy_to_every_sample(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "run", "penalty.bcr_real=10", "penalty.cr_policy=cutout")
    x = torch.ones(32, 1, 8, 8)
    out = trainer.cr_transformed(x)
    assert ((out == 0).flatten(1).sum(dim=1) > 0).all()  # cutout (fill 0) reached every sample: p = 1


@pytest.mark.parametrize("name, extra, keys", [
    ("bcr", ["penalty.bcr_real=10", "penalty.bcr_fake=10"], {"bcr_real", "bcr_fake"}),
    ("zcr", ["penalty.zcr=5", "penalty.zcr_gen=0.5"], {"zcr_d", "zcr_g"}),
    ("zcr-gen-only-ncritic", ["penalty.zcr_gen=0.5", "train.n_critic=2"], {"zcr_g"}),
    ("dcgan-conditional-augmented", ["model.arch=dcgan", "model.width=8", "model.conditional=true",
                                     "augment.policy=translation", "penalty.bcr_fake=10", "penalty.zcr=5",
                                     "penalty.zcr_gen=0.5", "train.n_critic=2"], {"bcr_fake", "zcr_d", "zcr_g"}),
    ("toy-zcr", ["data.name=ring8", "model.arch=toy", "model.latent_dim=2", "penalty.zcr=5", "penalty.zcr_gen=0.5"],
     {"zcr_d", "zcr_g"}),
])
def test_short_runs_log_finite_terms(tmp_path: Path, name: str, extra: list[str], keys: set[str]) -> None:
    trainer = _trainer(tmp_path / name, "train.steps=10", *extra)
    trainer.run()
    lines = _lines(tmp_path / name)
    assert [line["step"] for line in lines] == [5, 10]
    for line in lines:
        assert keys <= set(line)
        assert not ({"bcr_real", "bcr_fake", "zcr_d", "zcr_g"} - keys) & set(line)  # inactive terms absent
        for key in keys:
            assert math.isfinite(line[key]) and line[key] >= 0, (key, line[key])
        assert math.isfinite(line["loss_d"]) and math.isfinite(line["loss_g"])


def test_bcr_is_refused_on_points(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[f"out={tmp_path}", "data.name=ring8", "model.arch=toy", "penalty.bcr_real=10"])
    assert str(err.value) == ("penalty.bcr_real/penalty.bcr_fake compare D on images and their transforms, but ring8 "
                              "holds 2-D points; remove them (penalty.zcr works on any data)")


def test_unknown_cr_transform_names_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[f"out={tmp_path}", "penalty.bcr_real=10", "penalty.cr_policy=flip"])
    assert str(err.value) == "unknown augmentation 'flip' in penalty.cr_policy; known: color, translation, cutout"


def test_bcr_without_a_transform_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[f"out={tmp_path}", "penalty.bcr_fake=10", "penalty.cr_policy=''"])
    assert str(err.value) == ("penalty.bcr_real/penalty.bcr_fake compare D(x) with D(T(x)), but penalty.cr_policy (T) "
                              "is empty; set penalty.cr_policy=translation")
