"""Inception metrics in the field's units (`eval.features=inception`), computed by torch-fidelity, never by ganstab.

torch-fidelity's InceptionV3 (the TensorFlow FID network's weights, converted) reads uint8 (N, 3, H, W) in
[0, 255] and resizes to 299 x 299 itself, with its TensorFlow-1.x-compatible bilinear filter (align_corners
false): samples become uint8 by `sampling.to_uint8_rgb` (the one pixel rule, gray repeated on 3 channels).
FID, KID, IS and precision/recall come from the library's own functions over the features it extracted, with
its default settings (KID: 100 subsets of min(1,000, n); IS: 10 splits of the unbiased logits; precision/recall:
k = 3). The weights file is the user's (`eval.inception_weights` or $GANSTAB_INCEPTION_WEIGHTS): ganstab never
downloads, and reads the file with `weights_only=True` before the library does, so it unpickles no code.
The library is optional (`pip install 'ganstab[fidelity]'`), so it is imported when first asked for.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from ganstab.errors import ConfigError, first_line, one_line
from ganstab.rundir import sha256_file
from ganstab.sampling import to_uint8_rgb

__all__ = ["INCEPTION_ENV", "WEIGHTS_FILE", "RESIZE", "FEATURES_PREFIX", "KID_SUBSETS", "KID_SUBSET_SIZE",
           "IS_SPLITS", "WEIGHT_SHAPES", "import_fidelity", "weights_path", "weights_digest", "check_inception",
           "InceptionFeatures", "inception_scores", "score_images"]

#: Environment variable naming the weights file when eval.inception_weights is not set
INCEPTION_ENV = "GANSTAB_INCEPTION_WEIGHTS"
#: torch-fidelity's InceptionV3 weights (its v0.2.0 release): what a user downloads on a machine with internet
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
#: The resize inside the library's extractor, as `eval_resize` records it
RESIZE = "bilinear-tf1x-299"
#: `eval_features` of an Inception line: this prefix and 12 hex digits of the weights file's SHA-256
FEATURES_PREFIX = "inception-v3-compat-"
#: torch-fidelity's defaults, named here because ganstab passes them explicitly
KID_SUBSETS, KID_SUBSET_SIZE, IS_SPLITS = 100, 1000, 10
#: Two tensors of torch-fidelity's InceptionV3 state dict that fix its layout (input stem and 1008-class head)
WEIGHT_SHAPES: dict[str, tuple[int, ...]] = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "fc.weight": (1008, 2048),
                                            "fc.bias": (1008,)}
_BATCH = 64  # images per forward pass of the extractor (torch-fidelity's default batch size)
_FEATURES = ("2048", "logits_unbiased")  # pool features (FID, KID, PRC) and logits (IS): the library's defaults


def import_fidelity(asked_by: str = "eval.features=inception") -> ModuleType:
    """torch_fidelity, or a ConfigError saying how to install it (its import fails, e.g., on a torchvision built
    for another torch, with RuntimeError rather than ImportError)."""
    try:
        return importlib.import_module("torch_fidelity")
    except Exception as exc:  # noqa: BLE001 - any failure to import means the same fix
        raise ConfigError(f"{asked_by} needs torch-fidelity, which cannot be imported here ({type(exc).__name__}: "
                          f"{first_line(exc)[:160]}); install it with pip install 'ganstab[fidelity]' beside a "
                          "torchvision built for your torch, or use the default features (ganstab)") from None


def weights_path(path: Optional[str], source: str = "eval.inception_weights",
                 flag: str = "eval.inception_weights=PATH") -> Path:
    """The Inception weights file: `path` (given by `source`), else $GANSTAB_INCEPTION_WEIGHTS; a ConfigError saying
    how to get it (and to pass it with `flag`) when neither names an existing file."""
    given, source = (path, source) if path else (os.environ.get(INCEPTION_ENV), INCEPTION_ENV)
    how = (f"on a machine with internet download torch-fidelity's {WEIGHTS_FILE} (its v0.2.0 release) and pass "
           f"its path with {flag} or {INCEPTION_ENV}=PATH")
    if not given:
        raise ConfigError(f"Inception metrics need the InceptionV3 weights file and ganstab never downloads; {how}")
    file = Path(given).expanduser()
    if not file.is_file():
        what = "is a folder" if file.is_dir() else "does not exist"
        raise ConfigError(f"Inception weights {str(file)!r} (from {source}) {what}; {how}")
    return file


def _check_layout(state: Any, file: Path) -> None:
    """ConfigError unless `state` is a name -> tensor mapping with torch-fidelity's InceptionV3 layout."""
    fix = f"pass torch-fidelity's {WEIGHTS_FILE}"
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"Inception weights {str(file)!r} hold a {type(state).__name__}, not a state dict of "
                          f"tensors; {fix}")
    for name, shape in WEIGHT_SHAPES.items():
        found = tuple(state[name].shape) if name in state else None
        if found != shape:
            seen = "is missing" if found is None else f"has shape {found}"
            raise ConfigError(f"Inception weights {str(file)!r} are not torch-fidelity's InceptionV3: {name} {seen}, "
                              f"expected {shape}; {fix}")


