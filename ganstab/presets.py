"""Named recipes: each a partial config merged over the defaults (`ganstab presets` lists them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """A named partial config with a one-line description."""

    description: str
    values: dict = field(default_factory=dict)


_IMAGE_LOG = {"every": 50, "sample_every": 500, "checkpoint_every": 1000}
# R3GAN decays gamma and the lr and ramps beta2 over 20M images on CIFAR-10; a CPU budget of minutes sees well under
# 1M (images_seen counts the G step's real batch too with the relativistic loss), so the r3gan preset uses 500k
R3GAN_SCHEDULE_IMAGES = 500_000

PRESETS: dict[str, Preset] = {
    "blog": Preset(
        "The recipe as commonly published: BN MLPs, G lr 1e-3 / D lr 1e-4, labels 0.9/0.1 (two-sided, warns).",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "mlp", "latent_dim": 100, "hidden": [256, 512, 1024],
                      "g_norm": "batch", "d_norm": "batch"},
            "loss": {"kind": "nonsaturating", "real_label": 0.9, "fake_label": 0.1},
            "optim": {"g_lr": 1e-3, "d_lr": 1e-4, "g_betas": [0.5, 0.999], "d_betas": [0.5, 0.999]},
            "train": {"batch_size": 64, "n_critic": 1, "ema": 0.0, "steps": 5000},
            "log": _IMAGE_LOG,
        },
    ),
    "dcgan": Preset(
        "Radford et al. 2016: conv G/D, BN in both, nonsaturating loss, lr 2e-4 both, betas (0.5, 0.999).",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "dcgan", "latent_dim": 100, "g_norm": "batch", "d_norm": "batch"},
            "loss": {"kind": "nonsaturating"},
            "optim": {"g_lr": 2e-4, "d_lr": 2e-4, "g_betas": [0.5, 0.999], "d_betas": [0.5, 0.999]},
            "train": {"batch_size": 64, "n_critic": 1, "ema": 0.0, "steps": 5000},
            "log": _IMAGE_LOG,
        },
    ),
    "wgan-gp": Preset(
        "Gulrajani et al. 2017: Wasserstein loss, gradient penalty 10, n_critic 5, lr 1e-4, betas (0, 0.9), layer norm in D.",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "dcgan", "latent_dim": 100, "g_norm": "batch", "d_norm": "layer"},
            "loss": {"kind": "wasserstein"},
            "penalty": {"gp": 10.0, "gp_target": 1.0},
            "optim": {"g_lr": 1e-4, "d_lr": 1e-4, "g_betas": [0.0, 0.9], "d_betas": [0.0, 0.9]},
            "train": {"batch_size": 64, "n_critic": 5, "ema": 0.0, "steps": 5000},
            "log": _IMAGE_LOG,
        },
    ),
    "wgan-clip": Preset(
        "Arjovsky et al. 2017: Wasserstein loss, weight clipping 0.01, n_critic 5, RMSProp lr 5e-5.",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "dcgan", "latent_dim": 100, "g_norm": "batch", "d_norm": "none"},
            "loss": {"kind": "wasserstein"},
            "penalty": {"clip": 0.01},
            "optim": {"name": "rmsprop", "g_lr": 5e-5, "d_lr": 5e-5},
            "train": {"batch_size": 64, "n_critic": 5, "ema": 0.0, "steps": 5000},
            "log": _IMAGE_LOG,
        },
    ),
    "lsgan": Preset(
        "Mao et al. 2017: least-squares loss (a=0, b=c=1), BN in G and D, lr 2e-4, betas (0.5, 0.999).",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "dcgan", "latent_dim": 100, "g_norm": "batch", "d_norm": "batch"},
            "loss": {"kind": "lsgan"},
            "optim": {"g_lr": 2e-4, "d_lr": 2e-4, "g_betas": [0.5, 0.999], "d_betas": [0.5, 0.999]},
            "train": {"batch_size": 64, "n_critic": 1, "ema": 0.0, "steps": 5000},
            "log": _IMAGE_LOG,
        },
    ),
    "hinge-sn": Preset(
        "Miyato et al. 2018 / SAGAN: hinge loss, spectral norm in D, TTUR D 4e-4 / G 1e-4, betas (0, 0.9).",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "dcgan", "latent_dim": 100, "g_norm": "batch", "d_norm": "spectral"},
            "loss": {"kind": "hinge"},
            "optim": {"g_lr": 1e-4, "d_lr": 4e-4, "g_betas": [0.0, 0.9], "d_betas": [0.0, 0.9]},
            "train": {"batch_size": 64, "n_critic": 1, "ema": 10000.0, "steps": 5000},
            "log": _IMAGE_LOG,
        },
    ),
    "small-data": Preset(
        "Best of benchmarks/small_data.py (Fashion-MNIST, 2,000 images, 600 s): DCGAN width 32, hinge, spectral norm "
        "in D, lr 2e-4 both, betas (0, 0.9), EMA; no augmentation (its D did not overfit there; the doctor says when "
        "to add augment.policy with augment.ada_target).",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "dcgan", "latent_dim": 100, "width": 32, "g_norm": "batch", "d_norm": "spectral"},
            "loss": {"kind": "hinge"},
            "optim": {"g_lr": 2e-4, "d_lr": 2e-4, "g_betas": [0.0, 0.9], "d_betas": [0.0, 0.9]},
            "train": {"batch_size": 64, "n_critic": 1, "ema": 10000.0, "steps": 10000},
            "log": _IMAGE_LOG,
        },
    ),
    "fashion-10min": Preset(
        "Winner of the evaluator-v2 Fashion-MNIST study (ganstab tune, 45 min, 60 s trials; benchmarks/HISTORY.md), "
        "trained for "
        "600 s: MLP G/D, BN in G, no D norm, nonsaturating + R1 10, G lr 7.2e-3 / D lr 1.3e-3, betas (0, 0.9), "
        "n_critic 3.",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "mlp", "latent_dim": 64, "g_norm": "batch", "d_norm": "none"},
            "loss": {"kind": "nonsaturating"},
            "penalty": {"r1": 10.0},
            "optim": {"g_lr": 0.007204504178057644, "d_lr": 0.001338153544201111, "g_betas": [0.0, 0.9],
                      "d_betas": [0.0, 0.9]},
            "train": {"batch_size": 64, "n_critic": 3, "ema": 0.0, "steps": 1_000_000, "time_budget": 600.0},
            "log": _IMAGE_LOG,
        },
    ),
    "progan": Preset(
        "Karras et al. 2018: progressive growing 4x4 -> full size, WGAN-GP + drift 0.001, lr 1e-3, betas (0, 0.99), "
        "pixel norm, minibatch stddev, equalised lr, EMA.",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "progressive", "latent_dim": 128, "width": 32, "g_norm": "none", "d_norm": "none"},
            "loss": {"kind": "wasserstein"},
            "penalty": {"gp": 10.0, "gp_target": 1.0, "drift": 0.001},
            "optim": {"g_lr": 1e-3, "d_lr": 1e-3, "g_betas": [0.0, 0.99], "d_betas": [0.0, 0.99]},
            "train": {"batch_size": 32, "n_critic": 1, "ema": 10000.0, "steps": 8000},
            "progressive": {"start": 4, "stable_images": 40000, "fade_images": 40000, "mbstd_group": 4,
                            "equalized_lr": True, "pixel_norm": True, "max_width": 128, "reset_optimizer": True},
            "log": _IMAGE_LOG,
        },
    ),
    "toy": Preset(
        "Plain nonsaturating GAN with small MLPs on 2-D points (grid25 by default; data.name=ring8 works too).",
        {
            "data": {"name": "grid25"},
            "model": {"arch": "toy", "latent_dim": 2, "width": 128, "depth": 3,
                      "g_norm": "none", "d_norm": "none"},
            "loss": {"kind": "nonsaturating"},
            "optim": {"g_lr": 1e-3, "d_lr": 1e-3, "g_betas": [0.5, 0.999], "d_betas": [0.5, 0.999]},
            "train": {"batch_size": 256, "n_critic": 1, "ema": 0.0, "steps": 3000},
            "log": {"every": 50, "sample_every": 500, "checkpoint_every": 1000, "n_samples": 512},
        },
    ),
    "r3gan": Preset(
        "R3GAN's recipe (Huang et al. 2024) on the DCGAN networks without normalisation: relativistic pairing loss + "
        "R1 + R2 (gamma 0.05 -> 0.005), lr 2e-4 -> 5e-5 and beta2 0.9 -> 0.99 over 500k images (cosine), EMA.",
        {
            "data": {"name": "fashion-mnist"},
            "model": {"arch": "dcgan", "latent_dim": 100, "width": 32, "g_norm": "none", "d_norm": "none"},
            "loss": {"kind": "relativistic"},
            "penalty": {"r1": 0.05, "r2": 0.05},
            "optim": {"g_lr": 2e-4, "d_lr": 2e-4, "g_betas": [0.0, 0.9], "d_betas": [0.0, 0.9]},
            "train": {"batch_size": 64, "n_critic": 1, "ema": 10000.0, "steps": 10000},
            "schedule": {name: {"key": key, "end": end, "images": R3GAN_SCHEDULE_IMAGES, "kind": "cosine"}
                         for name, key, end in (("gamma_r1", "penalty.r1", 0.005), ("gamma_r2", "penalty.r2", 0.005),
                                                ("lr_g", "optim.g_lr", 5e-5), ("lr_d", "optim.d_lr", 5e-5),
                                                ("beta2_g", "optim.g_beta2", 0.99),
                                                ("beta2_d", "optim.d_beta2", 0.99))},
            "log": _IMAGE_LOG,
        },
    ),
    "modes2d": Preset(
        "Best 2-D recipe (PacGAN protocol): toy MLPs, nonsaturating + R1 0.1, lr 1e-3, EMA 20k images, 10k steps (grid25; ring8 works too).",
        {
            "data": {"name": "grid25"},
            "model": {"arch": "toy", "latent_dim": 2, "width": 128, "depth": 3,
                      "g_norm": "none", "d_norm": "none"},
            "loss": {"kind": "nonsaturating"},
            "penalty": {"r1": 0.1},
            "optim": {"g_lr": 1e-3, "d_lr": 1e-3, "g_betas": [0.5, 0.999], "d_betas": [0.5, 0.999]},
            "train": {"batch_size": 256, "n_critic": 1, "ema": 20000.0, "steps": 10000},
            "log": {"every": 50, "sample_every": 2000, "checkpoint_every": 2000, "n_samples": 512},
            "eval": {"every": 1000, "final": True, "n": 2500},
        },
    ),
}
