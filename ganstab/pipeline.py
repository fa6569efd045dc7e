"""The composition root: config -> checks against the registries -> build -> train (-> export) -> plots -> report.

Everything that turns a config into objects happens here, and nowhere below: the runtime (device,
processes), the data set, G and D, the stability doctor that watches the run and the evaluator
that scores it are built here and handed to the Trainer, which only trains. After training the
Trainer has exported the generator, and the pipeline writes the plots and the HTML report.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from ganstab import config as config_module
from ganstab.augment import parse_policy
from ganstab.config import Config, default_out, to_dict
from ganstab.data import DATASETS, DataSource, dataset_shape, make_dataset
from ganstab.data.images import available_host_memory
from ganstab.diagnose import Finding, Tracker, context_from_config
from ganstab.errors import AfterTrainingError, CheckpointError, ConfigError, DataError
from ganstab.metrics import InceptionFeatures, RunEvaluator, check_inception, default_cache_dir, sample_spread
from ganstab.models import architectures, build_discriminator, build_generator, check_fit
from ganstab.models.freeze import freeze_discriminator_blocks
from ganstab.models.conditional import run_label_distribution
from ganstab.models.memory import TRAINING_BYTES_PER_PARAMETER, available_memory, memory_shortfall
from ganstab.report.html import write_report
from ganstab.report.plots import plot_run
from ganstab.report.tensorboard import TensorBoardSink, require_tensorboard
from ganstab.rundir import RunDir, RunLock, acquire_lock, append_jsonl, check_output_path, prepare_out_dir
from ganstab.training import RunResult, Trainer, trainer_class
from ganstab.training.interfaces import PhaseFailure, describe_failure, fixed_latents, training_eval_seed
from ganstab.training import checkpoint as ckpt
from ganstab.training.eval_schedule import FIRST_EVAL_GUESS_SECONDS, FIRST_POINTS_EVAL_GUESS_SECONDS
from ganstab.training.transfer import read_init_weights
from ganstab.training import parallel

__all__ = ["check_config", "check_data", "check_variation", "check_eval_cache", "check_memory", "available_memory",
           "load_config", "make_trainer", "train", "LazyScorer", "RunResult", "main_process",
           "TRAINING_BYTES_PER_PARAMETER", "MIN_IMAGE_SPREAD", "AFTER_TRAINING_CODE", "ExportScores", "score_export"]


def check_config(cfg: Config) -> None:
    """The rules that need the registries: a known data set and architecture, and one that fits the data."""
    if cfg.data.name not in DATASETS:
        raise ConfigError(f"unknown data.name {cfg.data.name!r}; known datasets: {', '.join(DATASETS)}")
    if cfg.model.arch not in architectures():
        raise ConfigError(f"unknown model.arch {cfg.model.arch!r}; known architectures: "
                          f"{', '.join(architectures())}")
    policy = parse_policy(cfg.augment.policy)
    bcr = cfg.penalty.bcr_real > 0 or cfg.penalty.bcr_fake > 0
    cr_policy = parse_policy(cfg.penalty.cr_policy, "penalty.cr_policy")
    shape = dataset_shape(cfg.data)
    if shape is not None:
        check_fit(cfg.model, shape, cfg)
        if policy and len(shape) != 3:
            raise ConfigError(f"augment.policy transforms images, but {cfg.data.name} holds 2-D points; "
                              "remove augment.policy")
        if bcr and cr_policy and len(shape) != 3:
            raise ConfigError(f"penalty.bcr_real/penalty.bcr_fake compare D on images and their transforms, but "
                              f"{cfg.data.name} holds 2-D points; remove them (penalty.zcr works on any data)")
    if cfg.log.tensorboard:
        require_tensorboard()
    if cfg.eval.features == "inception":  # used by the final evaluation: refused now, not after the run
        if shape is not None and len(shape) != 3:
            raise ConfigError(f"eval.features=inception scores images, but {cfg.data.name} holds 2-D points; "
                              "remove eval.features")
        check_inception(cfg.eval.inception_weights)
    if cfg.eval.cache_dir:  # written after training, at the first evaluation: refused now, not after the run
        check_output_path(cfg.eval.cache_dir, "eval.cache_dir", "choose another eval.cache_dir or remove it")


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (), preset: str | None = None) -> Config:
    """`ganstab.config.load_config` (defaults <- preset <- file <- overrides) plus the registry checks."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = config_module.load_config(path, overrides, preset)
    check_config(cfg)
    for w in caught:  # re-issued only for a config that passed every check
        warnings.warn(w.message, w.category, stacklevel=2)
    return cfg