@functools.lru_cache(maxsize=8)
def _checked_digest(file: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a weights file whose layout was checked (once per file version: size and mtime in the key)."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file, whatever torch raises
        raise ConfigError(f"Inception weights {file!r} cannot be read as a PyTorch state dict ({one_line(exc, 120)}); "
                          f"pass torch-fidelity's {WEIGHTS_FILE}") from None
    _check_layout(state, Path(file))
    return sha256_file(Path(file))


def weights_digest(file: Path) -> str:
    """SHA-256 hex of a weights file, after checking (weights only, no code unpickled) that it is torch-fidelity's
    InceptionV3 state dict; a ConfigError with the fix otherwise."""
    stat = file.stat()
    return _checked_digest(str(file), stat.st_size, stat.st_mtime_ns)


def check_inception(path: Optional[str], source: str = "eval.inception_weights",
                    flag: str = "eval.inception_weights=PATH", asked_by: str = "eval.features=inception") -> Path:
    """Everything Inception metrics need, checked before any work: the library importable and the weights file
    present and of the right layout (see `weights_path` for `source` and `flag`). Returns the weights file."""
    import_fidelity(asked_by)
    file = weights_path(path, source, flag)
    weights_digest(file)
    return file


class InceptionFeatures:
    """torch-fidelity's InceptionV3 over a user's weights file: pool features and unbiased logits of images in
    [-1, 1]. The network is built on first use (the final evaluation), the file checked at construction."""

    def __init__(self, path: Optional[str], device: torch.device | str = "cpu", source: str = "eval.inception_weights",
                 flag: str = "eval.inception_weights=PATH", asked_by: str = "eval.features=inception") -> None:
        self.file = check_inception(path, source, flag, asked_by)
        self.digest = weights_digest(self.file)
        self.device = torch.device(device)
        self._net: Optional[nn.Module] = None

    @property
    def name(self) -> str:
        """`eval_features` of its lines: inception-v3-compat-<12 hex digits of the weights file's SHA-256>."""
        return FEATURES_PREFIX + self.digest[:12]

    def network(self) -> nn.Module:
        """The library's extractor with the user's weights (built once)."""
        if self._net is None:
            fidelity = import_fidelity()
            try:
                net = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", list(_FEATURES),
                                                           feature_extractor_weights_path=str(self.file))
            except RuntimeError as exc:  # load_state_dict: a key or shape beyond the checked ones
                raise ConfigError(f"Inception weights {str(self.file)!r} do not fit torch-fidelity's InceptionV3 "
                                  f"({one_line(exc, 120)}); pass its {WEIGHTS_FILE}") from None
            self._net = net.to(self.device)
        return self._net

    @torch.no_grad()
    def features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(2048 pool features, 1008 unbiased logits) on the CPU, float32, of images (N, 1 or 3, H, W) in [-1, 1],
        made uint8 by the pixel rule (`to_uint8_rgb`); the library resizes to 299 itself."""
        net = self.network()
        pools, logits = [], []
        for start in range(0, len(images), _BATCH):
            pixels = to_uint8_rgb(images[start:start + _BATCH]).to(self.device)
            pool, logit = net(pixels)
            pools.append(pool.cpu())
            logits.append(logit.cpu())
        return torch.cat(pools), torch.cat(logits)


def score_images(inception: InceptionFeatures, real: Tensor, fake: Tensor) -> dict[str, float]:
    """`inception_scores` of generated images `fake` against real images `real` (both (N, C, H, W) in [-1, 1])."""
    pool, logits = inception.features(fake)
    return inception_scores(inception.features(real)[0], pool, logits)


def inception_scores(real_pool: Tensor, fake_pool: Tensor, fake_logits: Tensor) -> dict[str, float]:
    """fd (FID), kid and kid_std, is (the Inception Score, mean over its splits), precision and recall of generated
    features against real ones, each by torch-fidelity's own function with its defaults (KID subsets of min(1,000,
    n)); the names are the registry's (`metrics.registry.METRICS`), the feature network is on the line beside them."""
    import_fidelity()
    fid = importlib.import_module("torch_fidelity.metric_fid")
    kid = importlib.import_module("torch_fidelity.metric_kid")
    isc = importlib.import_module("torch_fidelity.metric_isc")
    prc = importlib.import_module("torch_fidelity.metric_prc")
    real, fake = real_pool.cpu().float(), fake_pool.cpu().float()
    out = fid.fid_statistics_to_metric(fid.fid_features_to_statistics(fake), fid.fid_features_to_statistics(real),
                                       verbose=False)
    out.update(kid.kid_features_to_metric(fake, real, kid_subsets=KID_SUBSETS, verbose=False,
                                          kid_subset_size=min(KID_SUBSET_SIZE, len(fake), len(real))))
    out.update(isc.isc_features_to_metric(fake_logits.cpu().float(), splits=min(IS_SPLITS, len(fake))))
    out.update(prc.prc_features_to_metric(fake, real, verbose=False))
    names = {fid.KEY_METRIC_FID: "fd", kid.KEY_METRIC_KID_MEAN: "kid", kid.KEY_METRIC_KID_STD: "kid_std",
             isc.KEY_METRIC_ISC_MEAN: "is", prc.KEY_METRIC_PRECISION: "precision", prc.KEY_METRIC_RECALL: "recall"}
    return {ours: float(out[theirs]) for theirs, ours in names.items()}
