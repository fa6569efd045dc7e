"""One validated config for every switch: YAML file, a preset and `key=value` overrides.

`load_config` merges defaults <- preset <- file <- overrides, validates types with pydantic and
the intrinsic cross-field rules with `check_rules`, and raises `ConfigError` with one line naming
the problem and the fix. Checks that need the data and model registries (a known `data.name`,
an architecture that fits the data) live below, in `ganstab.pipeline.check_config`.
"""

from __future__ import annotations

import difflib
import math
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Optional, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ganstab.errors import ConfigError
from ganstab.presets import PRESETS

__all__ = ["Config", "ConfigError", "DataConfig", "ModelConfig", "LossConfig", "PenaltyConfig", "OptimConfig",
           "TrainConfig", "AugmentConfig", "LogConfig", "EvalConfig", "ProgressiveConfig", "DoctorConfig", "NORMS", "SAFE_TO_CHANGE",
           "known_keys", "parse_override", "nest", "deep_merge", "read_yaml", "validate", "check_rules",
           "smoothing_warnings", "merge_sources", "load_config", "default_out", "to_dict", "dump_yaml",
           "config_diff", "is_safe_change", "unsafe_changes", "keys_added_at_default", "check_conditional", "CONDITIONAL_ARCHS", "KEY_HELP",
           "KEY_APPLIES", "key_help", "ScheduleEntry", "SCHEDULABLE", "configured_value", "check_schedules",
           "check_fine_tuning", "check_penalties", "MAX_IMAGE_SIDE", "image_hw", "parse_image_size",
           "MAX_CONFIG_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_VALUES"]

NORMS = ("batch", "instance", "layer", "spectral", "none")
Norm = Literal["batch", "instance", "layer", "spectral", "none"]


MAX_CONFIG_BYTES = 1_000_000  # the most bytes of YAML read from one config file or override (a config is a few kB)
MAX_YAML_DEPTH = 100  # the deepest nesting read (a config nests 2 levels; Python's recursion limit is near 1,000)
MAX_YAML_VALUES = 100_000  # the most values one document may expand to, aliases counted as often as they are used


class _TooLarge(yaml.YAMLError):
    """A YAML document beyond what ganstab reads: nested too deep, expanding to too many values, or self-referring."""

    def __init__(self, problem: str, fix: str, line: int) -> None:
        super().__init__(f"{problem} (line {line}); {fix}")
        self.problem, self.fix, self.line = problem, fix, line


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads plain scalars such as 1e-4 as floats (YAML 1.2), not quoted ones.

    It refuses, as `_TooLarge`, a document nested deeper than MAX_YAML_DEPTH (which would end in a
    RecursionError) or expanding to more than MAX_YAML_VALUES values (an alias bomb, "billion laughs").
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.depth = 0
        self.sizes: dict[int, int] = {}  # id(node) -> values it expands to, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose one node, counting the nesting depth and the values it expands to."""
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)  # the anchored node itself, counted where it is used
            if id(node) not in self.sizes:
                raise _TooLarge("holds an alias inside its own anchor (a value that contains itself)",
                                "remove the alias or write the value out", line)
            return node
        if self.depth >= MAX_YAML_DEPTH:
            raise _TooLarge(f"nests values more than {MAX_YAML_DEPTH} levels deep",
                            "a config is a mapping of sections of plain values, so remove the nesting", line)
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else [])
        size = 1 + sum(self.sizes[id(child)] for child in children)
        if size > MAX_YAML_VALUES:
            raise _TooLarge(f"expands to more than {MAX_YAML_VALUES:,} values",
                            "a config holds a few hundred, so remove aliases repeated inside aliases (*name) or the "
                            "long lists", line)
        self.sizes[id(node)] = size
        return node


class _DuplicateKey(yaml.YAMLError):
    """A mapping of a YAML document names the same key twice (lines are 1-based)."""

    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(f"key {key!r} appears twice (lines {first} and {second})")
        self.key, self.first, self.second = key, first, second


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping like SafeLoader's, but a key given twice raises _DuplicateKey instead of keeping the last."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # SafeLoader reports unhashable keys itself
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _DuplicateKey(key, seen[key], line)
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              use_attribute_docstrings=True)


MAX_IMAGE_SIDE = 1024  # the largest image side data.image_size accepts
_HXW = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_image_size(value: Any) -> Union[int, list[int], None]:
    """data.image_size as given (N, [H, W] or "HxW") -> N for a square, [H, W] (PyTorch order) otherwise.

    Raises ValueError with the one-line message for anything else."""
    key = "config key 'data.image_size'"
    if value is None:
        return None
    if isinstance(value, str) and _HXW.match(value):
        value = [int(part) for part in _HXW.match(value).groups()]
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{key} must be one side N or two sides [H, W] (or \"HxW\"), got {value!r}")
        for side in value:
            parse_image_size(side)
        return value[0] if value[0] == value[1] else [value[0], value[1]]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be one side N or two sides [H, W] (or \"HxW\"), got {value!r}")
    if value <= 0:
        raise ValueError(f"{key}: Input should be greater than 0, got {value!r}")
    if value > MAX_IMAGE_SIDE:
        raise ValueError(f"{key}: Input should be less than or equal to {MAX_IMAGE_SIDE}, got {value!r}")
    return value


