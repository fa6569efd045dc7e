"""One validated config for every switch: YAML file, a preset and `key=value` overrides.

`load_config` merges defaults <- preset <- file <- overrides, validates types with pydantic and
the cross-field rules with `check_rules`, and raises `ConfigError` with one line naming the
problem and the fix.
"""

from __future__ import annotations

import difflib
import math
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ganstab.errors import GanstabError
from ganstab.presets import PRESETS

if TYPE_CHECKING:
    from ganstab.diagnose import DoctorConfig

NORMS = ("batch", "instance", "layer", "spectral", "none")
Norm = Literal["batch", "instance", "layer", "spectral", "none"]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads plain scalars such as 1e-4 as floats (YAML 1.2), not quoted ones."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


class ConfigError(GanstabError):
    """A config key or value that cannot be used; the message is one line with the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)


class DataConfig(_Section):
    """Which dataset and where its files are (`data.*`)."""

    name: str = "digits"
    path: Optional[str] = None
    image_size: Optional[int] = Field(default=None, gt=0, le=1024)
    channels: Optional[Literal[1, 3]] = None
    limit: Optional[int] = Field(default=None, gt=0)
    stream: bool = False  # folder only: read images on demand (DataLoader + DistributedSampler)
    workers: int = Field(default=0, ge=0, le=64)  # DataLoader worker processes when streaming


class ModelConfig(_Section):
    """Architecture, latent size and the normalisation of G and D (`model.*`)."""

    arch: str = "mlp"
    latent_dim: int = Field(default=64, gt=0, le=4096)
    g_norm: Norm = "batch"
    d_norm: Norm = "spectral"
    width: int = Field(default=64, gt=0, le=4096)
    depth: int = Field(default=3, gt=0, le=16)
    hidden: Optional[list[int]] = None  # mlp: G's layer widths, D reversed (default 256-256); toy: width x depth
    pack: int = Field(default=1, ge=1, le=1024)  # PacGAN: D sees this many samples concatenated


class LossConfig(_Section):
    """The GAN loss and D's label targets (`loss.*`)."""

    kind: Literal["minimax", "nonsaturating", "wasserstein", "lsgan", "hinge"] = "hinge"
    real_label: float = Field(default=1.0, ge=0.0, le=1.0)
    fake_label: float = Field(default=0.0, ge=0.0, le=1.0)


class PenaltyConfig(_Section):
    """Regularisers of D: gradient penalty, R1, weight clipping, drift (`penalty.*`)."""

    gp: float = Field(default=0.0, ge=0.0)
    gp_target: float = Field(default=1.0, gt=0.0)
    r1: float = Field(default=0.0, ge=0.0)
    clip: float = Field(default=0.0, ge=0.0)
    drift: float = Field(default=0.0, ge=0.0)


class OptimConfig(_Section):
    """One optimiser per network with its own lr and betas (`optim.*`)."""

    name: Literal["adam", "rmsprop"] = "adam"
    g_lr: float = Field(default=1e-4, gt=0.0, le=10.0)
    d_lr: float = Field(default=4e-4, gt=0.0, le=10.0)
    g_betas: tuple[float, float] = (0.0, 0.9)
    d_betas: tuple[float, float] = (0.0, 0.9)


class TrainConfig(_Section):
    """Steps, batch, n_critic, EMA, device, precision, recovery and resume (`train.*`)."""

    steps: int = Field(default=3000, gt=0)
    batch_size: int = Field(default=64, gt=0, le=65536)
    n_critic: int = Field(default=1, ge=1, le=100)
    ema: float = Field(default=10000.0, ge=0.0)
    device: str = "auto"
    threads: int = Field(default=0, ge=0, le=1024)
    recover: bool = True
    max_recoveries: int = Field(default=3, ge=0, le=100)
    recover_lr_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    deterministic: bool = False
    resume: Literal["never", "auto"] = "never"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False
    time_budget: float = Field(default=0.0, ge=0.0)  # seconds of training; 0 = until train.steps
    reuse_fakes: bool = True  # n_critic=1: the G step reuses the D step's fakes (one G forward per step)
    sync_bn: bool = False


class LogConfig(_Section):
    """Logging, sample and checkpoint intervals (`log.*`)."""

    every: int = Field(default=50, gt=0)
    sample_every: int = Field(default=500, gt=0)
    checkpoint_every: int = Field(default=500, gt=0)
    keep_checkpoints: int = Field(default=3, ge=1, le=1000)
    n_samples: int = Field(default=64, gt=0, le=1024)
    progress: bool = True


class EvalConfig(_Section):
    """Evaluation during and after training (`eval.*`)."""

    every: int = Field(default=0, ge=0)
    final: bool = True
    n: int = Field(default=2500, gt=1, le=200000)
    cache_dir: Optional[str] = None
    evaluator_epochs: int = Field(default=3, gt=0, le=100)


