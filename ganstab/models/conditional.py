"""Class-conditional G and D: conditional batch norm, projection and AC-GAN heads, label sampling.

Conditioning as the literature means it (guide section 6): G sees the label through conditional
batch norm (a class-dependent scale and shift after a plain batch norm) or, where G has no batch
norm, through a label embedding concatenated to z; D is a feature extractor phi(x) followed by a
projection head, D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018), or by an
auxiliary classifier (AC-GAN, Odena et al. 2017). Labels are integer tensors of shape (B,).
The penalties take a critic(x, y) and give each sample its own label.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganstab.config import ModelConfig
from ganstab.errors import DataError
from ganstab.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganstab.models.mlp import MLPDiscriminator, MLPGenerator
from ganstab.models.norms import weight_layer

__all__ = [
    "label_distribution",
    "run_label_distribution",
    "CONDITIONAL_MODES",
    "MAX_LABEL_EMBEDDING",
    "ACGANHead",
    "ConditionalBatchNorm1d",
    "ConditionalBatchNorm2d",
    "ConditionalDCGANGenerator",
    "ConditionalDiscriminator",
    "ConditionalMLPGenerator",
    "LabelledCritic",
    "ProjectionHead",
    "acgan_class_loss",
    "class_frequencies",
    "conditional_dcgan_discriminator",
    "conditional_gradient_penalty",
    "conditional_mlp_discriminator",
    "conditional_r1",
    "label_embedding_dim",
    "sample_labels",
]

CONDITIONAL_MODES = ("projection", "acgan")
MAX_LABEL_EMBEDDING = 50  # cap on the label embedding concatenated to z

LabelledCritic = Callable[[Tensor, Tensor], Tensor]


def _check_labels(y: Tensor, batch: int) -> None:
    """Raise ValueError unless y is an integer tensor of shape (batch,)."""
    if y.dim() != 1 or y.shape[0] != batch:
        raise ValueError(f"labels must have shape ({batch},), got {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got dtype {y.dtype}")


def _check_classes(num_classes: int) -> None:
    """Raise ValueError unless there is at least one class."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")


def label_embedding_dim(latent_dim: int) -> int:
    """Default size of the label embedding concatenated to z: min(latent_dim, 50)."""
    return min(latent_dim, MAX_LABEL_EMBEDDING)


class _ConditionalBatchNorm(nn.Module):
    """Batch norm without affine, then gamma[y] * x_hat + beta[y] per channel (gamma=1, beta=0 at init)."""

    def __init__(self, norm: nn.Module, num_features: int, num_classes: int) -> None:
        super().__init__()
        _check_classes(num_classes)
        self.num_features = num_features
        self.num_classes = num_classes
        self.norm = norm
        self.gamma = nn.Embedding(num_classes, num_features)
        self.beta = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Normalised x scaled and shifted by the parameters of each sample's class."""
        _check_labels(y, x.shape[0])
        shape = (x.shape[0], self.num_features) + (1,) * (x.dim() - 2)
        return self.gamma(y).view(shape) * self.norm(x) + self.beta(y).view(shape)


class ConditionalBatchNorm2d(_ConditionalBatchNorm):
    """Conditional batch norm for feature maps (B, C, H, W); one class equals nn.BatchNorm2d at init."""

    def __init__(self, num_features: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False),
                         num_features, num_classes)


