"""The training loop: phases (D steps, D regularisers, G step, EMA) composed from the pure pieces.

It owns no maths of its own: losses come from `ganstab.losses`, penalties from
`ganstab.penalties`. Every source of randomness is either a pure function of a counter (data
batches) or a dedicated generator whose state is checkpointed, so a resumed run continues
exactly where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from ganstab import losses, penalties
from ganstab.config import Config, ConfigError, default_out, dump_yaml, to_dict, validate
from ganstab.data import DataSource, make_dataset
from ganstab.errors import CheckpointError, TrainingDiverged
from ganstab.models import build_discriminator, build_generator
from ganstab.sampling import generate, save_image_grid, save_scatter
from ganstab.train import checkpoint as ckpt
from ganstab.train.ema import ema_beta, make_ema, update_ema
from ganstab.train import parallel
from ganstab.train.recorder import Recorder, clean_record, read_metrics, truncate_metrics

if TYPE_CHECKING:
    from ganstab.diagnose import Tracker

# Config keys that may change between a checkpoint and its resume without a flag.
SAFE_TO_CHANGE = ("train.steps", "train.time_budget", "log.", "eval.", "train.device", "train.threads", "out",
                  "train.recover", "train.max_recoveries", "train.resume")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; other names as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is available; use train.device=cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={name} but MPS is not available; use train.device=cpu or auto")
    return device


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts, as 'key: old -> new'."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_diff(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _is_safe(change: str) -> bool:
    key = change.split(":", 1)[0]
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_TO_CHANGE)


def grad_norm(module: nn.Module) -> Tensor:
    """Total L2 norm of the gradients of a module's parameters (0 when none)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def make_optimizer(name: str, params: Iterable[nn.Parameter], lr: float,
                   betas: tuple[float, float]) -> torch.optim.Optimizer:
    """Adam (with its own lr/betas per network: TTUR) or RMSProp (the WGAN-clip recipe)."""
    params = list(params)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    try:  # one fused kernel per step (CUDA, and the CPU since PyTorch 2.4)
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), foreach=True)


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
    """Raised inside the loop when losses or weights become non-finite."""