class LazyScorer:
    """The run's evaluator, built (and its evaluator network trained or loaded) on first use."""

    def __init__(self, data: DataSource, cfg: Config, device: torch.device, echo: Callable[[str], None]) -> None:
        self.data, self.cfg, self.device, self.echo = data, cfg, device, echo
        self.evaluator: Optional[RunEvaluator] = None

    def _get(self) -> RunEvaluator:
        if self.evaluator is None:
            ev = self.cfg.eval
            classes = self.data.num_classes if self.cfg.model.conditional else 0
            inception = (InceptionFeatures(ev.inception_weights, self.device)
                         if ev.features == "inception" and self.data.kind == "image" else None)
            self.evaluator = RunEvaluator(self.data, ev.n, self.device, ev.cache_dir, ev.evaluator_epochs,
                                          echo=self.echo, num_classes=classes, evaluator_images=ev.evaluator_images,
                                          val_n=ev.val_n, evaluator=ev.evaluator, inception=inception,
                                          label_probs=run_label_distribution(self.cfg.model, self.data.labels,
                                                                             classes))
        return self.evaluator

    def evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                 fixed_z: Optional[Tensor] = None, seed: int = 0, split: str = "validation") -> dict[str, float]:
        """Scores of `generator`'s samples against a reference split (see `RunEvaluator.evaluate`)."""
        return self._get().evaluate(generator, latent_dim, g_kwargs, fixed_z, seed, split)

    def provenance(self, split: str) -> dict[str, Any]:
        """Split, reference size, samples, feature network and resize of the last score (see
        `RunEvaluator.provenance`)."""
        return self._get().provenance(split)

    def quick_evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                       fixed_z: Optional[Tensor] = None, seed: int = 0) -> dict[str, float]:
        """Cheap scores between full evaluations (see `RunEvaluator.quick_evaluate`)."""
        return self._get().quick_evaluate(generator, latent_dim, g_kwargs, fixed_z, seed)

    def supports_quick(self) -> bool:
        """Whether quick evaluations exist for this run (unconditional images)."""
        return self.data.kind != "points" and not self.cfg.model.conditional

    def first_cost_guess(self) -> float:
        """The cost assumed for the first full evaluation: milliseconds on 2-D points, more on images."""
        return FIRST_POINTS_EVAL_GUESS_SECONDS if self.data.kind == "points" else FIRST_EVAL_GUESS_SECONDS

    def is_better(self, new: dict[str, float], best: Optional[dict[str, float]]) -> bool:
        """Whether `new` beats `best` on the data's main metric."""
        return self._get().is_better(new, best)

    def prepare(self) -> None:
        """Build the evaluator now (trains or loads the evaluator network once)."""
        self._get()

    def main_metric_name(self) -> str:
        """The name of the data's main metric."""
        return self._get().main_metric[0]


