"""The training loop: phases (D steps with their regularisers, G step, EMA) over built objects.

The Trainer receives built objects (data, G, D, the runtime, a watcher and an evaluator) and
owns no maths of its own: D's objective comes from `ganstab.losses.discriminator_objective`, the
penalties from `ganstab.penalties` (through `parallel.CriticPass`). Every source of randomness is
either a pure function of a counter (data batches) or a dedicated generator whose state is
checkpointed, so a resumed run continues exactly where it stopped. It writes metrics, findings,
samples, checkpoints and the exported generator (the final one and the best one); plots and the
report belong to `ganstab.pipeline`.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

import torch
from torch import Tensor, nn

from ganstab import losses, penalties
from ganstab.config import Config, to_dict
from ganstab.data import DataSource
from ganstab.errors import TrainingDiverged
from ganstab.export import generator_meta, save_generator
from ganstab.rundir import BEST_EVAL_FILE, RunDir, append_jsonl, atomic_write, write_config
from ganstab.sampling import generate, save_image_grid, save_scatter
from ganstab.training import checkpoint as ckpt
from ganstab.training import parallel
from ganstab.training.ema import ema_beta, make_ema, update_ema
from ganstab.training.optim import grad_norm, make_optimizer
from ganstab.training.recorder import Recorder, clean_record
from ganstab.training.progress import Progress
from ganstab.training.state import TrainerState

__all__ = ["Trainer", "RunResult", "Divergence", "Watcher", "RunScorer", "EventSink", "training_eval_seed"]


def training_eval_seed(seed: int) -> int:
    """The latent seed of every evaluation during and after training (`ganstab eval` defaults to it too)."""
    return seed + 3


class Watcher(Protocol):
    """What the loop needs of the stability doctor: new findings per logged line, a resumable state."""

    def update(self, record: dict[str, Any]) -> Sequence[Any]:
        """New findings (objects with severity, message, advice, start_step, end_step, is_divergence, to_dict)."""

    def state_dict(self) -> dict[str, Any]:
        """Plain state for checkpoints."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`."""


class EventSink(Protocol):
    """Where the loop mirrors its outputs besides the run folder's files (TensorBoard)."""

    def scalars(self, step: int, record: dict[str, Any]) -> None:
        """A logged training or evaluation line."""

    def text(self, step: int, tag: str, text: str) -> None:
        """A finding as text."""

    def image(self, step: int, tag: str, png: Path) -> None:
        """A sample grid or scatter plot written as PNG."""

    def close(self) -> None:
        """Flush and close."""


class RunScorer(Protocol):
    """What the loop needs of the evaluator: scores of a generator and which scores are better."""

    def evaluate(self, generator: nn.Module, latent_dim: int, g_kwargs: dict[str, Any],
                 fixed_z: Optional[Tensor] = None, seed: int = 0) -> dict[str, float]:
        """Metric name -> value for samples of `generator`."""

    def is_better(self, new: dict[str, float], best: Optional[dict[str, float]]) -> bool:
        """Whether `new` beats `best` on the main metric."""


@dataclass
class RunResult:
    """What a finished (or interrupted) run produced."""

    out: Path
    steps: int
    d_steps: int
    images_seen: int
    interrupted: bool = False
    last_record: dict = field(default_factory=dict)
    recoveries: int = 0


class Divergence(RuntimeError):
    """Raised inside the loop when losses or weights become non-finite or the doctor sees an explosion."""