def image_hw(image_size: Union[int, Sequence[int], None]) -> Optional[tuple[int, int]]:
    """(H, W) of a side N (-> (N, N)) or an (H, W) pair, e.g. a validated data.image_size; None for None."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    return (int(image_size[0]), int(image_size[1]))


class DataConfig(_Section):
    """Which dataset and where its files are (`data.*`)."""

    name: str = "digits"
    """dataset: ring8, grid25, digits, fashion-mnist, stacked-fashion-mnist, mnist, idx, folder or npz"""
    path: Optional[str] = None
    """folder or file of the data (mnist/idx/folder/npz, a StyleGAN .zip; (stacked-)fashion-mnist's IDX folder)"""
    image_size: Union[int, list[int], None] = None  # N (square) or [H, W]; "HxW" is read as [H, W]
    ("resize images to this size: N (square N x N) or [H, W] / \"HxW\" (height first, as in PyTorch's (C, H, W)); "
     "images only; default: the data's own size")
    channels: Optional[Literal[1, 3]] = None
    """force 1 (grey) or 3 (RGB) channels when reading an image folder (folder only)"""
    limit: Optional[int] = Field(default=None, gt=0)  # stacked-fashion-mnist: stacked training images drawn
    ("use only the first N training samples (held data); stacked-fashion-mnist: draw N stacked training images "
     "(default 60,000)")
    stream: bool = False  # folder only: read images on demand (DataLoader + DistributedSampler)
    """read folder images on demand instead of holding them in memory (folder only)"""
    workers: int = Field(default=0, ge=0, le=64)  # DataLoader worker processes when streaming
    """DataLoader worker processes when streaming (data.stream only)"""

    @field_validator("image_size", mode="before")
    @classmethod
    def _image_size(cls, value: Any) -> Union[int, list[int], None]:
        """N, [H, W] or "HxW" with sides in 1..1024; equal sides become N."""
        return parse_image_size(value)


class ModelConfig(_Section):
    """Architecture, latent size and the normalisation of G and D (`model.*`)."""

    arch: str = "mlp"
    """architecture: mlp, dcgan, toy, resnet or progressive"""
    latent_dim: int = Field(default=64, gt=0, le=4096)
    """size of G's latent vector z"""
    g_norm: Norm = "batch"
    """normalisation in G: batch, instance, layer, spectral or none"""
    d_norm: Norm = "spectral"
    """normalisation in D: batch, instance, layer, spectral or none (no batch with gp/r1/r2)"""
    width: int = Field(default=64, gt=0, le=4096)
    """channel width (dcgan, progressive, resnet D; resnet G has twice as many) or layer width (toy)"""
    depth: int = Field(default=3, gt=0, le=16)
    """hidden layers of the toy MLPs"""
    hidden: Optional[list[int]] = None  # mlp: G's layer widths, D reversed (default 256-256); toy: width x depth
    """G's hidden layer widths, D's reversed (mlp default 256-256; toy: replaces width x depth)"""
    pack: int = Field(default=1, ge=1, le=1024)  # PacGAN: D sees this many samples concatenated
    """PacGAN: D sees this many samples concatenated"""
    conditional: bool = False  # class-conditional G (conditional BN / label embedding) and D (projection or AC-GAN)
    """class-conditional G and D (labels from the data; sample with --class K)"""
    d_condition: Literal["projection", "acgan"] = "projection"  # how D uses the label (Miyato & Koyama 2018 / AC-GAN)
    """how a conditional D uses the label: projection (Miyato & Koyama 2018) or acgan"""
    label_sampling: Literal["frequency", "balanced"] = "frequency"  # labels of G's fakes: data frequencies or uniform
    """labels of G's fakes: the data's class frequencies, or balanced (uniform)"""
    freeze_d: int = Field(default=0, ge=0, le=1000)  # FreezeD: D's first K blocks keep train.init_from's weights
    ("FreezeD (Mo et al. 2020): D's first K blocks (weight layers with their norms; a residual block or a "
     "conditional head counts as one) keep train.init_from's weights")


class LossConfig(_Section):
    """The GAN loss and D's label targets (`loss.*`)."""

    kind: Literal["minimax", "nonsaturating", "wasserstein", "lsgan", "hinge", "relativistic",
                  "relativistic_average"] = "hinge"
    ("GAN loss: minimax, nonsaturating, wasserstein, lsgan, hinge, relativistic (RpGAN: pairs softplus(D(fake) - "
     "D(real))) or relativistic_average (RaGAN)")
    acgan_weight: float = Field(default=1.0, ge=0.0)  # model.d_condition=acgan: weight of the class cross-entropy
    """weight of the AC-GAN class cross-entropy (model.d_condition=acgan)"""
    real_label: float = Field(default=1.0, ge=0.0, le=1.0)
    """D's target for real samples (one-sided smoothing: 0.9; minimax/nonsaturating/lsgan)"""
    fake_label: float = Field(default=0.0, ge=0.0, le=1.0)
    """D's target for fakes (keep 0: smoothing it is discouraged; minimax/nonsaturating/lsgan)"""


class PenaltyConfig(_Section):
    """Regularisers of D: gradient penalty, R1, R2, LeCam, weight clipping, drift (`penalty.*`)."""

    gp: float = Field(default=0.0, ge=0.0)
    """WGAN-GP gradient penalty weight (per-sample, on interpolates; 0 = off)"""
    gp_target: float = Field(default=1.0, gt=0.0)
    """gradient norm the penalty pulls toward (1 for WGAN-GP)"""
    r1: float = Field(default=0.0, ge=0.0)
    """R1 penalty weight gamma on real samples (0 = off)"""
    r1_every: int = Field(default=1, ge=1, le=1000)  # lazy R1 (StyleGAN2): every k D steps with weight x k
    """lazy R1 (StyleGAN2): R1 every k D steps with its weight times k"""
    clip: float = Field(default=0.0, ge=0.0)
    """clip D's weights to [-c, c] after every D step (original WGAN; 0 = off)"""
    drift: float = Field(default=0.0, ge=0.0)
    """drift term weight on D(real)^2 (progressive GAN uses 0.001; 0 = off)"""
    r2: float = Field(default=0.0, ge=0.0)  # R2 (R1 on fakes, detached from G), weighted gamma / 2 like R1
    """R2 penalty weight gamma on generated samples (R1 on fakes, detached from G; weighted gamma/2; 0 = off)"""
    r2_every: int = Field(default=1, ge=1, le=1000)  # lazy R2: every k D steps with weight x k (own interval)
    """lazy R2: R2 every k D steps with its weight times k (its own interval, apart from R1's)"""
    lecam: float = Field(default=0.0, ge=0.0)  # LeCam (Tseng et al. 2021) weight lambda; 0 = off
    """LeCam weight lambda (Tseng et al. 2021): D's logits pulled toward EMAs of the other side's mean (0 = off)"""
    lecam_decay: float = Field(default=0.99, ge=0.0, lt=1.0)  # decay of the EMAs of D's mean real/fake logits
    """decay of LeCam's EMAs of D's mean real and fake logits (0.99 as in the paper)"""
    bcr_real: float = Field(default=0.0, ge=0.0)  # bCR (Zhao et al. 2020): weight of (D(x) - D(T(x)))^2 on reals
    """bCR (Zhao et al. 2020) on reals: weight of mean (D(x) - D(T(x)))^2 (paper: 10; 0 = off)"""
    bcr_fake: float = Field(default=0.0, ge=0.0)  # bCR: the same on fakes
    """bCR on fakes: weight of mean (D(G(z)) - D(T(G(z))))^2 (paper: 10; 0 = off)"""
    cr_policy: str = "translation"  # bCR's transforms T (DiffAugment names), applied on top of augment.policy
    """bCR's transforms T: color, translation, cutout (applied after augment.policy, p = 1)"""
    zcr: float = Field(default=0.0, ge=0.0)  # zCR: D's weight of (D(G(z)) - D(G(z + eps)))^2
    """zCR (Zhao et al. 2020) for D: weight of mean (D(G(z)) - D(G(z + eps)))^2 (paper: 5; 0 = off)"""
    zcr_gen: float = Field(default=0.0, ge=0.0)  # zCR: G's weight of the diversity term -(G(z) - G(z + eps))^2
    """zCR for G: weight of the diversity term -mean (G(z) - G(z + eps))^2 (paper: 0.5; 0 = off)"""
    zcr_sigma: float = Field(default=0.03, gt=0.0, le=10.0)  # zCR: std of the latent perturbation eps
    """zCR: standard deviation of the latent perturbation eps ~ N(0, sigma^2) (paper: 0.03)"""


class AugmentConfig(_Section):
    """Differentiable augmentation of everything D sees, fixed or adaptive (`augment.*`)."""

    policy: str = ""  # comma-separated: color, translation, cutout (DiffAugment); empty = off
    """differentiable augmentations of every image D sees: color, translation, cutout (DiffAugment)"""
    p: float = Field(default=1.0, ge=0.0, le=1.0)  # probability per sample and transform when ADA is off
    """probability per sample and transform when ADA is off"""
    ada_target: float = Field(default=0.0, ge=0.0, le=1.0)  # > 0: ADA moves p so that E[sign(D(real))] -> target
    """ADA: move p so that E[sign(D(real))] approaches this (0.6; 0 = off)"""
    ada_interval: int = Field(default=256, ge=1)  # real images between ADA updates of p
    """ADA: real images between updates of p"""
    ada_speed_images: int = Field(default=500_000, ge=1)  # real images for p to move from 0 to 1
    """ADA: real images for p to move from 0 to 1"""


class OptimConfig(_Section):
    """One optimiser per network with its own lr and betas (`optim.*`)."""

    name: Literal["adam", "rmsprop"] = "adam"
    """optimiser of both networks: adam or rmsprop"""
    g_lr: float = Field(default=1e-4, gt=0.0, le=10.0)
    """G's learning rate"""
    d_lr: float = Field(default=4e-4, gt=0.0, le=10.0)
    """D's learning rate (TTUR: usually larger than G's)"""
    g_betas: tuple[float, float] = (0.0, 0.9)
    """G's Adam betas (beta1, beta2) (adam only)"""
    d_betas: tuple[float, float] = (0.0, 0.9)
    """D's Adam betas (beta1, beta2) (adam only)"""


class ScheduleEntry(_Section):
    """One `schedule.<name>` entry: `key` moves from its configured value to `end` over `images` real images."""

    key: str
    end: float
    images: int = Field(gt=0)
    kind: Literal["linear", "cosine"] = "cosine"


# config keys a schedule may move -> (lowest, highest, lowest excluded, highest excluded); optim.*_beta2 is
# the second of optim.*_betas
SCHEDULABLE: dict[str, tuple[float, float, bool, bool]] = {
    "optim.g_lr": (0.0, 10.0, True, False),
    "optim.d_lr": (0.0, 10.0, True, False),
    "optim.g_beta2": (0.0, 1.0, False, True),
    "optim.d_beta2": (0.0, 1.0, False, True),
    "penalty.r1": (0.0, math.inf, False, True),
    "penalty.gp": (0.0, math.inf, False, True),
    "penalty.drift": (0.0, math.inf, False, True),
    "penalty.bcr_real": (0.0, math.inf, False, True),
    "penalty.bcr_fake": (0.0, math.inf, False, True),
    "penalty.zcr": (0.0, math.inf, False, True),
    "penalty.zcr_gen": (0.0, math.inf, False, True),
    "penalty.r2": (0.0, math.inf, False, True),
    "penalty.lecam": (0.0, math.inf, False, True),
}


class TrainConfig(_Section):
    """Steps, batch, n_critic, EMA, device, precision, recovery and resume (`train.*`)."""

    steps: int = Field(default=3000, gt=0)
    """G steps to train"""
    batch_size: int = Field(default=64, gt=0, le=65536)
    """samples per batch (per process under torchrun)"""
    n_critic: int = Field(default=1, ge=1, le=100)
    """D steps per G step, each with a fresh real batch"""
    ema: float = Field(default=10000.0, ge=0.0)
    """half-life in images of the EMA copy of G used for samples and export (0 = off)"""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps"""
    threads: int = Field(default=0, ge=0, le=1024)
    """torch CPU threads (0 = torch's default)"""
    recover: bool = True
    """roll back to the newest checkpoint and lower the lrs after a divergence"""
    max_recoveries: int = Field(default=3, ge=0, le=100)
    """most automatic roll-backs before the run stops"""
    recover_lr_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    """factor applied to both lrs at each roll-back"""
    deterministic: bool = False
    """torch deterministic algorithms (slower; bit-identical reruns on GPU)"""
    resume: Literal["never", "auto"] = "never"
    """never, or auto: continue from the newest checkpoint in `out` when there is one"""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """fp32, bf16, or fp16 (CUDA only, with one GradScaler per network)"""
    compile: bool = False
    """torch.compile G and D where supported"""
    time_budget: float = Field(default=0.0, ge=0.0)  # seconds of training; 0 = until train.steps
    """stop after this many seconds of training (0 = run until train.steps)"""
    reuse_fakes: bool = True  # n_critic=1: the G step reuses the D step's fakes (one G forward per step)
    """with n_critic=1 the G step reuses the D step's fakes (one G forward per step)"""
    sync_bn: bool = False
    """SyncBatchNorm across processes under torchrun"""
    init_from: Optional[str] = None  # fine-tuning: start G (and D, G's EMA) from a run folder, checkpoint or export
    ("fine-tune: start G (and D and G's EMA, from a checkpoint) from a run folder (its newest valid checkpoint, "
     "else its export), a checkpoint .pt or a generator.safetensors")


class LogConfig(_Section):
    """Logging, sample and checkpoint intervals (`log.*`)."""

    every: int = Field(default=50, gt=0)
    """G steps between metrics.jsonl lines"""
    sample_every: int = Field(default=500, gt=0)
    """G steps between sample grids"""
    checkpoint_every: int = Field(default=500, gt=0)
    """G steps between checkpoints"""
    keep_checkpoints: int = Field(default=3, ge=1, le=1000)
    """newest checkpoints kept"""
    n_samples: int = Field(default=64, gt=0, le=1024)
    """samples in each grid (fixed latents)"""
    progress: bool = True
    """show progress: a bar in a terminal, plain lines in a log file"""
    progress_seconds: float = Field(default=30.0, gt=0)
    """seconds between plain progress lines when there is no terminal"""
    tensorboard: bool = False
    """also write TensorBoard events to RUN/tensorboard (needs pip install 'ganstab[tensorboard]')"""


class EvalConfig(_Section):
    """Evaluation during and after training (`eval.*`)."""

    every: Union[int, str] = "auto"  # G steps between evaluations (0: only the final one); auto: scheduled by cost
    ("G steps between evaluations during training (0 = only the final one); auto: scheduled by cost, on log steps, "
     "so that evaluations take at most eval.budget of the training time")
    budget: float = Field(default=0.05, gt=0.0, le=1.0)  # every=auto: evaluation time at most this fraction of training
    """eval.every=auto: the largest fraction of training time that evaluations may take (0.05)"""

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        """A number of G steps >= 0, or 'auto'."""
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError(f"config key 'eval.every' must be auto or a number of G steps >= 0, got {value!r}")
    final: bool = True
    """evaluate the final generator"""
    n: int = Field(default=2500, gt=1, le=200000)
    ("generated samples per evaluation (at most 200,000) and the size of the test reference (at most the real "
     "images left beside the validation reference)")
    val_n: Optional[int] = Field(default=None, gt=1, le=200000)  # validation reference size (None: as eval.n)
    ("real images in the validation reference that evaluations during training, best/, recovery, the doctor and "
     "tune score against (default: as eval.n; at most half the reference pool)")
    cache_dir: Optional[str] = None
    """folder for the evaluator network's cache (default: a per-user cache folder)"""
    evaluator: Literal["auto", "shipped", "train"] = "auto"  # the evaluator network: shipped with ganstab or trained
    ("the evaluator network: auto = the one shipped with ganstab for digits and Fashion-MNIST when the data match it "
     "(no training; evaluator_epochs/evaluator_images unused), else trained on first use and cached; shipped = the "
     "shipped one or an error; train = always trained on first use with evaluator_epochs/evaluator_images")
    evaluator_epochs: int = Field(default=3, gt=0, le=100)
    """epochs to train the evaluator network on the real images (images only; not for a shipped one)"""
    evaluator_images: Optional[int] = Field(default=20000, ge=1000)  # most images shown to the evaluator (None: all)
    ("most images shown to the evaluator network in training (epochs x images; a seeded subset above it; null: "
     "every image every epoch); keeps its one-time cost small")
    features: Literal["ganstab", "inception"] = "ganstab"  # feature network of the test line and `ganstab eval`
    ("feature network of the final test evaluation and of ganstab eval: ganstab (its own evaluator network) or "
     "inception (torch-fidelity's InceptionV3: FID, KID, IS and precision/recall in the field's units; needs "
     "eval.inception_weights); evaluations during training keep ganstab's evaluator")
    inception_weights: Optional[str] = None  # the InceptionV3 weights file (None: $GANSTAB_INCEPTION_WEIGHTS)
    ("eval.features=inception: path of torch-fidelity's InceptionV3 weights file "
     "(weights-inception-2015-12-05-6726825d.pth; default $GANSTAB_INCEPTION_WEIGHTS); ganstab never downloads")


class ProgressiveConfig(_Section):
    """Progressive growing's schedule and stabilisers (`progressive.*`)."""

    start: int = Field(default=4, ge=4, le=1024)
    """first resolution (a power of two)"""
    stable_images: int = Field(default=20000, ge=0)
    """real images shown at each resolution before the next fade-in"""
    fade_images: int = Field(default=20000, ge=0)
    """real images over which a new resolution fades in"""
    increase_every: Optional[float] = Field(default=None, gt=0.0)
    """epochs per resolution (sets stable and fade images; overrides them)"""
    mbstd_group: int = Field(default=4, ge=0, le=64)
    """minibatch stddev group size (must divide train.batch_size; 0 = off)"""
    equalized_lr: bool = True
    """equalised learning rate (weights scaled at run time)"""
    pixel_norm: bool = True
    """pixel normalisation in G"""
    max_width: int = Field(default=256, gt=0, le=4096)
    """most channels of any block"""
    reset_optimizer: bool = True
    """reset Adam's state when a resolution is added"""
    grow: bool = True  # false: the same networks trained at full size from the start (for comparisons)
    """false: train the full-size networks from the start (for comparisons)"""


# former doctor windows counted training records; a config naming one is read as count x the
# default log.every (50) G steps under the new name
LEGACY_LOG_EVERY = 50
LEGACY_DOCTOR_WINDOWS: dict[str, str] = {
    "explosion_window": "explosion_window_steps", "explosion_min_history": "explosion_min_history_steps",
    "explosion_patience": "explosion_patience_steps", "drift_window": "drift_window_steps",
    "d_acc_window": "d_acc_window_steps", "vanish_early_records": "vanish_early_steps",
    "vanish_patience": "vanish_patience_steps", "osc_window": "osc_window_steps",
    "osc_patience": "osc_patience_steps", "rearm_records": "rearm_steps",
}


class DoctorConfig(_Section):
    """Thresholds and windows of the stability doctor (`doctor.*`); each default is a conservative start.

    Windows over training lines are spans of G steps (names end in `_steps`), so a run is
    diagnosed alike whatever its `log.every`; the span of consecutive records is last step -
    first step + the log interval, and a statistic that needs several points also asks for a
    minimum number of records (`*_min_records`). Each default is the former record count x 50,
    the default `log.every`. Windows over evaluation lines count evaluations.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True, frozen=False,
                              use_attribute_docstrings=True)

    # --- divergence -----------------------------------------------------------------------
    nonfinite_keys: tuple[str, ...] = (
        "loss_d", "loss_g", "grad_norm_d", "grad_norm_g", "d_real", "d_fake", "gp", "r1", "drift", "r2", "lecam",
    )
    """training keys whose NaN/Inf (listed in `nonfinite`, or logged as null) is a divergence"""
    explosion_keys: tuple[str, ...] = ("loss_d", "loss_g", "grad_norm_d", "grad_norm_g")
    """training keys watched for explosions relative to their running median"""
    explosion_factor: float = 10.0
    """|value - running median| must exceed this many times the series' scale to count as exploding"""
    explosion_scale_floor: float = 1.0
    ("floor of that scale, in the series' units: the scale is max(|median|, IQR / 2, this), so a loss swinging near "
     "zero (loss_d 0.04 -> 2) is not a divergence while one reaching 1e3 still is (every ganstab loss kind lives on "
     "an O(1) scale; grad norms too in a healthy run)")
    explosion_window_steps: int = 2500
    """G steps of earlier non-exploding records in the running median"""
    explosion_min_history_steps: int = 500
    """G steps of history needed before the explosion check starts"""
    explosion_min_records: int = 5
    """and at least this many records in that history (a median of fewer is noise)"""
    explosion_patience_steps: int = 100
    """G steps the explosion must last for a finding"""
    explosion_patience_records: int = 2
    """and at least this many exploding records (a single spike never fires)"""
    drift_threshold: float = 100.0
    """|d_real| and |d_fake| must both exceed this for critic drift (Wasserstein-like losses)"""
    drift_window_steps: int = 1000
    """trailing G steps over which the growth of |d_real| and |d_fake| is judged"""
    drift_min_records: int = 5
    """records the drift window must hold (a fraction of increases needs a few)"""
    drift_monotone_frac: float = 0.8
    """fraction of record-to-record increases of |d_real| and |d_fake| that counts as monotone"""

    # --- discriminator overpowering ----------------------------------------------------------
    # D accuracy at or above this is "D wins"
    d_acc_threshold: float = 0.99
    """D accuracy at or above this is 'D wins'"""
    d_acc_window_steps: int = 1000
    """G steps of consecutive training records of D winning needed for a finding"""
    d_acc_min_records: int = 3
    """and at least this many records"""
    vanish_factor: float = 10.0
    """grad_norm_g below early median / this factor counts as vanishing"""
    vanish_early_steps: int = 1000
    """first G steps of records with a finite grad_norm_g whose median is the reference"""
    vanish_min_records: int = 3
    """records that reference median needs"""
    vanish_d_acc: float = 0.95
    """D accuracy at or above this is required alongside the collapsed G gradient"""
    vanish_patience_steps: int = 250
    """G steps of consecutive records with a vanished G gradient needed for a finding"""

    # --- discriminator overfitting (Karras et al. 2020) ---------------------------------------
    # r_t = E[sign(D(real))] (logged as d_real_sign) at or above this is D memorising the reals
    overfit_rt: float = 0.9
    """r_t = E[sign(D(real))] (d_real_sign) at or above this is D memorising the training images"""
    # G steps of consecutive records of that needed for a finding
    overfit_window_steps: int = 2000
    """G steps of consecutive records with r_t that high needed for a D-overfitting finding"""
    overfit_min_records: int = 3
    """and at least this many records"""
    # an adaptive augment_p below this can still rise, so ADA is handling the overfitting
    overfit_p_max: float = 0.99
    """with ADA, no finding while augment_p is below this (ADA can still raise it)"""

    # --- dead training ------------------------------------------------------------------------
    dead_grad_norm: float = 1e-8
    """a grad_norm_g or grad_norm_d below this is numerically zero"""
    dead_window_steps: int = 500
    ("a window of this many G steps is dead when at least dead_fraction of its records show a zero gradient or both "
     "losses exactly equal to the previous record's: an error")
    dead_fraction: float = 0.5
    """fraction of a dead window's records that show a zero gradient or constant losses"""
    dead_min_records: int = 3
    """records a dead window must hold"""

    # --- mode collapse (evaluation lines) -------------------------------------------------------
    coverage_keys: tuple[str, ...] = ("eval_coverage", "eval_recall")
    """recall-like metrics whose fall from their best signals lost modes"""
    coverage_margin: float = 0.1
    """absolute drop from the best value that is a warning"""
    coverage_error_margin: float = 0.3
    """absolute drop from the best value that is an error"""
    class_kl_warn: float = 0.1
    """eval_class_kl (nats) above this is a warning"""
    class_kl_error: float = 0.5
    """eval_class_kl (nats) above this is an error"""
    # eval_diversity (1.0 = as diverse as real data) below this is a warning; healthy Fashion-MNIST runs measured
    # 0.68 (dcgan width 32, 2,600 steps) and 0.74-0.79 (the default recipe, 10,000 steps), so 0.75 was a false alarm
    diversity_warn: float = 0.65
    """eval_diversity (1.0 = as diverse as real data) below this is a warning"""
    diversity_error: float = 0.4
    """eval_diversity below this is an error"""
    expected_modes: int | None = None
    """number of modes the data has (8 ring, 25 grid); None = skip, unless context gives it"""
    modes_error_fraction: float = 0.5
    """eval_modes at or below expected_modes * this is an error (fewer missing: a warning)"""
    modes_tolerance: float = 0.1
    """modes within this fraction of the expected count are not a collapse (a dip from 25 to 24 is noise)"""
    collapse_patience: int = 2
    """consecutive evaluations a mode-collapse condition must hold before it is reported"""
    eval_warmup_steps: int = 2000
    """absolute-threshold checks (class_kl, diversity, modes) ignore evaluations before this step"""

    # --- failed evaluation (any evaluation after eval_warmup_steps, and the final one) -----------
    failed_precision_coverage: float = 0.05
    """images: eval_precision and eval_coverage both at or below this is an evaluation far from the data"""
    failed_modes_fraction: float = 0.5
    """2-D data with known modes: eval_modes below expected * this is a failed evaluation"""
    failed_hq_fraction: float = 0.10
    """2-D data: eval_hq_fraction (share of samples near some mode) below this is a failed evaluation"""
    # eval_fd above this multiple of eval_fd_real (the evaluator's own real-vs-real FD at the run's eval.n) is a
    # failed evaluation; measured: Fashion-MNIST's real-vs-real FD is 0.023 at n=2500 and healthy runs end at
    # 1.6-7 (70-300x), so 1000x (FD 23) means far from the data; a small test split (digits: 360 images) inflates
    # the baseline (0.34), which makes the rule lenient there (precision and coverage still decide)
    failed_fd_multiple: float = 1000.0
    """eval_fd above this multiple of eval_fd_real (the evaluator's real-vs-real FD) is a failed evaluation"""

    # --- progress ---------------------------------------------------------------------------
    stall_metric: str | None = None
    """main metric for stall detection; None = eval_fd if logged, else eval_modes"""
    stall_higher_is_better: bool | None = None
    """direction of the main metric; None = known from its name (eval_fd lower, eval_modes higher)"""
    stall_window: int = 5
    """evaluations without improvement that make a stall (info); twice as many make a warning"""
    stall_min_delta: float = 0.01
    """relative improvement over the best needed to count as progress"""
    osc_key: str = "loss_d"
    """training key whose oscillation is watched"""
    osc_window_steps: int = 1000
    """G steps per window over which the (linearly detrended) std is computed"""
    osc_min_records: int = 5
    """records each window must hold (a detrended std needs at least 3)"""
    osc_blocks: int = 3
    """consecutive windows whose std must each grow by osc_growth"""
    osc_growth: float = 1.5
    """factor by which each window's std must exceed the previous one's"""
    osc_min_std: float = 0.05
    """the last window's std must be at least this (ignores growth of negligible noise)"""
    osc_patience_steps: int = 500
    """G steps of consecutive records at which the growth must hold for a finding"""

    # --- incremental tracker ----------------------------------------------------------------
    # training records kept by the Tracker (a memory bound, not a diagnostic window; evaluations
    # are all kept); it should cover the longest window above at the run's log.every
    tracker_history: int = 500
    """training records kept by the Tracker (bounded history; evaluations are all kept)"""
    rearm_steps: int = 1000
    ("a training-line finding is reported again only when its new episode starts more than this many G steps after "
     "the previous one was last active")
    rearm_evals: int = 2
    """evaluations an evaluation-line finding must stay clear before it can be reported again"""

    @model_validator(mode="before")
    @classmethod
    def _legacy_windows(cls, data: Any) -> Any:
        """Read a former record-count window (a config.yaml of an older run) as count x 50 G steps."""
        if not isinstance(data, Mapping):
            return data
        renamed = {old: new for old, new in LEGACY_DOCTOR_WINDOWS.items() if old in data and new not in data}
        if not renamed:
            return data
        data = dict(data)
        for old, new in renamed.items():
            value = data.pop(old)
            data[new] = value * LEGACY_LOG_EVERY if isinstance(value, int) and not isinstance(value, bool) else value
        return data

    @model_validator(mode="after")
    def _check(self) -> "DoctorConfig":
        """Windows positive, factors above 1, fractions in [0, 1], error thresholds beyond warnings."""
        positive_ints = (
            "explosion_window_steps", "explosion_min_history_steps", "explosion_min_records",
            "explosion_patience_steps", "explosion_patience_records", "drift_window_steps",
            "drift_min_records", "d_acc_window_steps", "d_acc_min_records", "vanish_early_steps",
            "vanish_min_records", "vanish_patience_steps", "overfit_window_steps", "overfit_min_records",
            "dead_window_steps", "dead_min_records",
            "collapse_patience", "stall_window", "osc_window_steps", "osc_min_records", "osc_blocks",
            "osc_patience_steps", "tracker_history", "rearm_steps", "rearm_evals",
        )
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"doctor.{name} must be >= 1, got {getattr(self, name)}")
        if self.osc_min_records < 3:
            raise ValueError("doctor.osc_min_records must be >= 3 (a detrended std needs 3 points)")
        if self.drift_min_records < 2:
            raise ValueError("doctor.drift_min_records must be >= 2 (an increase needs 2 points)")
        for name in ("explosion_scale_floor", "dead_grad_norm", "failed_precision_coverage",
                     "failed_hq_fraction"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"doctor.{name} must be >= 0, got {getattr(self, name)}")
        if self.osc_blocks < 2:
            raise ValueError("doctor.osc_blocks must be >= 2 (growth compares windows)")
        for name in ("explosion_factor", "vanish_factor", "osc_growth", "failed_fd_multiple"):
            if getattr(self, name) <= 1.0:
                raise ValueError(f"doctor.{name} must be > 1, got {getattr(self, name)}")
        for name in ("d_acc_threshold", "vanish_d_acc", "overfit_rt", "overfit_p_max", "drift_monotone_frac", "modes_error_fraction",
                     "modes_tolerance", "failed_modes_fraction", "dead_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"doctor.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.coverage_error_margin < self.coverage_margin:
            raise ValueError("doctor.coverage_error_margin must be >= doctor.coverage_margin")
        if self.class_kl_error < self.class_kl_warn:
            raise ValueError("doctor.class_kl_error must be >= doctor.class_kl_warn")
        if self.diversity_error > self.diversity_warn:
            raise ValueError("doctor.diversity_error must be <= doctor.diversity_warn")
        if self.expected_modes is not None and self.expected_modes < 1:
            raise ValueError("doctor.expected_modes must be None or >= 1")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field (tuples as lists)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DoctorConfig":
        """Build from a (partial) dict; an unknown key is a ValueError that lists the known ones."""
        known = set(cls.model_fields)
        unknown = sorted(set(data) - known - set(LEGACY_DOCTOR_WINDOWS))
        if unknown:
            raise ValueError(f"unknown doctor keys {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


class Config(_Section):
    """The whole validated config of one run."""

    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """seed of weights, latents, data order and evaluation (each run is a pure function of it)"""
    out: Optional[str] = None  # None: runs/<preset or data.name>, with -2, -3 ... when taken
    """run folder; default runs/<name> derived from the config"""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    penalty: PenaltyConfig = PenaltyConfig()
    augment: AugmentConfig = AugmentConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    log: LogConfig = LogConfig()
    eval: EvalConfig = EvalConfig()
    progressive: ProgressiveConfig = ProgressiveConfig()
    doctor: DoctorConfig = DoctorConfig()
    schedule: dict[str, ScheduleEntry] = {}  # name -> a config key's value as a function of images seen
    ("named schedules {key, end, images, kind: cosine|linear}: key goes from its configured value to end over "
     "images real images (lr, beta2 as optim.g_beta2, penalty weights; see README)")


def known_keys(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """All dotted config keys, e.g. 'loss.kind' (the doctor's thresholds included)."""
    keys: list[str] = []
    for name, field in (model or Config).model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(known_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _suggest(key: str) -> str:
    """A ' (did you mean ...?)' hint for an unknown dotted key, or ''."""
    candidates = known_keys()
    sections = sorted({k.split(".")[0] for k in candidates})
    close = difflib.get_close_matches(key, candidates + sections, n=1, cutoff=0.6)
    if not close:
        leaf = key.split(".")[-1]
        close = [k for k in candidates if k.split(".")[-1] == leaf][:1]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _format_validation_error(err: ValidationError) -> str:
    """One line from the first pydantic error."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
    loc = loc.encode("unicode_escape").decode("ascii")  # a key holding a newline stays on one line
    kind = first["type"]
    if any(isinstance(p, int) for p in first["loc"]) and loc.endswith("betas"):
        return f"config key '{loc}' must hold two numbers in [0, 1) like [0.5, 0.999]"
    if kind == "extra_forbidden":
        return f"unknown config key '{loc}'{_suggest(loc)}; run 'ganstab keys' to list the keys"
    value = first.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if kind == "model_type" or kind == "dict_type":
        return f"config key '{loc}' must be a section of key: value pairs, got {shown}"
    if kind == "value_error":  # a section's own rule (e.g. the doctor's thresholds): its message says it all
        return str(first.get("ctx", {}).get("error", first["msg"]))
    return f"config key '{loc}': {first['msg'].rstrip('.')}, got {shown}"


def deep_merge(base: dict, update: dict, where: str = "") -> dict:
    """Recursively merge `update` into a copy of `base`."""
    out = dict(base)
    for key, value in update.items():
        if not isinstance(key, str):
            raise ConfigError(f"config keys must be strings, got {key!r} in '{where or 'top level'}'")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """Turn 'a.b=value' into {'a': {'b': value}} with the value parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value; write it like loss.kind=hinge")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key; write it like loss.kind=hinge")
    shown = text if len(text) <= 60 else text[:57] + "..."
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"override {shown!r} is {len(raw):,} characters long, more than the {MAX_CONFIG_BYTES:,} "
                          "read; put long values in a --config file")
    if key.count(".") >= MAX_YAML_DEPTH:
        raise ConfigError(f"override {shown!r} nests keys more than {MAX_YAML_DEPTH} levels deep; write a known key "
                          "(run 'ganstab keys')")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except _TooLarge as exc:
        raise ConfigError(f"override {shown!r} {exc.problem}; {exc.fix}") from None
    except RecursionError:
        raise ConfigError(f"override {shown!r} nests values too deeply to read; write the value out plainly") from None
    except yaml.YAMLError:
        value = raw
    return nest(key, value)


def nest(dotted: str, value: Any) -> dict:
    """{'a': {'b': value}} from 'a.b' and a value."""
    node: dict = {}
    cursor = node
    parts = dotted.split(".")
    for part in parts[:-1]:
        cursor[part] = {}
        cursor = cursor[part]
    cursor[parts[-1]] = value
    return node


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping from a file, as ConfigError on any problem."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; pass a YAML file to --config")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; check the path given to --config")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(path)!r} is {path.stat().st_size / 1e6:.1f} MB, more than the "
                          f"{MAX_CONFIG_BYTES / 1e6:.0f} MB read (a config is a few kB of YAML); pass the right file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except _TooLarge as exc:
        raise ConfigError(f"config file {str(path)!r} {exc.problem} at line {exc.line}; {exc.fix}") from None
    except RecursionError:
        raise ConfigError(f"config file {str(path)!r} nests values too deeply to read; fix the file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text; pass a YAML file") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"config file {str(path)!r}: key {exc.key!r} appears twice (lines {exc.first} and "
                          f"{exc.second}); keep one") from None
    except yaml.constructor.ConstructorError as exc:  # well-formed YAML with a tag that names a type, e.g. !!python/object
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        tag = re.search(r"tag '([^']*)'", str(exc.problem or ""))
        shown = f" {tag.group(1).replace('tag:yaml.org,2002:', '!!')!r}" if tag else ""
        raise ConfigError(f"config file {str(path)!r} uses the YAML tag{shown}{where}, which ganstab does not load "
                          "(plain values only); remove the tag") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys, got {type(data).__name__}")
    return data


def validate(data: Any) -> Config:
    """Validate a nested dict into a Config (types, ranges, cross-field rules)."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of keys, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"config keys must be strings, got {key!r}")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err)) from None
    except (TypeError, ValueError, RecursionError) as err:
        raise ConfigError(f"config could not be read: {str(err).splitlines()[0]}") from None
    check_rules(cfg)
    return cfg


def check_rules(cfg: Config) -> None:
    """Cross-field rules that the literature (GUIDE.md section 4) asks for."""
    for key, betas in (("optim.g_betas", cfg.optim.g_betas), ("optim.d_betas", cfg.optim.d_betas)):
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ConfigError(f"config key '{key}' must hold two numbers in [0, 1), got {list(betas)}")
    if cfg.model.d_norm == "batch" and (cfg.penalty.gp > 0 or cfg.penalty.r1 > 0 or cfg.penalty.r2 > 0):
        raise ConfigError(
            "model.d_norm=batch cannot be used with a gradient penalty (penalty.gp/penalty.r1/penalty.r2): batch "
            "norm couples samples and breaks the per-sample gradient; use model.d_norm=layer, instance, spectral "
            "or none"
        )
    smoothing = cfg.loss.real_label != 1.0 or cfg.loss.fake_label != 0.0
    if smoothing and cfg.loss.kind in ("wasserstein", "hinge", "relativistic", "relativistic_average"):
        raise ConfigError(
            f"label smoothing (loss.real_label/loss.fake_label) has no meaning for loss.kind={cfg.loss.kind}; "
            "remove it or use nonsaturating/minimax/lsgan"
        )
    if cfg.model.hidden is not None and (not cfg.model.hidden or any(h <= 0 for h in cfg.model.hidden)):
        raise ConfigError("config key 'model.hidden' must be a non-empty list of positive layer widths")
    if cfg.train.batch_size % cfg.model.pack:
        raise ConfigError(
            f"model.pack={cfg.model.pack} does not divide train.batch_size={cfg.train.batch_size}; "
            f"choose a batch size divisible by {cfg.model.pack} or another model.pack"
        )
    if cfg.log.n_samples < 1:
        raise ConfigError("config key 'log.n_samples' must be positive")
    dev = cfg.train.device
    if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ConfigError(f"config key 'train.device' must be auto, cpu, cuda, cuda:N or mps, got {dev!r}")
    if not math.isfinite(cfg.train.ema):
        raise ConfigError("config key 'train.ema' must be a finite half-life in images (0 disables EMA)")
    if cfg.data.stream and cfg.data.name != "folder":
        raise ConfigError(f"data.stream=true reads image files on demand and works with data.name=folder only; "
                          f"{cfg.data.name} is held in memory, so remove data.stream")
    if cfg.data.workers and not cfg.data.stream:
        raise ConfigError("data.workers sets DataLoader processes for data.stream=true; set data.stream=true "
                          "or remove data.workers")
    if cfg.model.arch == "progressive":
        check_progressive(cfg)
    if cfg.model.conditional:
        check_conditional(cfg)
    if cfg.augment.ada_target > 0 and not cfg.augment.policy.strip():
        raise ConfigError("augment.ada_target adapts the probability of augment.policy, which is empty; "
                          "set augment.policy=color,translation,cutout or remove augment.ada_target")
    check_fine_tuning(cfg)
    check_penalties(cfg)
    check_schedules(cfg)



def check_fine_tuning(cfg: Config) -> None:
    """model.freeze_d needs trained weights to freeze (train.init_from) and a D that does not grow."""
    if cfg.model.freeze_d and not cfg.train.init_from:
        raise ConfigError("model.freeze_d freezes D's first blocks at trained weights, but train.init_from is not set; "
                          "set train.init_from=RUN (a trained run) or remove model.freeze_d")
    if cfg.model.freeze_d and cfg.model.arch == "progressive":
        raise ConfigError("model.freeze_d is not supported by model.arch=progressive (its D grows new blocks); "
                          "use mlp, dcgan or resnet, or remove model.freeze_d")


def check_penalties(cfg: Config) -> None:
    """A regulariser's interval, decay or transforms are set only with the regulariser itself."""
    if cfg.penalty.r1_every > 1 and cfg.penalty.r1 == 0:
        raise ConfigError("penalty.r1_every sets how often R1 runs, but penalty.r1 is 0; set penalty.r1 "
                          "(e.g. 0.1) or remove penalty.r1_every")
    if cfg.penalty.r2_every > 1 and cfg.penalty.r2 == 0:
        raise ConfigError("penalty.r2_every sets how often R2 runs, but penalty.r2 is 0; set penalty.r2 "
                          "(e.g. 0.1) or remove penalty.r2_every")
    if cfg.penalty.lecam_decay != PenaltyConfig.model_fields["lecam_decay"].default and cfg.penalty.lecam == 0:
        raise ConfigError("penalty.lecam_decay sets the decay of LeCam's moving averages, but penalty.lecam is 0; "
                          "set penalty.lecam (e.g. 0.3) or remove penalty.lecam_decay")
    if (cfg.penalty.bcr_real > 0 or cfg.penalty.bcr_fake > 0) and not cfg.penalty.cr_policy.strip():
        raise ConfigError("penalty.bcr_real/penalty.bcr_fake compare D(x) with D(T(x)), but penalty.cr_policy (T) "
                          "is empty; set penalty.cr_policy=translation")


def configured_value(cfg: Config, key: str) -> float:
    """The configured value of a schedulable key ('optim.g_beta2' is the second of optim.g_betas)."""
    section, name = key.split(".")
    if name.endswith("_beta2"):
        return float(getattr(cfg.optim, name.replace("_beta2", "_betas"))[1])
    return float(getattr(getattr(cfg, section), name))


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """'(0, 10]'-style text of a range."""
    return f"{'(' if low_open else '['}{low:g}, {'inf' if math.isinf(high) else f'{high:g}'}{')' if high_open else ']'}"


def check_schedules(cfg: Config) -> None:
    """Each `schedule.<name>` moves a schedulable key, once, to an end value in that key's range."""
    owner: dict[str, str] = {}
    for name, entry in cfg.schedule.items():
        if entry.key not in SCHEDULABLE:
            raise ConfigError(f"schedule.{name}.key: {entry.key!r} cannot be scheduled; schedulable keys: "
                              f"{', '.join(SCHEDULABLE)}")
        if entry.key in owner:
            raise ConfigError(f"schedule.{owner[entry.key]} and schedule.{name} both move {entry.key}; keep one")
        owner[entry.key] = name
        low, high, low_open, high_open = SCHEDULABLE[entry.key]
        if not (low < entry.end if low_open else low <= entry.end) or not (
                entry.end < high if high_open else entry.end <= high):
            raise ConfigError(f"schedule.{name}.end={entry.end:g} is outside the range of {entry.key}, "
                              f"{_interval(low, high, low_open, high_open)}; choose an end value inside it")
        if entry.key.startswith("penalty.") and configured_value(cfg, entry.key) == 0:
            raise ConfigError(f"schedule.{name} moves {entry.key}, which is 0 (off); set {entry.key} to the value "
                              "the schedule starts from")
        if entry.key.endswith("_beta2") and cfg.optim.name != "adam":
            raise ConfigError(f"schedule.{name} moves {entry.key}, but optim.name={cfg.optim.name} has no betas; "
                              "use optim.name=adam or remove the schedule")


CONDITIONAL_ARCHS: tuple[str, ...] = ("mlp", "toy", "dcgan")


def check_conditional(cfg: Config) -> None:
    """Rules of class-conditional training: architectures that have a conditional G/D, labels held in memory."""
    if cfg.model.arch not in CONDITIONAL_ARCHS:
        raise ConfigError(f"model.conditional=true is implemented for model.arch={', '.join(CONDITIONAL_ARCHS)}, "
                          f"not {cfg.model.arch}; choose one of them or set model.conditional=false")
    if cfg.model.pack > 1:
        raise ConfigError("model.conditional=true cannot be combined with model.pack (PacGAN packs samples of "
                          "different classes); set model.pack=1")
    if cfg.data.stream:
        raise ConfigError("model.conditional=true needs the labels in memory; remove data.stream")


def check_progressive(cfg: Config) -> None:
    """Rules of the progressive block: group size divides the batch, power-of-two start, norms."""
    prog = cfg.progressive
    if prog.start & (prog.start - 1):
        raise ConfigError(f"progressive.start must be a power of two (4, 8, 16, ...), got {prog.start}")
    group = prog.mbstd_group
    if group > 1 and cfg.train.batch_size % group:
        raise ConfigError(
            f"minibatch stddev group size {group} does not divide train.batch_size={cfg.train.batch_size}; "
            f"choose a batch size divisible by {group} or set progressive.mbstd_group to a divisor"
        )
    if cfg.model.d_norm == "batch":
        raise ConfigError("model.d_norm=batch is not supported by model.arch=progressive (it breaks the per-sample "
                          "gradient penalty); use model.d_norm=none, layer, instance or spectral")
    if cfg.model.d_norm == "spectral" and prog.equalized_lr:
        raise ConfigError("model.d_norm=spectral and progressive.equalized_lr both rescale D's weights; "
                          "set progressive.equalized_lr=false to use spectral norm")


FAKE_SMOOTHING_WARNING = (
    "loss.fake_label={value} smooths the fake target: Salimans et al. (2016, sec. 3.4) show this moves the "
    "optimal D towards the model's own density so bad samples are no longer pushed away; use one-sided "
    "smoothing (loss.real_label=0.9, loss.fake_label=0)"
)


def smoothing_warnings(cfg: Config) -> list[str]:
    """Warnings for allowed-but-harmful settings (two-sided label smoothing)."""
    if cfg.loss.fake_label != 0.0:
        return [FAKE_SMOOTHING_WARNING.format(value=cfg.loss.fake_label)]
    return []


def merge_sources(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    preset: str | None = None,
) -> dict:
    """The unvalidated nested dict of preset <- YAML file <- key=value overrides (defaults come later)."""
    data: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
        data = deep_merge(data, PRESETS[preset].values)
    if path is not None:
        data = deep_merge(data, read_yaml(path))
    if isinstance(overrides, str):
        overrides = [overrides]
    for text in overrides:
        data = deep_merge(data, parse_override(text))
    return data


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    preset: str | None = None,
) -> Config:
    """Merge defaults <- preset <- YAML file <- key=value overrides and validate the result."""
    cfg = validate(merge_sources(path, overrides, preset))
    if cfg.out is None:
        cfg.out = default_out(cfg, preset)
    for message in smoothing_warnings(cfg):
        warnings.warn(message, UserWarning, stacklevel=2)
    return cfg