def make_trainer(cfg: Config, *, echo: Callable[[str], None] = print,
                 hooks: Optional[dict[str, Callable]] = None) -> Trainer:
    """Build the runtime, data, G, D, doctor and evaluator of a config and the Trainer over them."""
    check_config(cfg)
    if cfg.out is None:
        cfg.out = default_out(cfg)
    runtime = parallel.init_runtime(cfg.train)
    ckpt.seed_everything(cfg.seed)
    data = make_dataset(cfg.data, cfg.seed).to(runtime.device)
    if runtime.dist.is_main:
        for note in data.notes:
            echo(note)
    check_data(cfg, data)
    classes = check_labels(cfg, data)
    check_variation(cfg, data)
    if runtime.dist.is_main:
        check_eval_cache(cfg, data)
    check_memory(cfg, data.shape, runtime.device, classes)
    generator = build_generator(cfg.model, data.shape, cfg, classes).to(runtime.device)
    discriminator = build_discriminator(cfg.model, data.shape, cfg, classes).to(runtime.device)
    if cfg.model.freeze_d:
        try:
            freeze_discriminator_blocks(discriminator, cfg.model.freeze_d)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    watcher = Tracker(cfg.doctor, context_from_config(to_dict(cfg)))
    scorer = LazyScorer(data, cfg, runtime.device, echo)
    sink = TensorBoardSink(RunDir(cfg.out).tensorboard) if cfg.log.tensorboard else None
    return trainer_class(cfg.model.arch)(cfg, data, generator, discriminator, runtime, watcher=watcher,
                                         scorer=scorer, echo=echo, hooks=hooks, sink=sink)


def check_labels(cfg: Config, data: DataSource) -> int:
    """The number of classes a conditional run trains on (0 otherwise); DataError when the labels cannot serve."""
    if not cfg.model.conditional:
        return 0
    if data.labels is None:
        raise DataError(f"model.conditional=true needs labels, but data.name={cfg.data.name} has none; use labelled "
                        "data (digits, fashion-mnist, mnist, npz with y, an image folder with one sub-folder per "
                        "class) or set model.conditional=false")
    if len(data.labels) != len(data) or int(data.labels.min()) < 0:
        raise DataError(f"the labels of data.name={cfg.data.name} do not fit its images ({len(data.labels)} labels "
                        f"for {len(data)} samples, smallest {int(data.labels.min())}); give one label 0..K-1 per sample")
    return data.num_classes


def check_data(cfg: Config, data: DataSource) -> None:
    """Held data must fill at least one batch (every D step takes a fresh batch of train.batch_size)."""
    if data.sampler is None and len(data) < cfg.train.batch_size:
        raise DataError(f"data set {cfg.data.name} has {len(data)} samples, fewer than one batch "
                        f"(train.batch_size={cfg.train.batch_size}); set train.batch_size to at most {len(data)} "
                        "or use more data")


#: Mean per-pixel spread (std across images, on the [-1, 1] scale) below which image data counts as having no
#: variation: 0.01 is about 1.3 grey levels of 255
MIN_IMAGE_SPREAD = 0.01


def check_variation(cfg: Config, data: DataSource) -> None:
    """Refuse held data with no variation (all samples identical or nearly): G has nothing to learn, the evaluator
    nothing to tell apart, and every diversity ratio or FD would divide by a spread of about zero."""
    if data.train is None or len(data) == 0:
        return
    spread = sample_spread(data.train)
    if data.kind == "points":
        floor = 1e-6 * max(1.0, float(data.train[:4096].abs().mean()))
        scale = "in data units"
    else:
        floor, scale = MIN_IMAGE_SPREAD, "on the [-1, 1] scale"
    if spread < floor:
        what = "images" if data.kind != "points" else "points"
        raise DataError(f"data set {cfg.data.name} has no variation: its {min(len(data), 4096)} first {what} are "
                        f"identical or nearly (mean spread {spread:.2g} {scale}, below {floor:.2g}), so a GAN learns "
                        "nothing and every metric would be meaningless; use data whose samples differ")


def check_eval_cache(cfg: Config, data: DataSource) -> None:
    """Image runs that evaluate need a writable evaluator cache folder: checked (and made) before step 1."""
    if data.kind == "points" or (not cfg.eval.final and cfg.eval.every == 0):
        return
    folder = Path(cfg.eval.cache_dir) if cfg.eval.cache_dir else default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"eval.cache_dir {str(folder)!r} cannot be used for the evaluator cache "
                          f"({exc.strerror or exc}); set eval.cache_dir (or GANSTAB_CACHE) to a writable folder, "
                          "or eval.final=false eval.every=0 to train without evaluation") from None


