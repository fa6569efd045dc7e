"""Exported generators: save and load G as safetensors + a JSON description (no pickle), write samples."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import nn

from ganstab.config import Config, to_dict, validate
from ganstab.data import dataset_shape, make_dataset
from ganstab.data.toy import grid25_centers, ring8_centers
from ganstab.errors import CheckpointError, ConfigError, UsageError, one_line
from ganstab.models import build_generator
from ganstab.models.memory import available_memory, memory_shortfall
from ganstab.rundir import (GENERATOR_META, GENERATOR_WEIGHTS, RunDir, atomic_write, atomic_write_via,
                            check_not_run_owned, check_output_path, load_checkpoint, newest_valid_checkpoint)
from ganstab.sampling import generate, save_image_grid, save_scatter, to_uint8, to_uint8_rgb

__all__ = ["FORMAT", "TRAINING_ONLY_MODEL_KEYS", "generator_meta", "save_generator", "load_generator",
           "generator_from_checkpoint", "load_run_generator", "state_dict_problem", "GRID_MAX", "SAMPLE_CHUNK",
           "sample_bytes", "check_grid_size", "check_sample_space", "sample_class_labels", "write_samples",
           "ImageGenerator", "UInt8Generator", "load_generator_module", "GRID_SUFFIXES", "sample_path",
           "check_sample_out"]

FORMAT = "ganstab-generator-1"
GRID_MAX = 10_000  # most samples one PNG grid (or scatter plot) shows; more need --format folder or npy
SAMPLE_CHUNK = 10_000  # samples generated (and latents drawn) at a time, so memory stays flat for any n
GRID_SUFFIXES = (".png", ".jpg", ".jpeg")  # what a grid (Pillow) and a scatter plot (matplotlib) are both written as


# model.* keys that say how a run trained, not what G is: left out of generator.json (its rules need the run's config)
TRAINING_ONLY_MODEL_KEYS: tuple[str, ...] = ("freeze_d",)


def generator_meta(cfg: Config, shape: Sequence[int], kind: str, ema: bool, step: int, images_seen: int,
                   g_kwargs: Mapping[str, Any], interrupted: bool = False, num_classes: int = 0,
                   class_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """The JSON description of an exported generator: enough to rebuild it without the run's config.

    `interrupted` marks the export of a run stopped by a signal before `train.steps` (not finished).
    """
    full = to_dict(cfg)
    model = {k: v for k, v in full["model"].items() if k not in TRAINING_ONLY_MODEL_KEYS}
    meta = {"format": FORMAT, "model": model,
            "data": {"name": cfg.data.name, "shape": list(shape), "kind": kind},
            "progressive": full.get("progressive"), "ema": ema, "step": step, "images_seen": images_seen,
            "g_kwargs": dict(g_kwargs), "num_classes": int(num_classes),
            "class_names": list(class_names) if class_names else [str(k) for k in range(num_classes)]}
    if interrupted:
        meta["interrupted"] = True
    return meta


def save_generator(folder: str | Path, net: nn.Module, meta: Mapping[str, Any]) -> Path:
    """Write generator.safetensors and then generator.json into `folder`, each atomically."""
    run = RunDir(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write(run.generator_weights, save_safetensors(tensors))
    atomic_write(run.generator_meta, json.dumps(dict(meta), indent=2))
    return run.generator_weights


_PROGRESSIVE_KWARGS = frozenset({"resolution", "alpha"})  # what a progressive G's forward takes besides z


def _describe(meta: Any, meta_path: Path) -> tuple[Config, tuple[int, ...], int]:
    """(config, data shape, classes) of a generator.json, every field checked; CheckpointError (one line) otherwise."""
    where = f"{str(meta_path)!r}"

    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(f"{where} is not a valid ganstab generator description ({problem}); restore it, or "
                               f"delete {GENERATOR_META} and {GENERATOR_WEIGHTS} to sample from the newest checkpoint")

    if not isinstance(meta, dict):
        raise refuse(f"a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise refuse(f"'format' is {meta.get('format')!r}, not {FORMAT!r}")
    data = meta.get("data")
    if not isinstance(meta.get("model"), dict) or not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise refuse("'model' and 'data' must be objects and 'data.name' a name")
    shape = data.get("shape")
    if (not isinstance(shape, list) or len(shape) not in (1, 3)
            or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape)):
        raise refuse(f"'data.shape' must be 1 or 3 positive integers, got {json.dumps(shape)[:60]}")
    kind = "points" if len(shape) == 1 else "image"
    if data.get("kind", kind) != kind:
        raise refuse(f"'data.kind' is {data.get('kind')!r} but the shape {shape} holds {kind}s")
    classes = meta.get("num_classes", 0)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0:
        raise refuse(f"'num_classes' must be a non-negative integer, got {json.dumps(classes)[:40]}")
    names = meta.get("class_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or (names and len(names) != classes):
        raise refuse(f"'class_names' must list one name for each of the {classes} classes")
    progressive = meta.get("progressive")
    try:
        cfg = validate({"model": meta["model"], "data": {"name": data["name"]},
                        **({"progressive": progressive} if progressive else {})})
    except ConfigError as exc:
        raise refuse(str(exc)) from None
    if bool(classes) != cfg.model.conditional:
        raise refuse(f"'num_classes' is {classes} but model.conditional is {str(cfg.model.conditional).lower()}; "
                     "a class-conditional G has 1 or more classes, an unconditional one 0")
    g_kwargs = meta.get("g_kwargs", {})
    wanted = _PROGRESSIVE_KWARGS if cfg.model.arch == "progressive" else frozenset()
    if (not isinstance(g_kwargs, dict) or set(g_kwargs) != wanted
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in g_kwargs.values())):
        expected = "resolution and alpha numbers" if wanted else "empty ({})"
        raise refuse(f"'g_kwargs' must be {expected} for model.arch={cfg.model.arch}, got {json.dumps(g_kwargs)[:60]}")
    for key in ("step", "images_seen"):
        value = meta.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise refuse(f"'{key}' must be a non-negative integer, got {json.dumps(value)[:40]}")
    return cfg, tuple(shape), classes


def state_dict_problem(exc: BaseException) -> str:
    """torch's load_state_dict error on one line: every missing, unexpected or mismatched key it names."""
    return one_line(exc, 240)