def default_out(cfg: Config, preset: str | None = None, root: str | Path = "runs") -> str:
    """A fresh run folder name runs/<preset or dataset>[-N] that holds no run yet."""
    base = Path(root) / (preset or cfg.data.name)
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return str(candidate)


def to_dict(cfg: Config) -> dict:
    """Plain nested dict of a config (tuples as lists), for YAML and checkpoints."""
    return cfg.model_dump(mode="json")


def dump_yaml(cfg: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# Config keys that may change between a checkpoint and its resume without a flag (a trailing dot: a section).
SAFE_TO_CHANGE: tuple[str, ...] = ("train.steps", "train.time_budget", "log.", "eval.", "train.device",
                                   "train.threads", "out", "train.recover", "train.max_recoveries", "train.resume")


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts, as 'key: old -> new'."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_diff(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def is_safe_change(change: str) -> bool:
    """Whether a 'key: old -> new' change of `config_diff` may happen on resume without a flag."""
    key = change.split(":", 1)[0]
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_TO_CHANGE)


def _absent_leaves(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{dotted key: value in `new`} of every leaf of `new` whose key `old` does not hold."""
    out: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old and isinstance(value, dict) and value:
            out.update(_absent_leaves({}, value, f"{prefix}{key}."))
        elif key not in old:
            out[f"{prefix}{key}"] = value
        elif isinstance(value, dict) and isinstance(old[key], dict):
            out.update(_absent_leaves(old[key], value, f"{prefix}{key}."))
    return out


def keys_added_at_default(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys an older run's config dict lacks and `new` holds at this version's default: a key added since
    the run was written, whose default keeps the old behaviour (absent == default), so no change on resume."""
    defaults = dict(_absent_leaves({}, to_dict(Config())))
    return sorted(key for key, value in _absent_leaves(old, new).items()
                  if key in defaults and defaults[key] == value)


def unsafe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The changes between two config dicts that resuming must refuse unless told otherwise (a key `old` lacks
    and `new` holds at its default is none: `keys_added_at_default`)."""
    filled, leaves = dict(old), _absent_leaves({}, new)
    for key in keys_added_at_default(old, new):
        filled = deep_merge(filled, nest(key, leaves[key]))
    return [c for c in config_diff(filled, new) if not is_safe_change(c)]


# one line per key for `ganstab keys` (the doctor's from the comments above its fields)
def _descriptions(model: type[BaseModel] | None = None, prefix: str = "") -> dict[str, str]:
    """Each dotted config key's description, read from the docstring beside its field in the schema."""
    found: dict[str, str] = {}
    for name, field in (model or Config).model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found.update(_descriptions(ann, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = field.description or ""
    return found


# dotted key -> one-line description, derived from the schema (`ganstab keys` prints it)
KEY_HELP: dict[str, str] = _descriptions()

# keys that apply only to some architectures (or only to progressive growing); other keys apply to every run
KEY_APPLIES: dict[str, str] = {
    "model.freeze_d": "train.init_from with D weights; not progressive",
    "eval.inception_weights": "eval.features=inception",
    "model.conditional": "mlp/toy/dcgan",
    "model.d_condition": "model.conditional=true",
    "model.label_sampling": "model.conditional=true",
    "loss.acgan_weight": "model.d_condition=acgan",
    "augment.ada_interval": "augment.ada_target > 0",
    "augment.ada_speed_images": "augment.ada_target > 0",
    "penalty.r1_every": "penalty.r1 > 0",
    "penalty.r2_every": "penalty.r2 > 0",
    "penalty.lecam_decay": "penalty.lecam > 0",
    "penalty.cr_policy": "penalty.bcr_real or penalty.bcr_fake > 0",
    "penalty.zcr_sigma": "penalty.zcr or penalty.zcr_gen > 0",
    "model.width": "dcgan/toy/resnet/progressive",
    "model.depth": "toy only",
    "model.hidden": "mlp/toy",
    "model.g_norm": "mlp/dcgan/toy",
    "model.d_norm": "all architectures",
    "progressive.start": "progressive only",
    "progressive.stable_images": "progressive only",
    "progressive.fade_images": "progressive only",
    "progressive.increase_every": "progressive only",
    "progressive.mbstd_group": "progressive only",
    "progressive.equalized_lr": "progressive only",
    "progressive.pixel_norm": "progressive only",
    "progressive.max_width": "progressive only",
    "progressive.reset_optimizer": "progressive only",
    "progressive.grow": "progressive only",
}


def key_help(key: str) -> tuple[str, str]:
    """(description, what it applies to) of a dotted config key; 'all runs' unless the key is restricted."""
    return KEY_HELP[key], KEY_APPLIES.get(key, "all runs")