def check_memory(cfg: Config, shape: tuple[int, ...], device: torch.device, classes: int = 0) -> None:
    """Refuse G and D whose training state (16 bytes a parameter) exceeds the free memory, before allocating."""
    short = memory_shortfall(cfg, tuple(shape), available_memory(device), classes)
    if short is not None:
        raise ConfigError(f"G and D would hold {short.parameters:,} parameters, needing about {short.need / 1e9:.1f} "
                          f"GB to train (weights, gradients, Adam state) but {short.free / 1e9:.1f} GB of {device.type} "
                          "memory is available; make the model smaller (model.hidden, model.width, model.depth)")


def main_process() -> bool:
    """True outside torchrun and on its rank 0 (the process that owns the run folder)."""
    return int(os.environ.get("RANK", "0")) == 0


def _start(cfg: Config, out: Path, resume: bool, overwrite: bool, allow_config_change: bool,
           echo: Callable[[str], None], hooks: Optional[dict[str, Callable]]) -> Trainer:
    """A Trainer ready to run: resumed from the newest valid checkpoint, or on a prepared empty folder."""
    if resume:
        path = ckpt.newest_valid_checkpoint(RunDir(out).checkpoints, warn=echo)
        if path is None:
            raise CheckpointError(f"no valid checkpoint in {str(RunDir(out).checkpoints)!r} to resume from; "
                                  "start a new run without --resume")
        trainer = make_trainer(cfg, echo=echo, hooks=hooks)
        added = trainer.resume_from(path, allow_config_change)
        defaults = f"; keys newer than the run, at their defaults: {', '.join(added)}" if added else ""
        echo(f"resuming from {path.name} (step {trainer.step}){defaults}")
        return trainer
    if main_process():
        prepare_out_dir(out, overwrite, dry_run=True)  # refuse before any work
    trainer = make_trainer(cfg, echo=echo, hooks=hooks)  # data and models load before anything is removed
    if cfg.train.init_from:
        loaded = trainer.initialise_from(read_init_weights(cfg.train.init_from, warn=echo))
        frozen = f"; D's first {cfg.model.freeze_d} blocks frozen" if cfg.model.freeze_d else ""
        echo(f"fine-tuning from {cfg.train.init_from}: {loaded} loaded{frozen}")
    if main_process():
        prepare_out_dir(out, overwrite)
    parallel.barrier(trainer.dist)
    return trainer


#: The finding code of a phase that failed after the generator was exported
AFTER_TRAINING_CODE = "run.after_training_failed"

_FIXES = {"evaluation": "score the run with: ganstab eval --run {out}",
          "plots": "write them with: ganstab report {out}", "report": "write it with: ganstab report {out}",
          "sample grid": "draw samples with: ganstab sample --run {out} --out samples.png"}


def _fix(phase: str, out: Path) -> str:
    """What to run once the cause of a failed phase is fixed."""
    key = next((k for k in _FIXES if phase.endswith(k)), "evaluation")
    return _FIXES[key].format(out=out)


def _record_failures(out: Path, failures: list[PhaseFailure]) -> None:
    """One error finding per failed phase in findings.jsonl (the report and the doctor read them there)."""
    findings = [Finding(AFTER_TRAINING_CODE, "error", f.step, f.step,
                        message=f"the {f.phase} failed: {describe_failure(f.error)}", advice=f"Fix it, then "
                        f"{_fix(f.phase, out)}", metric=f.phase) for f in failures]
    append_jsonl(RunDir(out).findings, [finding.to_dict() for finding in findings])


def _failure_message(result: RunResult) -> str:
    """The one line for a run whose training is saved but a later phase failed."""
    first = result.failures[0]
    more = len(result.failures) - 1
    also = f" (and {more} more phase{'s' if more != 1 else ''}: see findings.jsonl)" if more else ""
    return (f"training reached step {result.steps} and the generator, checkpoints and metrics are saved in "
            f"{result.out}, but the {first.phase} failed: {describe_failure(first.error)}{also}; fix that, then "
            f"{_fix(first.phase, result.out)}")