def load_generator(run_dir: Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild G from run_dir/generator.json and load generator.safetensors into it.

    The description is untrusted input: every field is checked, and G and D of its config must pass the
    memory check of training before anything is built.
    """
    run_dir = Path(run_dir)
    meta_path, weights_path = RunDir(run_dir).generator_meta, RunDir(run_dir).generator_weights
    if not meta_path.is_file() or not weights_path.is_file():
        raise CheckpointError(f"{str(run_dir)!r} has no exported generator (generator.json + generator.safetensors); "
                              "train it to the end or resume it first")
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        problem = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "not JSON"
        raise CheckpointError(f"{str(meta_path)!r} is not a valid ganstab generator description ({problem}); "
                              f"restore it, or delete {GENERATOR_META} and {GENERATOR_WEIGHTS} to sample from the "
                              "newest checkpoint") from None
    full_cfg, shape, classes = _describe(meta, meta_path)
    where = torch.device(device)
    short = memory_shortfall(full_cfg, shape, available_memory(where), classes)
    if short is not None:
        raise CheckpointError(f"{str(meta_path)!r} describes G and D of {short.parameters:,} parameters (about "
                              f"{short.need / 1e9:.1f} GB, the memory check of training) but {short.free / 1e9:.1f} GB "
                              f"of {where.type} memory is available; load it on a larger machine, or check that "
                              f"{GENERATOR_META} is the one its training wrote")
    try:
        generator = build_generator(full_cfg.model, shape, full_cfg, classes)
    except (ConfigError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{str(meta_path)!r} describes a generator that cannot be built ({one_line(exc)}); "
                              f"restore {GENERATOR_META}") from None
    try:
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{str(weights_path)!r} cannot be read ({exc}); it is truncated or corrupt") from None
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{str(weights_path)!r} does not match the architecture in generator.json "
                              f"({state_dict_problem(exc)})") from None
    return generator.to(device).eval(), meta


def generator_from_checkpoint(path: Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild G from a checkpoint's config and load its `g_ema` (else `g`) weights, read with weights_only=True."""
    path = Path(path)
    state = load_checkpoint(path)
    if not isinstance(state.get("config"), dict) or "g" not in state:
        raise CheckpointError(f"{str(path)!r} is not a ganstab checkpoint")
    try:
        cfg = validate(state["config"])
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} holds an invalid config ({exc})") from None
    if cfg.model.arch == "progressive":
        raise CheckpointError(f"{str(path.parent.parent)!r} has no exported generator and a progressive run's "
                              "checkpoint cannot be sampled directly; resume it to export the generator")
    shape = dataset_shape(cfg.data)
    data = make_dataset(cfg.data, cfg.seed) if shape is None or cfg.model.conditional else None
    shape = shape or data.shape
    classes = data.num_classes if cfg.model.conditional else 0
    kind = "points" if len(shape) == 1 else "image"
    weights = state["g_ema"] if state.get("g_ema") is not None else state["g"]
    short = memory_shortfall(cfg, tuple(shape), available_memory(torch.device(device)), classes)
    if short is not None:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a config whose G and D have {short.parameters:,} "
                              f"parameters (about {short.need / 1e9:.1f} GB, the memory check of training) but "
                              f"{short.free / 1e9:.1f} GB is available; load it on a larger machine")
    generator = build_generator(cfg.model, shape, cfg, classes)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} does not match its config's generator "
                              f"({state_dict_problem(exc)})") from None
    meta = generator_meta(cfg, shape, kind, state.get("g_ema") is not None, int(state.get("step", 0)),
                          int(state.get("images_seen", 0)), {}, num_classes=classes,
                          class_names=data.class_names if data is not None else None)
    return generator.to(device).eval(), meta