class ProgressiveConfig(_Section):
    """Progressive growing's schedule and stabilisers (`progressive.*`)."""

    start: int = Field(default=4, ge=4, le=1024)
    stable_images: int = Field(default=20000, ge=0)
    fade_images: int = Field(default=20000, ge=0)
    increase_every: Optional[float] = Field(default=None, gt=0.0)
    mbstd_group: int = Field(default=4, ge=0, le=64)
    equalized_lr: bool = True
    pixel_norm: bool = True
    max_width: int = Field(default=256, gt=0, le=4096)
    reset_optimizer: bool = True
    grow: bool = True  # false: the same networks trained at full size from the start (for comparisons)


class Config(_Section):
    """The whole validated config of one run."""

    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    out: Optional[str] = None  # None: runs/<preset or data.name>, with -2, -3 ... when taken
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    penalty: PenaltyConfig = PenaltyConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    log: LogConfig = LogConfig()
    eval: EvalConfig = EvalConfig()
    progressive: ProgressiveConfig = ProgressiveConfig()
    doctor: dict[str, Any] = Field(default_factory=dict)  # thresholds of ganstab.diagnose.DoctorConfig


def known_keys(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """All dotted config keys, e.g. 'loss.kind' (the doctor's thresholds included)."""
    keys: list[str] = []
    for name, field in (model or Config).model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(known_keys(ann, f"{prefix}{name}."))
        elif model is None and name == "doctor":
            from dataclasses import fields

            from ganstab.diagnose import DoctorConfig

            keys.extend(f"doctor.{f.name}" for f in fields(DoctorConfig))
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
    return f"config key '{loc}': {first['msg'].rstrip('.')}, got {shown}"


def _deep_merge(base: dict, update: dict, where: str = "") -> dict:
    """Recursively merge `update` into a copy of `base`."""
    out = dict(base)
    for key, value in update.items():
        if not isinstance(key, str):
            raise ConfigError(f"config keys must be strings, got {key!r} in '{where or 'top level'}'")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value, f"{where}{key}.")
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
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
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
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; check the path given to --config")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text; pass a YAML file") from None
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
    if cfg.model.d_norm == "batch" and (cfg.penalty.gp > 0 or cfg.penalty.r1 > 0):
        raise ConfigError(
            "model.d_norm=batch cannot be used with a gradient penalty (penalty.gp/penalty.r1): batch norm couples "
            "samples and breaks the per-sample gradient; use model.d_norm=layer, instance, spectral or none"
        )
    smoothing = cfg.loss.real_label != 1.0 or cfg.loss.fake_label != 0.0
    if smoothing and cfg.loss.kind in ("wasserstein", "hinge"):
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
    from ganstab.data import DATASETS, dataset_shape
    from ganstab.models import architectures, check_fit

    ARCHITECTURES = architectures()

    if cfg.data.name not in DATASETS:
        raise ConfigError(f"unknown data.name {cfg.data.name!r}; known datasets: {', '.join(DATASETS)}")
    if cfg.data.stream and cfg.data.name != "folder":
        raise ConfigError(f"data.stream=true reads image files on demand and works with data.name=folder only; "
                          f"{cfg.data.name} is held in memory, so remove data.stream")
    if cfg.data.workers and not cfg.data.stream:
        raise ConfigError("data.workers sets DataLoader processes for data.stream=true; set data.stream=true "
                          "or remove data.workers")
    if cfg.model.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown model.arch {cfg.model.arch!r}; known architectures: {', '.join(ARCHITECTURES)}")
    check_doctor(cfg)
    if cfg.model.arch == "progressive":
        check_progressive(cfg)
    shape = dataset_shape(cfg.data)
    if shape is not None:
        check_fit(cfg.model, shape, cfg)


def doctor_config(cfg: Config) -> "DoctorConfig":
    """The validated DoctorConfig of a config's `doctor` section."""
    from pydantic import TypeAdapter

    from ganstab.diagnose import DoctorConfig

    return TypeAdapter(DoctorConfig).validate_python(dict(cfg.doctor))


def check_doctor(cfg: Config) -> None:
    """Unknown or ill-typed `doctor.*` keys are config errors like any other."""
    from dataclasses import fields

    from ganstab.diagnose import DoctorConfig

    known = [f.name for f in fields(DoctorConfig)]
    for key in cfg.doctor:
        if not isinstance(key, str) or key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean 'doctor.{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key 'doctor.{key}'{hint}; run 'ganstab keys' to list the keys")
    try:
        doctor_config(cfg)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err).replace("config key '", "config key 'doctor.", 1)) from None


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
        data = _deep_merge(data, PRESETS[preset].values)
    if path is not None:
        data = _deep_merge(data, read_yaml(path))
    if isinstance(overrides, str):
        overrides = [overrides]
    for text in overrides:
        data = _deep_merge(data, parse_override(text))
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