def finish_run(trainer: Trainer, result: Optional[RunResult] = None) -> None:
    """After a completed or interrupted run (export written by the Trainer): plots and report; a failure of either
    (or of the Trainer's evaluation) becomes a finding, the report still tries, and AfterTrainingError follows."""
    failures = result.failures if result is not None else []
    if trainer.dist.is_main:
        if failures:
            _record_failures(trainer.out, failures)
        for phase, work in (("plots", plot_run), ("report", write_report)):
            try:
                work(trainer.out)
            except Exception as exc:  # the generator is exported: a plot or report failure must not hide that
                failure = PhaseFailure(phase, exc, trainer.step)
                failures.append(failure)
                _record_failures(trainer.out, [failure])
    parallel.barrier(trainer.dist)
    if result is not None and failures and trainer.dist.is_main:
        raise AfterTrainingError(_failure_message(result))


def train(cfg: Config, *, overwrite: bool = False, resume: bool = False, allow_config_change: bool = False,
          echo: Callable[[str], None] = print, hooks: Optional[dict[str, Callable]] = None) -> RunResult:
    """Run (or resume) training for a validated config, then export, plot and report; returns what was made."""
    check_config(cfg)
    if cfg.out is None:
        cfg.out = default_out(cfg)
    out = Path(cfg.out)
    lock: Optional[RunLock] = acquire_lock(out, echo) if main_process() else None  # before anything is read or cleared
    try:
        if not resume and cfg.train.resume == "auto" and ckpt.list_checkpoints(RunDir(out).checkpoints):
            resume = True
        trainer = _start(cfg, out, resume, overwrite, allow_config_change, echo, hooks)
        try:
            result = trainer.run()
            finish_run(trainer, result)  # an interrupted run gets its plots and report too
            return result
        finally:
            if trainer.sink is not None:
                trainer.sink.close()
            parallel.shutdown_distributed(trainer.dist)
    finally:
        if lock is not None:
            lock.release()


@dataclass(frozen=True)
class ExportScores:
    """An exported generator's scores on one reference split, with what they were measured with."""

    scores: dict[str, float]
    provenance: dict[str, Any]
    n: int
    seed: int
    test_accuracy: Optional[float]


def score_export(cfg: Config, generator: nn.Module, meta: dict[str, Any], device: torch.device, *,
                 n: Optional[int] = None, seed: Optional[int] = None, split: str = "test",
                 inception: Optional[InceptionFeatures] = None, echo: Callable[[str], None] = print) -> ExportScores:
    """Score a run's exported generator as training's final line on `split` does: the run's data, eval.n (unless
    `n`) and latent seed `training_eval_seed(cfg.seed, split)` (unless `seed`); `ganstab eval --run` prints it."""
    data = make_dataset(cfg.data, cfg.seed).to(device)
    n = n or cfg.eval.n
    classes = int(meta.get("num_classes") or 0)
    evaluator = RunEvaluator(data, n, device, cfg.eval.cache_dir, cfg.eval.evaluator_epochs, echo=echo,
                             evaluator_images=cfg.eval.evaluator_images, val_n=cfg.eval.val_n,
                             evaluator=cfg.eval.evaluator,
                             num_classes=classes, label_probs=run_label_distribution(cfg.model, data.labels, classes),
                             inception=inception)
    fixed_z = fixed_latents(cfg.seed, cfg.log.n_samples, cfg.model.latent_dim).to(device)
    seed = training_eval_seed(cfg.seed, split) if seed is None else seed
    scores = evaluator.evaluate(generator, cfg.model.latent_dim, meta.get("g_kwargs", {}), fixed_z, seed=seed,
                                split=split)
    return ExportScores(scores, evaluator.provenance(split), n, seed, evaluator.test_accuracy)