class ConditionalBatchNorm1d(_ConditionalBatchNorm):
    """Conditional batch norm for features (B, C) or (B, C, L); one class equals nn.BatchNorm1d at init."""

    def __init__(self, num_features: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(nn.BatchNorm1d(num_features, eps=eps, momentum=momentum, affine=False),
                         num_features, num_classes)


class ProjectionHead(nn.Module):
    """Projection D output: logit = psi(phi) + <embed(y), phi> for features phi (B, F) (Miyato & Koyama 2018)."""

    def __init__(self, features: int, num_classes: int, sn: bool = False) -> None:
        super().__init__()
        _check_classes(num_classes)
        kind = "spectral" if sn else "none"
        self.psi = weight_layer(kind, nn.Linear(features, 1))
        embed = nn.Embedding(num_classes, features)
        nn.init.xavier_uniform_(embed.weight)  # N(0,1) would make <embed, phi> grow with sqrt(F)
        self.embed = weight_layer(kind, embed)

    def forward(self, phi: Tensor, y: Tensor) -> Tensor:
        """Logits of shape (B,)."""
        _check_labels(y, phi.shape[0])
        return self.psi(phi).squeeze(1) + (self.embed(y) * phi).sum(dim=1)


class ACGANHead(nn.Module):
    """Auxiliary-classifier D output: (real/fake logit (B,), class logits (B, K)) from features (B, F)."""

    def __init__(self, features: int, num_classes: int, sn: bool = False) -> None:
        super().__init__()
        _check_classes(num_classes)
        kind = "spectral" if sn else "none"
        self.adversarial = weight_layer(kind, nn.Linear(features, 1))
        self.classifier = weight_layer(kind, nn.Linear(features, num_classes))

    def forward(self, phi: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (B,), class_logits (B, K))."""
        return self.adversarial(phi).squeeze(1), self.classifier(phi)


def acgan_class_loss(class_logits: Tensor, y: Tensor) -> Tensor:
    """AC-GAN class loss: mean_i -log softmax(class_logits_i)[y_i] (cross entropy)."""
    _check_labels(y, class_logits.shape[0])
    return F.cross_entropy(class_logits.float(), y.long())


class ConditionalDiscriminator(nn.Module):
    """phi = features(x) flattened to (B, feature_dim), then a projection or AC-GAN head."""

    def __init__(self, features_net: nn.Module, feature_dim: int, num_classes: int, mode: str = "projection",
                 sn: bool = False) -> None:
        super().__init__()
        if mode not in CONDITIONAL_MODES:
            raise ValueError(f"unknown conditional mode {mode!r}; choose one of {', '.join(CONDITIONAL_MODES)}")
        self.mode = mode
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.features = features_net
        self.head: nn.Module = (ProjectionHead(feature_dim, num_classes, sn) if mode == "projection"
                                else ACGANHead(feature_dim, num_classes, sn))

    def phi(self, x: Tensor) -> Tensor:
        """D's feature vectors (B, feature_dim)."""
        phi = self.features(x).flatten(1)
        if phi.shape[1] != self.feature_dim:
            raise ValueError(f"features_net gives {phi.shape[1]} features per sample, expected {self.feature_dim}")
        return phi

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Real/fake logits (B,); projection needs labels y (B,), acgan ignores them."""
        if self.mode == "projection":
            if y is None:
                raise ValueError("a projection discriminator needs labels: call D(x, y)")
            return self.head(self.phi(x), y)
        return self.head(self.phi(x))[0]

    def forward_with_classes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (B,), class_logits (B, K)) in one pass; acgan mode only."""
        if self.mode != "acgan":
            raise ValueError(f"forward_with_classes needs mode 'acgan', this discriminator is {self.mode!r}")
        return self.head(self.phi(x))


def conditional_mlp_discriminator(shape: Sequence[int], hidden: Sequence[int], norm: str, num_classes: int,
                                  mode: str = "projection", slope: float = 0.2) -> ConditionalDiscriminator:
    """MLPDiscriminator's layers minus its last Linear as phi, plus a conditional head (SN if norm='spectral')."""
    body = MLPDiscriminator(shape, hidden, norm, slope)
    *layers, last = list(body.net)
    features = nn.Sequential(nn.Flatten(1), *layers)
    return ConditionalDiscriminator(features, last.in_features, num_classes, mode, sn=norm == "spectral")


def conditional_dcgan_discriminator(channels: int, side: int | Sequence[int], width: int, norm: str, num_classes: int,
                                    mode: str = "projection", slope: float = 0.2) -> ConditionalDiscriminator:
    """DCGANDiscriminator's conv features, flattened, as phi, plus a conditional head (SN when norm='spectral')."""
    body = DCGANDiscriminator(channels, side, width, norm, slope)
    features = nn.Sequential(body.features, nn.Flatten(1))
    return ConditionalDiscriminator(features, body.head.in_features, num_classes, mode, sn=norm == "spectral")


class ConditionalMLPGenerator(nn.Module):
    """MLPGenerator fed [z, embed(y)]; embed_dim defaults to min(latent_dim, 50)."""

    def __init__(self, latent_dim: int, shape: Sequence[int], hidden: Sequence[int], norm: str, num_classes: int,
                 tanh: bool = True, embed_dim: int | None = None) -> None:
        super().__init__()
        _check_classes(num_classes)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.out_shape = tuple(shape)
        self.embed_dim = label_embedding_dim(latent_dim) if embed_dim is None else embed_dim
        self.embed = nn.Embedding(num_classes, self.embed_dim)
        self.body = MLPGenerator(latent_dim + self.embed_dim, shape, hidden, norm, tanh)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """Samples (B, *shape) of classes y (B,) from latent codes z (B, latent_dim)."""
        _check_labels(y, z.shape[0])
        return self.body(torch.cat([z, self.embed(y).to(z.dtype)], dim=1))


class ConditionalDCGANGenerator(nn.Module):
    """DCGANGenerator's layout with the label in two places: an embedding concatenated to z, and (norm 'batch')
    every batch norm conditional.

    Conditional batch norm alone starts identical for every class (gamma 1, beta 0) and Adam moves each
    class's gains by about one learning rate a step, so at TTUR's 1e-4 G ignores the label for thousands
    of steps (measured: 10 % class accuracy on digits after 2,000 steps, chance); the embedding gives G
    distinct inputs per class from the first step (93 % with it).
    """

    def __init__(self, latent_dim: int, channels: int, side: int | Sequence[int], width: int, norm: str,
                 num_classes: int, embed_dim: int | None = None) -> None:
        super().__init__()
        _check_classes(num_classes)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.conditional_norm = norm == "batch"
        self.embed_dim = label_embedding_dim(latent_dim) if embed_dim is None else embed_dim
        self.embed = nn.Embedding(num_classes, self.embed_dim)
        body = DCGANGenerator(latent_dim + self.embed_dim, channels, side, width, norm)
        self.base = body.base
        self.base_channels = body.base_channels
        self.project = body.project
        self.layers = nn.ModuleList(
            ConditionalBatchNorm2d(m.num_features, num_classes) if isinstance(m, nn.BatchNorm2d) else m
            for m in body.net
        )

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """Images (B, C, H, W) in [-1, 1] of classes y (B,)."""
        _check_labels(y, z.shape[0])
        h = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        h = self.project(h).view(z.shape[0], self.base_channels, *self.base)
        for layer in self.layers:
            h = layer(h, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h


def class_frequencies(labels: Tensor, num_classes: int) -> Tensor:
    """Empirical class distribution count_k / n as float64 (K,), summing to 1; labels must lie in 0..K-1."""
    _check_classes(num_classes)
    if labels.dim() != 1 or labels.numel() == 0:
        raise DataError(f"labels must be a non-empty 1-d tensor, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"labels must be integers, got dtype {labels.dtype}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DataError(f"labels span {low}..{high} but there are {num_classes} classes; "
                        f"labels must lie in 0..{num_classes - 1}")
    counts = torch.bincount(labels.long(), minlength=num_classes)
    return counts.to(torch.float64) / labels.numel()


def sample_labels(n: int, probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """n labels (int64) drawn with replacement from class probabilities (K,); balanced = torch.full((K,), 1/K)."""
    if n < 0:
        raise ValueError(f"cannot draw {n} labels")
    if probs.dim() != 1 or probs.numel() == 0:
        raise ValueError(f"class probabilities must be a non-empty 1-d tensor, got shape {tuple(probs.shape)}")
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=probs.device)
    return torch.multinomial(probs, n, replacement=True, generator=generator)


def _labelled_input_gradients(critic: LabelledCritic, x: Tensor, y: Tensor, scale: float | Tensor) -> Tensor:
    """Per-sample gradients of sum_i critic(x, y)_i w.r.t. x, flattened to (B, -1) (exact when D has no BN)."""
    x = x.detach().requires_grad_(True)
    out = critic(x, y)
    (grad,) = torch.autograd.grad(outputs=out.float().sum() * scale, inputs=x, create_graph=True)
    grad = grad.float() / scale
    return grad.reshape(grad.shape[0], -1)


def conditional_gradient_penalty(
    critic: LabelledCritic,
    real: Tensor,
    fake: Tensor,
    y: Tensor,
    alpha: Tensor | None = None,
    target: float = 1.0,
    generator: torch.Generator | None = None,
    scale: float | Tensor = 1.0,
) -> Tensor:
    """WGAN-GP mean_i (||grad_x D(x_hat_i, y_i)||_2 - target)^2; fake_i must be generated with label y_i."""
    if real.shape != fake.shape:
        raise ValueError(f"real and fake shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
    _check_labels(y, real.shape[0])
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    if alpha is None:
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype, generator=generator)
    elif alpha.numel() != real.shape[0]:
        raise ValueError(f"alpha needs one value per sample ({real.shape[0]}), got shape {tuple(alpha.shape)}")
    else:
        alpha = alpha.reshape(shape).to(device=real.device, dtype=real.dtype)
    x_hat = alpha * real.detach() + (1.0 - alpha) * fake.detach()
    norms = _labelled_input_gradients(critic, x_hat, y, scale).norm(2, dim=1)
    return (norms - target).pow(2).mean()


def conditional_r1(critic: LabelledCritic, real: Tensor, y: Tensor, scale: float | Tensor = 1.0) -> Tensor:
    """R1 penalty mean_i ||grad_x D(x_i, y_i)||_2^2 on real samples with their own labels."""
    _check_labels(y, real.shape[0])
    return _labelled_input_gradients(critic, real, y, scale).pow(2).sum(dim=1).mean()


def label_distribution(labels: Tensor, num_classes: int, balanced: bool) -> Tensor:
    """The class probabilities G's labels are drawn from: uniform when balanced, else the data's frequencies."""
    if balanced:
        return torch.full((num_classes,), 1.0 / num_classes)
    return class_frequencies(labels.cpu(), num_classes).float()


def run_label_distribution(model_cfg: ModelConfig, labels: Tensor | None, num_classes: int) -> Tensor | None:
    """The label distribution of a run's fakes (`model.label_sampling`), None for an unconditional run."""
    if not num_classes or labels is None:
        return None
    return label_distribution(labels, num_classes, model_cfg.label_sampling == "balanced")