class Trainer:
    """Builds data, models and optimisers from a config and runs the phases."""

    def __init__(self, cfg: Config, *, echo: Callable[[str], None] = print,
                 hooks: Optional[dict[str, Callable]] = None) -> None:
        self.cfg = cfg
        self.echo = echo
        self.hooks = hooks or {}
        if cfg.out is None:
            cfg.out = default_out(cfg)
        self.out = Path(cfg.out)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True)
        self.device = resolve_device(cfg.train.device)
        self.dist = parallel.init_distributed(self.device)
        if self.dist.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if cfg.train.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
        torch.manual_seed(cfg.seed)
        self.data: DataSource = make_dataset(cfg.data, cfg.seed).to(self.device)
        self.shape = self.data.shape
        for note in self.data.notes:
            if self.dist.is_main:
                echo(note)
        self.G = build_generator(cfg.model, self.shape, cfg).to(self.device)
        self.D = build_discriminator(cfg.model, self.shape, cfg).to(self.device)
        if self.dist.active and cfg.train.sync_bn:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        self.memory_format = torch.preserve_format
        if self.device.type == "cuda" and len(self.shape) == 3:
            self.memory_format = torch.channels_last
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
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
        self.step = 0
        self.d_steps = 0
        self.batch_index = 0
        self.images_seen = 0
        self.recoveries = 0
        self.elapsed = 0.0
        self.recorder = Recorder(self.out / "metrics.jsonl")
        self.tracker = self.make_tracker()
        self.last_record: dict = {}
        self._stop_signal: Optional[int] = None
        self._last_checkpoint_step = -1
        self._run_evaluator = None
        self._pending_fake: Optional[Tensor] = None
        self.best_eval: Optional[dict[str, float]] = None
        self._last_eval_step = -1

    def make_tracker(self) -> "Tracker":
        """The stability doctor that watches every logged line."""
        from ganstab.config import doctor_config
        from ganstab.diagnose import Tracker, context_from_config

        return Tracker(doctor_config(self.cfg), context_from_config(to_dict(self.cfg)))

    # ----------------------------------------------------------------- phases
    def g_kwargs(self) -> dict[str, Any]:
        """Extra arguments for G and D (the seam for progressive growing's resolution and alpha)."""
        return {}

    def _compile(self) -> None:
        """torch.compile G and D where supported; fall back to eager with a message otherwise."""
        saved = [{k: v.clone() for k, v in net.state_dict().items()} for net in (self.G, self.D)]
        try:
            g_compiled = torch.compile(self.G_net)
            d_compiled = torch.compile(self.D)
            kw = self.g_kwargs()
            with torch.no_grad():
                fake = g_compiled(self.latent_local(2), **kw)
                d_compiled(fake, **kw)
        except Exception as exc:  # compile support varies by platform and PyTorch build
            self.echo(f"train.compile: torch.compile is not supported here ({type(exc).__name__}); "
                      "continuing without it")
            return
        finally:
            for net, state in zip((self.G, self.D), saved):  # the probe must not move BN statistics
                net.load_state_dict(state)
        self.g_forward, self.d_forward = g_compiled, d_compiled

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

    def d_step(self) -> None:
        """One D update: loss on a fresh real batch and no-grad fakes, regularisers, step, clipping."""
        cfg = self.cfg
        kw = self.g_kwargs()
        real = self.real_batch()
        precision = cfg.train.precision
        if self._reuse_fakes():
            with parallel.autocast(precision, self.device):
                self._pending_fake = self.g_forward(self.latent(real.shape[0]), **kw)
            fake = self._pending_fake.detach().float()  # D's loss does not reach G
        else:
            with torch.no_grad(), parallel.autocast(precision, self.device):
                fake = self.g_forward(self.latent(real.shape[0]), **kw).float()
        alpha = self.gp_alpha(real.shape[0]) if cfg.penalty.gp > 0 else None
        with parallel.autocast(precision, self.device):
            d_real, d_fake, gp, r1 = self.critic_net(
                real, fake, gp_alpha=alpha, gp_target=cfg.penalty.gp_target, r1=cfg.penalty.r1 > 0,
                scale=self._penalty_scale(), d_kwargs=kw)
            loss = losses.discriminator_loss(cfg.loss.kind, d_real, d_fake, cfg.loss.real_label, cfg.loss.fake_label)
            total = loss
            if gp is not None:
                total = total + cfg.penalty.gp * gp
                self.recorder.record("gp", gp.detach())
            if r1 is not None:
                total = total + 0.5 * cfg.penalty.r1 * r1
                self.recorder.record("r1", r1.detach())
            if cfg.penalty.drift > 0:
                drift = losses.drift_penalty(d_real)
                total = total + cfg.penalty.drift * drift
                self.recorder.record("drift", drift.detach())
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(total).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        if cfg.penalty.clip > 0:
            penalties.clip_weights(self.D, cfg.penalty.clip)
        self.d_steps += 1
        d_real, d_fake = d_real.detach().float(), d_fake.detach().float()
        self.recorder.record("loss_d", loss.detach())
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

    def _out_of_time(self) -> bool:
        """True once `train.time_budget` seconds of training have been spent (0: no budget)."""
        budget = self.cfg.train.time_budget
        if not budget:
            return False
        return parallel.any_rank(self.elapsed >= budget, self.dist, self.device)

    def _penalty_scale(self) -> float | Tensor:
        """fp16: D's loss scale as a device tensor (no host sync), for the AMP gradient-penalty recipe."""
        if not self.scaler_d.is_enabled():
            return 1.0
        return self.scaler_d.scale(torch.ones((), device=self.device))

    def _reuse_fakes(self) -> bool:
        """With one D step per G step, G's forward is shared by both phases (as in DCGAN's reference)."""
        return self.cfg.train.reuse_fakes and self.cfg.train.n_critic == 1

    def train_step(self) -> None:
        """n_critic D steps, then one G step."""
        for _ in range(self.cfg.train.n_critic):
            self.d_step()
        self.g_step()
        self.step += 1

    # ---------------------------------------------------------------- logging
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
        return line

    def extra_log(self) -> dict[str, Any]:
        """Additional fixed values for each log line (progressive: resolution and alpha)."""
        return {}

    def save_samples(self) -> Path | None:
        """Sample grid (images) or scatter plot (points) from the fixed noise batch (rank 0 only)."""
        if not self.dist.is_main:
            return None
        samples = generate(self.sampler_net(), self.fixed_z, **self.g_kwargs())
        path = self.out / "samples" / f"step_{self.step:07d}.png"
        if self.data.kind == "points":
            return save_scatter(samples, path, self.data.centers, title=f"step {self.step}")
        return save_image_grid(samples, path)

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything needed to continue as if never stopped."""
        return {
            "step": self.step, "d_steps": self.d_steps, "batch_index": self.batch_index,
            "images_seen": self.images_seen, "elapsed": self.elapsed, "recoveries": self.recoveries,
            "lr_scale": self.lr_scale,
            "g": self.G.state_dict(), "d": self.D.state_dict(),
            "g_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "gen": self.gen.get_state(), "rng": ckpt.rng_state(),
            "recorder": self.recorder.state_dict(), "doctor": self.tracker.state_dict(),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "best_eval": self.best_eval,
            "config": to_dict(self.cfg),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state written by `state()` (architecture mismatches -> CheckpointError)."""
        try:
            self.G.load_state_dict(state["g"])
            self.D.load_state_dict(state["d"])
            if self.G_ema is not None:
                if state.get("g_ema") is None:
                    raise CheckpointError("the checkpoint has no EMA generator but train.ema is set")
                self.G_ema.load_state_dict(state["g_ema"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(
                f"the checkpoint does not fit this model ({str(exc).splitlines()[0][:100]}); "
                "it was written for another architecture or data shape"
            ) from None
        self.step = int(state["step"])
        self.d_steps = int(state["d_steps"])
        self.batch_index = int(state["batch_index"])
        self.images_seen = int(state["images_seen"])
        self.elapsed = float(state["elapsed"])
        self.recoveries = int(state.get("recoveries", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.gen.set_state(state["gen"].to(self.gen.get_state().device))
        ckpt.set_rng_state(state["rng"])
        self.recorder.load_state_dict(state.get("recorder", {}))
        self.best_eval = state.get("best_eval")
        for name, scaler in (("scaler_g", self.scaler_g), ("scaler_d", self.scaler_d)):
            if state.get(name) and scaler.is_enabled():
                scaler.load_state_dict(state[name])
        if state.get("doctor"):
            self.tracker.load_state_dict(state["doctor"])

    def save_checkpoint(self) -> Path:
        """Write the current state atomically and keep the newest `log.keep_checkpoints`."""
        self._last_checkpoint_step = self.step
        path = ckpt.checkpoint_path(self.out / "checkpoints", self.step)
        if self.dist.is_main:
            path = ckpt.save_checkpoint(self.out / "checkpoints", self.step, self.state(),
                                        self.cfg.log.keep_checkpoints)
        parallel.barrier(self.dist)
        return path

    def resume_from(self, path: Path, allow_config_change: bool = False) -> None:
        """Load a checkpoint, refusing a changed config unless allowed or only safe keys changed."""
        state = ckpt.load_checkpoint(path, map_location=self.device)
        changes = config_diff(state.get("config", {}), to_dict(self.cfg))
        unsafe = [c for c in changes if not _is_safe(c)]
        if unsafe and not allow_config_change:
            raise CheckpointError(
                "the config differs from the checkpoint's (" + "; ".join(unsafe[:5])
                + (f"; +{len(unsafe) - 5} more" if len(unsafe) > 5 else "")
                + "); pass --allow-config-change to resume anyway"
            )
        self.load_state(state)
        if self.dist.is_main:
            truncate_metrics(self.out / "metrics.jsonl", self.step, self.cfg.log.every)
            truncate_findings(self.out / "findings.jsonl", self.step)
        parallel.barrier(self.dist)

    # ---------------------------------------------------------------- running
    def _check_finite(self, line: dict[str, Any]) -> None:
        if line.get("nonfinite"):
            raise Divergence(f"non-finite {', '.join(line['nonfinite'])} at step {self.step}")
        for name, net in (("G", self.G), ("D", self.D)):
            if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
                raise Divergence(f"non-finite weights in {name} at step {self.step}")

    def observe(self, line: dict[str, Any]) -> None:
        """Feed a logged line to the doctor; print and store new findings; raise on divergence."""
        from ganstab.diagnose import is_divergence

        findings = self.tracker.update(line)
        if not findings:
            return
        if self.dist.is_main:
            with open(self.out / "findings.jsonl", "a", encoding="utf-8") as fh:
                for finding in findings:
                    fh.write(json.dumps(finding.to_dict()) + "\n")
        for finding in findings:
            if self.dist.is_main:
                self.echo(f"doctor: {finding.severity} at steps {finding.start_step}-{finding.end_step}: "
                          f"{finding.message} Advice: {finding.advice}")
        diverged = [f for f in findings if is_divergence(f)]
        if diverged:
            raise Divergence(diverged[0].message)

    def _recover(self, reason: str) -> bool:
        """Roll back to the newest valid checkpoint and scale both lrs; False when not possible."""
        cfg = self.cfg
        if not cfg.train.recover or self.recoveries >= cfg.train.max_recoveries:
            return False
        path = ckpt.newest_valid_checkpoint(self.out / "checkpoints", warn=self.echo)
        if path is None:
            return False
        recoveries = self.recoveries + 1
        lr_scale = self.lr_scale * cfg.train.recover_lr_factor
        state = ckpt.load_checkpoint(path, map_location=self.device)
        self.load_state(state)
        if self.dist.is_main:
            truncate_metrics(self.out / "metrics.jsonl", self.step, self.cfg.log.every)
        self.recoveries = recoveries
        self.lr_scale = lr_scale
        self.apply_lr_scale()
        message = (f"recovery {recoveries}/{cfg.train.max_recoveries}: {reason}; rolled back to step {self.step} "
                   f"and scaled both learning rates by {cfg.train.recover_lr_factor} "
                   f"(lr_g={self.opt_g.param_groups[0]['lr']:.3g}, lr_d={self.opt_d.param_groups[0]['lr']:.3g})")
        if not self.dist.is_main:
            return True
        self.echo(message)
        with open(self.out / "recoveries.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": self.step, "reason": reason, "lr_scale": lr_scale,
                                 "lr_g": self.opt_g.param_groups[0]["lr"],
                                 "lr_d": self.opt_d.param_groups[0]["lr"]}) + "\n")
        return True

    def _recover_or_stop(self, exc: Divergence) -> None:
        """Roll back after a divergence, or stop with TrainingDiverged when recovery is not possible."""
        if not self._recover(str(exc)):
            raise TrainingDiverged(self._give_up_message(str(exc))) from None

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

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    def run(self) -> RunResult:
        """Train until `train.steps` G steps, logging, sampling and checkpointing on their intervals."""
        cfg = self.cfg
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
        parallel.barrier(self.dist)
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in previous:
                signal.signal(s, self._on_signal)
        except ValueError:  # not in the main thread
            previous = {}
        bar = None
        if cfg.log.progress and sys.stderr.isatty() and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=cfg.train.steps, initial=self.step, unit="step", dynamic_ncols=True)
        interrupted = False
        try:
            if self.step == 0 and not ckpt.list_checkpoints(self.out / "checkpoints"):
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
                t_last = now
                out_of_time = self._out_of_time()
                on_interval = self.step % cfg.log.every == 0
                last = self.step == cfg.train.steps or out_of_time
                if not on_interval and last:
                    self.save_checkpoint()  # with the pending log sums, before the off-interval flush
                if on_interval or last:
                    line = self.log_line()
                    try:
                        self.observe(line)
                        self._check_finite(line)
                    except Divergence as exc:
                        self._recover_or_stop(exc)
                        out_of_time = self._out_of_time()  # the rollback restored an earlier elapsed time
                        t_last = time.perf_counter()
                        continue
                    self.after_log(line)
                    if bar is not None:
                        bar.set_postfix(loss_d=f"{line.get('loss_d') or 0:.3f}",
                                        loss_g=f"{line.get('loss_g') or 0:.3f}",
                                        img_s=f"{self.images_seen / max(self.elapsed, 1e-9):.0f}")
                if self.step % cfg.log.sample_every == 0:
                    self.save_samples()
                if cfg.eval.every and self.step % cfg.eval.every == 0:
                    self.evaluate()
                if self.step % cfg.log.checkpoint_every == 0 and self._last_checkpoint_step != self.step:
                    try:
                        self._check_finite({})  # never checkpoint a diverged state
                    except Divergence as exc:
                        self._recover_or_stop(exc)
                        out_of_time = self._out_of_time()  # the rollback restored an earlier elapsed time
                        t_last = time.perf_counter()
                        continue
                    self.save_checkpoint()
                if bar is not None:
                    bar.update(1)
                if parallel.any_rank(self._stop_signal is not None, self.dist, self.device):
                    self._stop_signal = self._stop_signal or signal.SIGTERM
                    interrupted = True
                    break
                t_last = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.recorder.close()
        if interrupted:
            if self._last_checkpoint_step != self.step:
                self.save_checkpoint()
            if self.step % cfg.log.every != 0:
                self.log_line()
            name = signal.Signals(self._stop_signal).name
            if self.dist.is_main:
                self.echo(f"stopped by {name} at step {self.step}; checkpoint saved. "
                          f"Resume with: ganstab train --resume {self.out}")
            return RunResult(self.out, self.step, self.d_steps, self.images_seen, True, self.last_record,
                             self.recoveries)
        self.finish()
        return RunResult(self.out, self.step, self.d_steps, self.images_seen, False, self.last_record,
                         self.recoveries)

    def evaluate(self) -> Optional[dict[str, Any]]:
        """Score the sampling network (rank 0), log an `eval_` line, keep the best export in best/."""
        if not self.dist.is_main:
            return None
        from ganstab.evaluation import RunEvaluator

        cfg = self.cfg
        if self._run_evaluator is None:
            self._run_evaluator = RunEvaluator(self.data, cfg.eval.n, self.device, cfg.eval.cache_dir,
                                               cfg.eval.evaluator_epochs, echo=self.echo)
        scores = self._run_evaluator.evaluate(self.sampler_net(), cfg.model.latent_dim, self.g_kwargs(),
                                              self.fixed_z, seed=cfg.seed + 3)
        line = clean_record({"step": self.step, "images_seen": self.images_seen, "time": round(self.elapsed, 3),
                             **{f"eval_{k}": v for k, v in scores.items()}})
        self.recorder.write(line)
        self._last_eval_step = self.step
        if self._run_evaluator.is_better(scores, self.best_eval):
            self.best_eval = dict(scores, step=self.step)
            export_generator(self, self.out / "best")
            ckpt.atomic_write_bytes(self.out / "best" / "eval.json", json.dumps(self.best_eval, indent=2).encode())
        try:
            self.observe(line)
        except Divergence:
            pass  # evaluation findings never trigger a rollback
        return line

    def before_step(self) -> None:
        """Hook run before every step (progressive growing updates its schedule here)."""

    def after_log(self, line: dict[str, Any]) -> None:
        """Hook run after each log line (evaluation and diagnostics attach here)."""

    def finish(self) -> None:
        """Final samples, checkpoint and exported generator."""
        from ganstab.report.plots import plot_run
        from ganstab.report.html import write_report

        self.save_samples()
        if self._last_checkpoint_step != self.step:
            self.save_checkpoint()
        if self.cfg.eval.final and self._last_eval_step != self.step:
            self.evaluate()
        if self.dist.is_main:
            export_generator(self)
            plot_run(self.out)
            write_report(self.out)
        parallel.barrier(self.dist)


def truncate_findings(path: Path, last_step: int) -> None:
    """Drop findings that start after `last_step` (they belong to the discarded part of the run)."""
    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line).get("start_step", 0)) <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
            continue
    ckpt.atomic_write_bytes(path, ("\n".join(kept) + ("\n" if kept else "")).encode())