def load_run_generator(run_dir: Path, device: str = "cpu",
                       echo: Callable[[str], None] = print) -> tuple[nn.Module, dict[str, Any]]:
    """The run's exported generator, or (killed before exporting) the newest valid checkpoint's, said in one line."""
    run = RunDir(run_dir)
    if run.generator_meta.is_file() or run.generator_weights.is_file():
        return load_generator(run.root, device)
    path = newest_valid_checkpoint(run.checkpoints, warn=lambda message: None)
    if path is None:
        return load_generator(run.root, device)  # raises: no export and no checkpoint
    generator, meta = generator_from_checkpoint(path, device)
    echo(f"{str(run.root)!r} has no exported generator; using checkpoint {path.name} (step {meta['step']}, "
         f"{'EMA' if meta['ema'] else 'G'} weights)")
    return generator, meta


def _chunks(generator: nn.Module, meta: dict[str, Any], n: int, seed: int,
            labels: Optional[torch.Tensor] = None) -> Iterator[torch.Tensor]:
    """n samples in chunks of SAMPLE_CHUNK, latents drawn chunk by chunk from one seeded generator."""
    device = next(generator.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    latent_dim = int(meta["model"]["latent_dim"])
    for start in range(0, n, SAMPLE_CHUNK):
        z = torch.randn(min(SAMPLE_CHUNK, n - start), latent_dim, generator=gen).to(device)
        chunk_labels = None if labels is None else labels[start:start + len(z)]
        yield generate(generator, z, labels=chunk_labels, **meta.get("g_kwargs", {}))


def sample_class_labels(meta: Mapping[str, Any], n: int, class_index: Optional[int], seed: int,
                        all_classes: bool = False) -> Optional[torch.Tensor]:
    """Labels for n samples of an exported conditional G: one class, one row per class, or uniform; None otherwise."""
    num_classes = int(meta.get("num_classes") or 0)
    if not num_classes:
        if class_index is not None or all_classes:
            raise UsageError("--class and --classes need a class-conditional run (model.conditional=true); "
                             "this generator is unconditional")
        return None
    if class_index is not None:
        if not 0 <= class_index < num_classes:
            raise UsageError(f"--class {class_index} is out of range: this generator has {num_classes} classes "
                             f"(0..{num_classes - 1})")
        return torch.full((n,), class_index, dtype=torch.long)
    if all_classes:
        return torch.arange(num_classes).repeat_interleave(max(1, n // num_classes))
    return torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(seed + 1))


def sample_bytes(meta: Mapping[str, Any], n: int, fmt: str) -> int:
    """Rough bytes on disk for n samples: float32 for npy, one uint8 per value (PNG upper bound) for folder."""
    values = math.prod(int(s) for s in meta["data"]["shape"])
    return n * values * (4 if fmt == "npy" else 1)


def check_grid_size(n: int, fmt: str) -> None:
    """A PNG grid (or scatter plot) shows at most GRID_MAX samples; more must be written as a folder or npy."""
    if fmt == "grid" and n > GRID_MAX:
        raise UsageError(f"--n {n} is more than one PNG grid shows (at most {GRID_MAX:,}); "
                         "use --format folder or npy for more samples")


def check_sample_space(meta: Mapping[str, Any], n: int, out: Path, fmt: str) -> None:
    """Refuse n samples that would not fit on the disk holding `out` (a grid above GRID_MAX is refused too)."""
    check_grid_size(n, fmt)
    need = sample_bytes(meta, n, fmt)
    where = Path(out).absolute()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if need > free:
        raise UsageError(f"--n {n} samples need about {need / 1e9:.1f} GB as --format {fmt} but only "
                              f"{free / 1e9:.1f} GB is free at {str(where)!r}; lower --n or choose another --out")


def sample_path(out: Path, fmt: str) -> Path:
    """The path `write_samples` writes: `out`, with .npy appended for --format npy when it lacks it."""
    out = Path(out)
    return out if fmt != "npy" or out.suffix == ".npy" else out.with_name(out.name + ".npy")


def check_sample_out(out: Path, run_dir: Path, fmt: str) -> None:
    """Refuse, before sampling, an --out that is the run's own (or any run's) file, of an unwritable kind or place."""
    path = sample_path(out, fmt)
    fix = "write samples elsewhere, e.g. --out samples.png (grid), samples.npy or a new folder"
    check_output_path(path, "--out", "choose another --out")
    check_not_run_owned(path, [run_dir], "--out", fix)
    if fmt == "folder":
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {str(path)!r} is a file; --format folder writes one PNG per sample into a folder, "
                             "so give a new or existing folder")
        return
    if path.is_dir():
        raise UsageError(f"--out {str(path)!r} is a folder; --format {fmt} writes one file, so give a file name like "
                         f"{str(path / ('samples.npy' if fmt == 'npy' else 'samples.png'))!r}")
    if fmt == "grid" and path.suffix.lower() not in GRID_SUFFIXES:
        ending = f"ends in {path.suffix!r}" if path.suffix else "has no file extension"
        raise UsageError(f"--out {str(path)!r} {ending}, which --format grid cannot write; name a "
                         f"{', '.join(GRID_SUFFIXES[:-1])} or {GRID_SUFFIXES[-1]} file (or use --format npy or folder)")


def write_samples(generator: nn.Module, meta: dict[str, Any], n: int, out: Path, fmt: str, seed: int = 0,
                  class_index: Optional[int] = None, all_classes: bool = False) -> Path:
    """Write n samples as a PNG grid (at most GRID_MAX), a folder of PNGs or a .npy array, each file atomically.

    npy and folder stream SAMPLE_CHUNK samples at a time, so any n that fits on disk works. A
    conditional G samples class `class_index`, one row per class (`all_classes`), or uniform labels.
    """
    out = Path(out)
    labels = sample_class_labels(meta, n, class_index, seed, all_classes)
    n = n if labels is None else len(labels)
    if fmt == "npy":
        path = sample_path(out, fmt)
        shape = (n, *(int(s) for s in meta["data"]["shape"]))

        def fill(tmp: Path) -> None:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            start = 0
            for chunk in _chunks(generator, meta, n, seed, labels):
                array[start:start + len(chunk)] = chunk.numpy()
                start += len(chunk)
            array.flush()
            del array

        return atomic_write_via(path, fill)
    if fmt == "folder":
        out.mkdir(parents=True, exist_ok=True)
        index = 0
        for chunk in _chunks(generator, meta, n, seed, labels):
            for img in to_uint8(chunk):
                image = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
                atomic_write_via(out / f"{index:06d}.png", lambda tmp: image.save(tmp))
                index += 1
        return out
    check_grid_size(n, fmt)
    samples = next(_chunks(generator, meta, n, seed, labels))
    if meta["data"].get("kind") == "points":
        centers: Optional[torch.Tensor] = None
        if meta["data"]["name"] in ("ring8", "grid25"):
            centers = ring8_centers() if meta["data"]["name"] == "ring8" else grid25_centers()
        return atomic_write_via(out, lambda tmp: save_scatter(samples, tmp, centers, title=f"{n} samples"))
    rows = None if not all_classes or labels is None else n // int(meta["num_classes"])
    return atomic_write_via(out, lambda tmp: save_image_grid(samples, tmp, nrow=rows))



class ImageGenerator(nn.Module):
    """An exported image G as a plain module: forward(z, labels=None) -> float (N, C, H, W) in [-1, 1].

    z is (N, latent_dim) drawn from N(0, I); a class-conditional G needs `labels`, (N,) class indices.
    It stays in eval mode (BN uses its running statistics); `uint8()` wraps it for FID tools.
    """

    def __init__(self, generator: nn.Module, meta: Mapping[str, Any], source: str = "this generator") -> None:
        super().__init__()
        if meta["data"].get("kind") == "points" or len(meta["data"]["shape"]) != 3:
            raise UsageError(f"{source} generates 2-D points (data.name={meta['data']['name']}), not images; "
                             "image tools cannot read them: write them with ganstab sample --format npy")
        self.generator = generator.eval()
        self.meta = dict(meta)
        self.latent_dim = int(meta["model"]["latent_dim"])
        self.num_classes = int(meta.get("num_classes") or 0)
        self.class_names = list(meta.get("class_names") or [])
        self.g_kwargs = dict(meta.get("g_kwargs") or {})
        super().train(False)
        with torch.no_grad():  # the shape G really draws (a progressive G exports at the resolution it reached)
            labels = torch.zeros(1, dtype=torch.long) if self.num_classes else None
            probe = self(torch.zeros(1, self.latent_dim), labels)
        self.image_shape: tuple[int, ...] = tuple(probe.shape[1:])
        if self.image_shape[0] not in (1, 3):
            raise UsageError(f"{source} generates {self.image_shape[0]}-channel images; only gray (1) or RGB (3) "
                             "images can be given to image tools: use ganstab sample --format npy for the raw values")

    def train(self, mode: bool = True) -> "ImageGenerator":
        """Stays in eval mode whatever `mode` says: an exported G samples with its running statistics."""
        return super().train(False)

    def forward(self, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Images for latents z (N, latent_dim) and, for a conditional G, class indices `labels` (N,)."""
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise UsageError(f"z has shape {tuple(z.shape)}; this generator takes (N, {self.latent_dim}) latents "
                             "drawn from N(0, I)")
        device = next(self.generator.parameters()).device
        if self.num_classes and labels is None:
            raise UsageError(f"this generator is class-conditional ({self.num_classes} classes): pass labels (N,) "
                             "or use .uint8(class_index=K), which draws them")
        if not self.num_classes and labels is not None:
            raise UsageError("this generator is unconditional: call it without labels")
        extra: dict[str, Any] = {}
        if labels is not None:
            labels = torch.as_tensor(labels).long()
            in_range = not len(labels) or 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes
            if labels.shape != (z.shape[0],) or not in_range:
                raise UsageError(f"labels must be {z.shape[0]} class indices in 0..{self.num_classes - 1}, one per "
                                 f"latent; got shape {tuple(labels.shape)}")
            extra["y"] = labels.to(device)
        return self.generator(z.to(device), **self.g_kwargs, **extra)

    def uint8(self, class_index: Optional[int] = None, seed: int = 0) -> "UInt8Generator":
        """This G for FID tools: forward(z) -> uint8 (N, 3, H, W) in [0, 255]; see UInt8Generator."""
        return UInt8Generator(self, class_index, seed)


class UInt8Generator(nn.Module):
    """forward(z) -> uint8 (N, 3, H, W) in [0, 255]: torch-fidelity's generator input and clean-fid's `gen=`.

    Pixels follow ganstab.sampling.quantize (the rule of `ganstab sample --format folder`), gray is repeated on
    three channels. A conditional G samples class `class_index`, or, without one, labels drawn uniformly on
    each call from a generator seeded with `seed`; labels passed to forward are used as given.
    """

    def __init__(self, images: ImageGenerator, class_index: Optional[int] = None, seed: int = 0) -> None:
        super().__init__()
        if class_index is not None and not images.num_classes:
            raise UsageError("class_index needs a class-conditional generator; this one is unconditional")
        if class_index is not None and not 0 <= class_index < images.num_classes:
            raise UsageError(f"class_index {class_index} is out of range: this generator has {images.num_classes} "
                             f"classes (0..{images.num_classes - 1})")
        self.images = images
        self.class_index = class_index
        self.z_size = images.latent_dim
        self.label_rng = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def forward(self, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """uint8 (N, 3, H, W) images in [0, 255] for latents z (N, latent_dim), on G's device."""
        if labels is None and self.images.num_classes:
            labels = (torch.full((z.shape[0],), self.class_index, dtype=torch.long) if self.class_index is not None
                      else torch.randint(0, self.images.num_classes, (z.shape[0],), generator=self.label_rng))
        return to_uint8_rgb(self.images(z, labels))


def load_generator_module(run_dir: str | Path, device: str = "cpu",
                          echo: Callable[[str], None] = print) -> ImageGenerator:
    """A run's generator as an ImageGenerator module (exported, else newest checkpoint); 2-D point runs refused."""
    generator, meta = load_run_generator(Path(run_dir), device, echo)
    return ImageGenerator(generator, meta, source=f"run {str(run_dir)!r}")