class Trainer(TrainerState):
    """n_critic D steps and one G step per step, logging, sampling, checkpointing and recovering."""

    def __init__(self, cfg: Config, data: DataSource, generator: nn.Module, discriminator: nn.Module,
                 runtime: parallel.Runtime, *, watcher: Watcher, scorer: Optional[RunScorer] = None,
                 echo: Callable[[str], None] = print, hooks: Optional[dict[str, Callable]] = None,
                 sink: Optional[EventSink] = None) -> None:
        self.cfg = cfg
        self.sink = sink if runtime.dist.is_main else None
        self.echo = echo
        self.hooks = hooks or {}
        self.out = Path(cfg.out)
        self.run_dir = RunDir(self.out)
        self.device, self.dist = runtime.device, runtime.dist
        self.data, self.shape = data, data.shape
        self.G, self.D = self._prepare_networks(generator, discriminator)
        self.G_ema = make_ema(self.G) if cfg.train.ema > 0 else None
        self.G_net = parallel.wrap_ddp(self.G, self.dist, self.device)
        self.critic_net = parallel.wrap_ddp(parallel.CriticPass(self.D), self.dist, self.device)
        self.g_forward, self.d_forward = self.G_net, self.D
        if cfg.train.compile:
            self._compile()
        self.scaler_g = parallel.make_scaler(cfg.train.precision, self.device)
        self.scaler_d = parallel.make_scaler(cfg.train.precision, self.device)
        self.lr_scale = 1.0
        self.opt_g = make_optimizer(cfg.optim.name, self.G.parameters(), cfg.optim.g_lr, cfg.optim.g_betas)
        self.opt_d = make_optimizer(cfg.optim.name, self.D.parameters(), cfg.optim.d_lr, cfg.optim.d_betas)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        fixed = torch.Generator().manual_seed(cfg.seed + 2)
        self.fixed_z = torch.randn(cfg.log.n_samples, cfg.model.latent_dim, generator=fixed).to(self.device)
        self.step = self.d_steps = self.batch_index = self.images_seen = self.recoveries = 0
        self.elapsed = 0.0
        self.recorder = Recorder(self.run_dir.metrics)
        self.tracker = watcher
        self.scorer = scorer
        self.last_record: dict = {}
        self.best_eval: Optional[dict[str, float]] = None
        self._stop_signal: Optional[int] = None
        self._last_checkpoint_step = -1
        self._last_eval_step = -1
        self._pending_fake: Optional[Tensor] = None

    def _prepare_networks(self, generator: nn.Module, discriminator: nn.Module) -> tuple[nn.Module, nn.Module]:
        """SyncBN under DDP when asked for, channels_last for conv nets on CUDA."""
        if self.dist.active and self.cfg.train.sync_bn:
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
            discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
        self.memory_format = torch.preserve_format
        if self.device.type == "cuda" and len(self.shape) == 3:
            self.memory_format = torch.channels_last
            generator.to(memory_format=torch.channels_last)
            discriminator.to(memory_format=torch.channels_last)
        return generator, discriminator

    def _compile(self) -> None:
        """torch.compile G and D where supported; fall back to eager with a message otherwise."""
        saved = [{k: v.clone() for k, v in net.state_dict().items()} for net in (self.G, self.D)]
        try:
            g_compiled = torch.compile(self.G_net)
            d_compiled = torch.compile(self.D)
            kw = self.g_kwargs()
            with torch.no_grad():
                d_compiled(g_compiled(self.latent_local(2), **kw), **kw)
        except Exception as exc:  # compile support varies by platform and PyTorch build
            self.echo(f"train.compile: torch.compile is not supported here ({type(exc).__name__}); "
                      "continuing without it")
            return
        finally:
            for net, state in zip((self.G, self.D), saved):  # the probe must not move BN statistics
                net.load_state_dict(state)
        self.g_forward, self.d_forward = g_compiled, d_compiled

    # ----------------------------------------------------------------- inputs
    def g_kwargs(self) -> dict[str, Any]:
        """Extra arguments for G and D (the seam for progressive growing's resolution and alpha)."""
        return {}

    def _shard(self, tensor: Tensor) -> Tensor:
        """This rank's slice of a global batch."""
        if not self.dist.active:
            return tensor
        per = tensor.shape[0] // self.dist.world
        return tensor[self.dist.rank * per:(self.dist.rank + 1) * per]

    def real_batch(self) -> Tensor:
        """The next real batch (fresh for every D step; this rank's slice of the global batch)."""
        size = self.cfg.train.batch_size
        batch = self.data.rank_batch(self.batch_index, size, self.dist.rank, self.dist.world, self.device)
        self.batch_index += 1
        self.images_seen += size * self.dist.world
        return batch.contiguous(memory_format=self.memory_format) if batch.dim() == 4 else batch

    def latent(self, n: int) -> Tensor:
        """This rank's slice of n * world latent codes from the run's own generator (checkpointed)."""
        z = torch.randn(n * self.dist.world, self.cfg.model.latent_dim, device=self.device, generator=self.gen)
        return self._shard(z)

    def latent_local(self, n: int) -> Tensor:
        """Latent codes that do not advance the run's generator (for probes)."""
        return torch.randn(n, self.cfg.model.latent_dim, device=self.device)

    def gp_alpha(self, n: int) -> Tensor:
        """This rank's slice of the global interpolation coefficients for the gradient penalty."""
        return self._shard(torch.rand(n * self.dist.world, device=self.device, generator=self.gen))

    # ----------------------------------------------------------------- phases
    def _fakes_for_d(self, n: int, kw: dict[str, Any]) -> Tensor:
        """Fakes for the D step: no-grad, or kept for the G step when `train.reuse_fakes` applies."""
        precision = self.cfg.train.precision
        if self._reuse_fakes():
            with parallel.autocast(precision, self.device):
                self._pending_fake = self.g_forward(self.latent(n), **kw)
            return self._pending_fake.detach().float()  # D's loss does not reach G
        with torch.no_grad(), parallel.autocast(precision, self.device):
            return self.g_forward(self.latent(n), **kw).float()

    def d_step(self) -> None:
        """One D update: objective on a fresh real batch and no-grad fakes, step, then clipping."""
        cfg = self.cfg
        kw = self.g_kwargs()
        real = self.real_batch()
        fake = self._fakes_for_d(real.shape[0], kw)
        alpha = self.gp_alpha(real.shape[0]) if cfg.penalty.gp > 0 else None
        with parallel.autocast(cfg.train.precision, self.device):
            d_real, d_fake, gp, r1 = self.critic_net(
                real, fake, gp_alpha=alpha, gp_target=cfg.penalty.gp_target, r1=cfg.penalty.r1 > 0,
                scale=self._penalty_scale(), d_kwargs=kw)
            total, parts = losses.discriminator_objective(
                cfg.loss.kind, d_real, d_fake, cfg.loss.real_label, cfg.loss.fake_label, gp=gp,
                gp_weight=cfg.penalty.gp, r1=r1, r1_gamma=cfg.penalty.r1, drift_weight=cfg.penalty.drift)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(total).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        if cfg.penalty.clip > 0:
            penalties.clip_weights(self.D, cfg.penalty.clip)
        self.d_steps += 1
        for name, value in parts.items():
            self.recorder.record(name, value.detach())
        d_real, d_fake = d_real.detach().float(), d_fake.detach().float()
        self.recorder.record("d_real", d_real.mean())
        self.recorder.record("d_fake", d_fake.mean())
        self.recorder.record("d_acc", 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean()))

    def g_step(self) -> None:
        """One G update through a frozen D (D's parameters get no gradient; D is not DDP-synced here)."""
        cfg = self.cfg
        kw = self.g_kwargs()
        self.D.requires_grad_(False)
        try:
            with parallel.autocast(cfg.train.precision, self.device):
                fake, self._pending_fake = self._pending_fake, None
                if fake is None:
                    fake = self.g_forward(self.latent(cfg.train.batch_size), **kw)
                loss = losses.generator_loss(cfg.loss.kind, self.d_forward(fake, **kw))
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(loss).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        finally:
            self.D.requires_grad_(True)
        self.recorder.record("loss_g", loss.detach())
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_beta(cfg.train.batch_size * self.dist.world, cfg.train.ema))

    def train_step(self) -> None:
        """n_critic D steps, then one G step."""
        for _ in range(self.cfg.train.n_critic):
            self.d_step()
        self.g_step()
        self.step += 1

    def _penalty_scale(self) -> float | Tensor:
        """fp16: D's loss scale as a device tensor (no host sync), for the AMP gradient-penalty recipe."""
        if not self.scaler_d.is_enabled():
            return 1.0
        return self.scaler_d.scale(torch.ones((), device=self.device))

    def _reuse_fakes(self) -> bool:
        """With one D step per G step, G's forward is shared by both phases (as in DCGAN's reference)."""
        return self.cfg.train.reuse_fakes and self.cfg.train.n_critic == 1

    # ---------------------------------------------------------------- outputs
    def sampler_net(self) -> nn.Module:
        """The network used for samples: the EMA copy when enabled, else G."""
        return self.G_ema if self.G_ema is not None else self.G

    def log_line(self) -> dict[str, Any]:
        """Flush one metrics.jsonl line (the only host sync besides samples and checkpoints)."""
        fixed = {
            "step": self.step, "d_steps": self.d_steps, "images_seen": self.images_seen,
            "grad_norm_d": grad_norm(self.D).item(), "grad_norm_g": grad_norm(self.G).item(),
            "lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"],
            "time": round(self.elapsed, 3),
        }
        fixed.update(self.extra_log())
        if self.dist.active:
            means = parallel.all_reduce_mean(self.recorder.pending(), self.dist, self.device)
            self.recorder.load_state_dict({"sums": means, "counts": {k: 1 for k in means}})
        line = self.recorder.flush(fixed, write=self.dist.is_main)
        self.last_record = line
        if self.sink is not None:
            self.sink.scalars(self.step, line)
        return line

    def extra_log(self) -> dict[str, Any]:
        """Additional fixed values for each log line (progressive: resolution and alpha)."""
        return {}

    def save_samples(self) -> Path | None:
        """Sample grid (images) or scatter plot (points) from the fixed noise batch (rank 0 only)."""
        if not self.dist.is_main:
            return None
        samples = generate(self.sampler_net(), self.fixed_z, **self.g_kwargs())
        path = self.run_dir.sample(self.step)
        if self.data.kind == "points":
            save_scatter(samples, path, self.data.centers, title=f"step {self.step}")
        else:
            save_image_grid(samples, path)
        if self.sink is not None:
            self.sink.image(self.step, "samples", path)
        return path

    def export(self, folder: Optional[Path] = None, interrupted: bool = False) -> Path:
        """Write the sampling network (EMA weights when enabled) as generator.safetensors + generator.json."""
        meta = generator_meta(self.cfg, self.shape, self.data.kind, self.G_ema is not None, self.step,
                              self.images_seen, self.g_kwargs(), interrupted=interrupted)
        return save_generator(folder if folder is not None else self.out, self.sampler_net(), meta)

    def evaluate(self) -> Optional[dict[str, Any]]:
        """Score the sampling network (rank 0), log an `eval_` line, keep the best export in best/."""
        if not self.dist.is_main or self.scorer is None:
            return None
        cfg = self.cfg
        scores = self.scorer.evaluate(self.sampler_net(), cfg.model.latent_dim, self.g_kwargs(), self.fixed_z,
                                      seed=training_eval_seed(cfg.seed))
        line = clean_record({"step": self.step, "images_seen": self.images_seen, "time": round(self.elapsed, 3),
                             **{f"eval_{k}": v for k, v in scores.items()}})
        self.recorder.write(line)
        if self.sink is not None:
            self.sink.scalars(self.step, line)
        self._last_eval_step = self.step
        if self.scorer.is_better(scores, self.best_eval):
            self.best_eval = dict(scores, step=self.step)
            self.export(self.run_dir.best)
            atomic_write(self.run_dir.best / BEST_EVAL_FILE, json.dumps(self.best_eval, indent=2))
        try:
            self.observe(line)
        except Divergence:
            pass  # evaluation findings never trigger a rollback
        return line

    def observe(self, line: dict[str, Any]) -> None:
        """Feed a logged line to the doctor; print and store new findings; raise on divergence."""
        findings = self.tracker.update(line)
        if not findings:
            return
        if self.dist.is_main:
            append_jsonl(self.run_dir.findings, [finding.to_dict() for finding in findings])
            for finding in findings:
                self.echo(f"doctor: {finding.severity} at steps {finding.start_step}-{finding.end_step}: "
                          f"{finding.message} Advice: {finding.advice}")
                if self.sink is not None:
                    self.sink.text(self.step, "findings", f"**{finding.severity}** at steps {finding.start_step}-"
                                   f"{finding.end_step}: {finding.message} Advice: {finding.advice}")
        diverged = [f for f in findings if f.is_divergence]
        if diverged:
            raise Divergence(diverged[0].message)

    def check_finite(self, line: dict[str, Any]) -> None:
        """Raise Divergence on a non-finite logged value or weight."""
        if line.get("nonfinite"):
            raise Divergence(f"non-finite {', '.join(line['nonfinite'])} at step {self.step}")
        for name, net in (("G", self.G), ("D", self.D)):
            if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
                raise Divergence(f"non-finite weights in {name} at step {self.step}")

    # ---------------------------------------------------------------- running
    def before_step(self) -> None:
        """Hook run before every step (progressive growing updates its schedule here)."""

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum

    def _out_of_time(self) -> bool:
        """True once `train.time_budget` seconds of training have been spent (0: no budget)."""
        budget = self.cfg.train.time_budget
        if not budget:
            return False
        return parallel.any_rank(self.elapsed >= budget, self.dist, self.device)

    def _guarded(self, check: Callable[[], None]) -> bool:
        """Run a divergence check; on Divergence roll back (or stop) and return False."""
        try:
            check()
        except Divergence as exc:
            self.recover_or_stop(exc)
            return False
        return True

    def _after_step(self, out_of_time: bool) -> bool:
        """Log, diagnose, sample, evaluate and checkpoint on their intervals; False after a rollback."""
        cfg = self.cfg
        on_interval = self.step % cfg.log.every == 0
        last = self.step == cfg.train.steps or out_of_time
        if not on_interval and last:
            self.save_checkpoint()  # with the pending log sums, before the off-interval flush
        if on_interval or last:
            line = self.log_line()
            if not self._guarded(lambda: (self.observe(line), self.check_finite(line))):
                return False
            self.progress.update(self, line)
        if self.step % cfg.log.sample_every == 0:
            self.save_samples()
        if cfg.eval.every and self.step % cfg.eval.every == 0:
            self.evaluate()
        if self.step % cfg.log.checkpoint_every == 0 and self._last_checkpoint_step != self.step:
            if not self._guarded(lambda: self.check_finite({})):  # never checkpoint a diverged state
                return False
            self.save_checkpoint()
        return True

    def _train_until_done(self) -> bool:
        """The step loop; True when a signal stopped it."""
        cfg = self.cfg
        if self.step == 0 and not ckpt.list_checkpoints(self.run_dir.checkpoints):
            self.save_checkpoint()  # a point to recover to
        t_last = time.perf_counter()
        out_of_time = self._out_of_time()  # one check per step (an all-reduce under DDP)
        while self.step < cfg.train.steps and not out_of_time:
            self.before_step()
            self.train_step()
            if "after_step" in self.hooks:
                self.hooks["after_step"](self)
            now = time.perf_counter()
            self.elapsed += now - t_last
            out_of_time = self._out_of_time()
            if not self._after_step(out_of_time):
                out_of_time = self._out_of_time()  # the rollback restored an earlier elapsed time
                t_last = time.perf_counter()
                continue
            self.progress.advance()
            if parallel.any_rank(self._stop_signal is not None, self.dist, self.device):
                self._stop_signal = self._stop_signal or signal.SIGTERM
                return True
            t_last = time.perf_counter()
        return False

    def run(self) -> RunResult:
        """Train until `train.steps` G steps (or the time budget or a signal); final samples and checkpoint."""
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_config(self.out, self.cfg)
        parallel.barrier(self.dist)
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in previous:
                signal.signal(s, self._on_signal)
        except ValueError:  # not in the main thread
            previous = {}
        self.progress = Progress(self.cfg.train.steps, self.step, self.cfg.log.progress and self.dist.is_main,
                                 terminal=sys.stderr.isatty(), echo=self.echo,
                                 every_seconds=self.cfg.log.progress_seconds)
        try:
            interrupted = self._train_until_done()
        finally:
            self.progress.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        if interrupted:
            self._stop_interrupted()
        else:
            self._finish_training()
        return RunResult(self.out, self.step, self.d_steps, self.images_seen, interrupted, self.last_record,
                         self.recoveries)

    def _stop_interrupted(self) -> None:
        """After SIGINT/SIGTERM: a checkpoint at this step and a line saying how to resume."""
        if self._last_checkpoint_step != self.step:
            self.save_checkpoint()
        if self.step % self.cfg.log.every != 0:
            self.log_line()
        if self.dist.is_main:
            self.export(interrupted=True)
            name = signal.Signals(self._stop_signal).name
            self.echo(f"stopped by {name} at step {self.step}; checkpoint and generator saved. "
                      f"Resume with: ganstab train --resume {self.out}")

    def _finish_training(self) -> None:
        """Final samples, checkpoint, evaluation and exported generator (plots and report: the pipeline)."""
        self.save_samples()
        if self._last_checkpoint_step != self.step:
            self.save_checkpoint()
        if self.cfg.eval.final and self._last_eval_step != self.step:
            self.evaluate()
        if self.dist.is_main:
            self.export()
        parallel.barrier(self.dist)

    # --------------------------------------------------------------- recovery
    def recover_or_stop(self, exc: Divergence) -> None:
        """Roll back after a divergence, or stop with TrainingDiverged when recovery is not possible."""
        if not self._recover(str(exc)):
            raise TrainingDiverged(self._give_up_message(str(exc))) from None

    def _recover(self, reason: str) -> bool:
        """Roll back to the newest valid checkpoint and scale both lrs; False when not possible."""
        cfg = self.cfg
        if not cfg.train.recover or self.recoveries >= cfg.train.max_recoveries:
            return False
        path = ckpt.newest_valid_checkpoint(self.run_dir.checkpoints, warn=self.echo)
        if path is None:
            return False
        recoveries, lr_scale = self.recoveries + 1, self.lr_scale * cfg.train.recover_lr_factor
        self.restore(ckpt.load_checkpoint(path, map_location=self.device), drop_findings=False)
        self.recoveries, self.lr_scale = recoveries, lr_scale
        self.apply_lr_scale()
        lr_g, lr_d = self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"]
        if self.dist.is_main:
            self.echo(f"recovery {recoveries}/{cfg.train.max_recoveries}: {reason}; rolled back to step {self.step} "
                      f"and scaled both learning rates by {cfg.train.recover_lr_factor} "
                      f"(lr_g={lr_g:.3g}, lr_d={lr_d:.3g})")
            append_jsonl(self.run_dir.recoveries, [{"step": self.step, "reason": reason, "lr_scale": lr_scale,
                                                    "lr_g": lr_g, "lr_d": lr_d}])
        return True

    def _give_up_message(self, reason: str) -> str:
        if not self.cfg.train.recover:
            why = "automatic recovery is off (train.recover=false)"
        elif self.recoveries >= self.cfg.train.max_recoveries:
            why = f"after {self.recoveries} recoveries (train.max_recoveries={self.cfg.train.max_recoveries})"
        else:
            why = "no valid checkpoint to roll back to"
        return (f"training diverged: {reason.rstrip('.')}; stopped {why}. Try lower learning rates "
                f"(optim.g_lr/optim.d_lr), loss.kind=hinge with model.d_norm=spectral, or penalty.gp=10; "
                f"see 'ganstab doctor {self.out}'")

    def apply_lr_scale(self) -> None:
        """Set both optimisers' lrs to the configured lrs times the recovery scale."""
        for opt, base in ((self.opt_g, self.cfg.optim.g_lr), (self.opt_d, self.cfg.optim.d_lr)):
            for group in opt.param_groups:
                group["lr"] = base * self.lr_scale