def export_generator(trainer: Trainer, folder: Optional[Path] = None) -> Path:
    """Write generator.safetensors (EMA weights when enabled) plus generator.json (its config)."""
    from safetensors.torch import save_file

    folder = Path(folder) if folder is not None else trainer.out
    folder.mkdir(parents=True, exist_ok=True)
    net = trainer.sampler_net()
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    path = folder / "generator.safetensors"
    tmp = path.with_name(".generator.safetensors.tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    meta = {"format": "ganstab-generator-1", "model": to_dict(trainer.cfg)["model"],
            "data": {"name": trainer.cfg.data.name, "shape": list(trainer.shape), "kind": trainer.data.kind},
            "progressive": to_dict(trainer.cfg).get("progressive"),
            "ema": trainer.G_ema is not None, "step": trainer.step, "images_seen": trainer.images_seen,
            "g_kwargs": trainer.g_kwargs()}
    ckpt.atomic_write_bytes(folder / "generator.json", json.dumps(meta, indent=2).encode())
    return path


def prepare_out_dir(out: Path, overwrite: bool, dry_run: bool = False) -> None:
    """Refuse an output folder that holds another run unless overwrite is set (then it is cleared)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"output path {str(out)!r} is a file; choose another out=DIR")
    holds_run = out.is_dir() and any((out / name).exists() for name in ("config.yaml", "metrics.jsonl", "checkpoints"))
    if holds_run:
        if not overwrite:
            raise CheckpointError(
                f"output directory {str(out)!r} already holds a run; pass --overwrite to replace it, "
                f"--resume {out} to continue it, or choose another out=DIR"
            )
        if dry_run:
            return
        for name in ("config.yaml", "metrics.jsonl", "findings.jsonl", "recoveries.jsonl", "checkpoints",
                     "samples", "plots", "generator.safetensors", "generator.json", "report.html", "best"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


def make_trainer(cfg: Config, **kwargs) -> Trainer:
    """The Trainer class for this config (progressive growing plugs in its own subclass)."""
    from ganstab.train import TRAINERS
    from ganstab.train import progressive  # noqa: F401  (registers its Trainer)

    cls = TRAINERS.get(cfg.model.arch, Trainer)
    return cls(cfg, **kwargs)


def train(cfg: Config, *, overwrite: bool = False, resume: bool = False, allow_config_change: bool = False,
          echo: Callable[[str], None] = print, hooks: Optional[dict[str, Callable]] = None) -> RunResult:
    """Run (or resume) training for a validated config; returns what was produced."""
    if cfg.out is None:
        cfg.out = default_out(cfg)
    out = Path(cfg.out)
    if not resume and cfg.train.resume == "auto" and ckpt.list_checkpoints(out / "checkpoints"):
        resume = True
    if resume:
        path = ckpt.newest_valid_checkpoint(out / "checkpoints", warn=echo)
        if path is None:
            raise CheckpointError(f"no valid checkpoint in {str(out / 'checkpoints')!r} to resume from; "
                                  "start a new run without --resume")
        trainer = make_trainer(cfg, echo=echo, hooks=hooks)
        trainer.resume_from(path, allow_config_change)
        echo(f"resuming from {path.name} (step {trainer.step})")
    else:
        main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 owns the folder
        if main_process:
            prepare_out_dir(out, overwrite, dry_run=True)  # refuse before any work
        trainer = make_trainer(cfg, echo=echo, hooks=hooks)  # data and models load before anything is removed
        if main_process:
            prepare_out_dir(out, overwrite)
        parallel.barrier(trainer.dist)
    try:
        return trainer.run()
    finally:
        parallel.shutdown_distributed(trainer.dist)


def load_run_config(run_dir: Path) -> Config:
    """The validated config of an existing run directory."""
    from ganstab.config import read_yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{str(run_dir)!r} is not a ganstab run directory (no config.yaml)")
    return validate(read_yaml(path))


def metrics_of(run_dir: Path) -> list[dict[str, Any]]:
    """All metrics.jsonl records of a run."""
    return read_metrics(Path(run_dir) / "metrics.jsonl")
