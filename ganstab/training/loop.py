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

import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from ganstab import losses, penalties
from ganstab.augment import AdaController, parse_policy
from ganstab.config import Config
from ganstab.data import DataSource
from ganstab.rundir import RunDir, write_config
from ganstab.training import checkpoint as ckpt
from ganstab.training import parallel
from ganstab.training.ema import ema_beta, make_ema, update_ema
from ganstab.training.optim import grad_norm, make_optimizer
from ganstab.training.recorder import Recorder
from ganstab.training.interfaces import (Divergence, EventSink, PhaseFailure, RunResult, RunScorer, StopRequested,
                                         Watcher, fixed_latents, training_eval_seed)
from ganstab.training.eval_schedule import FIRST_EVAL_GUESS_SECONDS, EvalScheduleMixin
from ganstab.training.finishing import FinishingMixin
from ganstab.training.inputs import InputsMixin
from ganstab.training.networks import NetworksMixin
from ganstab.training.lecam import LeCamAnchors
from ganstab.training.outputs import OutputsMixin
from ganstab.training.progress import Progress
from ganstab.training.recovery import RecoveryMixin
from ganstab.training.consistency import ConsistencyMixin
from ganstab.training.hyper import HyperMixin
from ganstab.training.state import TrainerState


__all__ = ["FIRST_EVAL_GUESS_SECONDS", "Trainer", "RunResult", "Divergence", "Watcher", "RunScorer", "EventSink", "training_eval_seed"]


class Trainer(NetworksMixin, InputsMixin, TrainerState, RecoveryMixin, OutputsMixin, EvalScheduleMixin, ConsistencyMixin,
              HyperMixin, FinishingMixin):
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
        self.lr_scale_g = self.lr_scale_d = 1.0  # recovery scales of each network's learning rate
        self._report_after_recovery = 0  # the recovery whose metric the next evaluation records (0: none)
        self.opt_g = make_optimizer(cfg.optim.name, self.G.parameters(), cfg.optim.g_lr, cfg.optim.g_betas)
        self.d_trainable = [p for p in self.D.parameters() if p.requires_grad]  # model.freeze_d leaves out blocks
        self.opt_d = make_optimizer(cfg.optim.name, self.d_trainable, cfg.optim.d_lr, cfg.optim.d_betas)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.policy = parse_policy(cfg.augment.policy)
        self.cr_policy = parse_policy(cfg.penalty.cr_policy, "penalty.cr_policy")
        self.aug_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 4)
        self.ada = (AdaController(cfg.augment.ada_target, cfg.augment.ada_interval, cfg.augment.ada_speed_images)
                    if cfg.augment.ada_target > 0 else None)
        self.lecam = LeCamAnchors(cfg.penalty.lecam_decay, self.device) if cfg.penalty.lecam > 0 else None
        self.fixed_z = fixed_latents(cfg.seed, cfg.log.n_samples, cfg.model.latent_dim).to(self.device)
        self.num_classes = data.num_classes if cfg.model.conditional else 0
        self.label_probs = self._label_probs()
        self.step = self.d_steps = self.batch_index = self.images_seen = self.recoveries = 0
        self.elapsed = 0.0
        self.eval_seconds = 0.0  # time spent evaluating (the evaluator network's one-time training excluded)
        self.eval_cost: Optional[float] = None  # seconds the last evaluation took
        self.quick_seconds = 0.0  # of eval_seconds, the time of quick evaluations
        self.quick_cost: Optional[float] = None  # seconds the last quick evaluation took
        self.recorder = Recorder(self.run_dir.metrics)
        self.tracker = watcher
        self.scorer = scorer
        self.last_record: dict = {}
        self.best_eval: Optional[dict[str, float]] = None
        self._stop_signal: Optional[int] = None
        self._stop_now = False  # after the export: a signal stops the running phase at once (StopRequested)
        self.failures: list[PhaseFailure] = []  # phases that failed without losing the training
        self._last_checkpoint_step = -1
        self._last_eval_step = -1
        self._pending_fake: Optional[Tensor] = None
        self._pending_kw: dict[str, Any] = {}
        self._pending_fake_eps: Optional[Tensor] = None

    # ----------------------------------------------------------------- inputs
    def g_kwargs(self) -> dict[str, Any]:
        """Extra arguments for G and D (the seam for progressive growing's resolution and alpha)."""
        return {}

    # ----------------------------------------------------------------- phases
    def _fakes_for_d(self, n: int, kw: dict[str, Any]) -> tuple[Tensor, Optional[Tensor]]:
        """Fakes (and zCR's G(z + eps)) for the D step: no-grad, or kept for the G step under `train.reuse_fakes`."""
        precision = self.cfg.train.precision
        if self._reuse_fakes():
            with parallel.autocast(precision, self.device):
                self._pending_fake, self._pending_fake_eps = self.generate(n, kw)
                self._pending_kw = kw
            fake, fake_eps = self._pending_fake.detach(), self._pending_fake_eps  # D's loss does not reach G
        else:
            with torch.no_grad(), parallel.autocast(precision, self.device):
                fake, fake_eps = self.generate(n, kw)
        return fake.float(), None if fake_eps is None else fake_eps.detach().float()

    def d_step(self) -> None:
        """One D update: objective on a fresh real batch and no-grad fakes, step, then clipping."""
        cfg = self.cfg
        real, kw = self.real_batch_and_kwargs()  # fakes get the reals' labels: every GP interpolate has one label
        fake, fake_eps = self._fakes_for_d(real.shape[0], kw)
        real, (fake, fake_eps) = self.augmented(real), self.augmented_pair(fake, fake_eps)
        alpha = self.gp_alpha(real.shape[0]) if cfg.penalty.gp > 0 else None
        r1_gamma = penalties.lazy_weight(self.hyper("penalty.r1"), cfg.penalty.r1_every, self.d_steps)
        r2_gamma = penalties.lazy_weight(self.hyper("penalty.r2"), cfg.penalty.r2_every, self.d_steps)
        extra = self.consistency_inputs(real, fake, fake_eps)
        with parallel.autocast(cfg.train.precision, self.device):
            d_real, d_fake, gp, r1, classes, r2, extra_logits = self.critic_net(
                real, fake, gp_alpha=alpha, gp_target=cfg.penalty.gp_target, r1=r1_gamma > 0,
                scale=self._penalty_scale(), d_kwargs=kw, r2=r2_gamma > 0, extra=tuple(extra.values()))
            aux = None if classes is None else (losses.class_loss(classes[0], kw["y"])
                                                + losses.class_loss(classes[1], kw["y"]))
            anchors = None if self.lecam is None else self.lecam.update(d_real, d_fake, self.dist)
            cr = self.consistency_objective_terms(d_real, d_fake, dict(zip(extra, extra_logits)))
            total, parts = losses.discriminator_objective(
                cfg.loss.kind, d_real, d_fake, cfg.loss.real_label, cfg.loss.fake_label, gp=gp,
                gp_weight=self.hyper("penalty.gp"), r1=r1, r1_gamma=r1_gamma, drift_weight=self.hyper("penalty.drift"),
                aux_class=aux, aux_weight=cfg.loss.acgan_weight, r2=r2, r2_gamma=r2_gamma,
                lecam_anchors=anchors, lecam_weight=self.hyper("penalty.lecam"), **cr)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(total).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        if cfg.penalty.clip > 0:
            penalties.clip_weights(self.D, cfg.penalty.clip)
        self.d_steps += 1
        self.recorder.record_all(parts)
        d_real, d_fake = d_real.detach().float(), d_fake.detach().float()
        if self.ada is not None:
            self.ada.observe(d_real)
            self.ada.step(cfg.train.batch_size * self.dist.world)
            # float32 like every recorded value, so that pending sums survive a checkpoint exactly
            self.recorder.record("augment_p", torch.tensor(self.ada.p, dtype=torch.float32))
            self.recorder.record("ada_rt", torch.tensor(self.ada.last_signal, dtype=torch.float32))
        self.recorder.record("d_real", d_real.mean())
        self.recorder.record("d_fake", d_fake.mean())
        self.recorder.record("d_acc", 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean()))
        self.recorder.record("d_real_sign", d_real.sign().mean())  # r_t of ADA, watched for D overfitting

    def g_step(self) -> None:
        """One G update through a frozen D (D's parameters get no gradient; D is not DDP-synced here)."""
        cfg = self.cfg
        self.D.requires_grad_(False)
        try:
            with parallel.autocast(cfg.train.precision, self.device):
                fake, kw, self._pending_fake = self._pending_fake, self._pending_kw, None
                fake_eps, self._pending_fake_eps = self._pending_fake_eps, None
                if fake is None:
                    kw = self.fake_kwargs(cfg.train.batch_size)
                    fake, fake_eps = self.generate(cfg.train.batch_size, kw)
                loss = self._g_objective(self.augmented(fake), kw)
                loss, g_parts = losses.generator_objective(loss, self.generator_consistency(fake, fake_eps),
                                                           self.hyper("penalty.zcr_gen"))
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(loss).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        finally:
            for param in self.d_trainable:  # frozen blocks (model.freeze_d) stay frozen
                param.requires_grad_(True)
        self.recorder.record("loss_g", loss.detach())
        self.recorder.record_all(g_parts)
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_beta(cfg.train.batch_size * self.dist.world, cfg.train.ema))

    def _g_objective(self, fake: Tensor, kw: dict[str, Any]) -> Tensor:
        """G's loss through D (relativistic kinds: against D's logits on a fresh real batch; plus AC-GAN's CE)."""
        cfg = self.cfg
        real_logits = None
        if cfg.loss.kind in losses.RELATIVISTIC_KINDS:  # the only kinds that pay for a D pass on reals here
            real, real_kw = self.g_step_reals()
            with torch.no_grad():
                real_logits = self._critic(real, real_kw)[0]
        logits, class_logits = self._critic(fake, kw)
        loss = losses.generator_loss(cfg.loss.kind, logits, real_logits)
        return loss if class_logits is None else loss + cfg.loss.acgan_weight * losses.class_loss(class_logits, kw["y"])

    def _critic(self, x: Tensor, kw: dict[str, Any]) -> tuple[Tensor, Optional[Tensor]]:
        """D's logits in the G step, and an AC-GAN discriminator's class logits (else None)."""
        if getattr(self.D, "mode", None) == "acgan":
            return self.D.forward_with_classes(x)
        return self.d_forward(x, **kw), None

    def train_step(self) -> None:
        """The scheduled values for this step, n_critic D steps, then one G step."""
        self.apply_schedules()
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
        fixed.update(self.schedule_log())
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

    # ---------------------------------------------------------------- running
    def before_step(self) -> None:
        """Hook run before every step (progressive growing updates its schedule here)."""

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum
        if self._stop_now:
            raise StopRequested(signum)

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
        if self._eval_due(on_interval):
            final = cfg.eval.final and self.step >= cfg.train.steps
            if not self._guarded(lambda: self._tolerated("evaluation", lambda: self.evaluate(final=final))):
                return False
        elif self._quick_eval_due(on_interval):
            if not self._guarded(lambda: self._tolerated("quick evaluation", self.quick_evaluate)):
                return False
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
            try:
                interrupted = self._train_until_done()
            finally:
                self.progress.close()
            if interrupted:
                self._stop_interrupted()
            else:
                interrupted = not self._finish_training()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return RunResult(self.out, self.step, self.d_steps, self.images_seen, interrupted, self.last_record,
                         self.recoveries, self._stop_signal if interrupted else None, list(self.failures))

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

    def _finish_training(self) -> bool:
        """Final checkpoint and exported generator first, then what may fail without losing them (the final sample
        grid and evaluation: a failure goes to `failures`); False when a signal stopped those (plots and report:
        the pipeline)."""
        if self._last_checkpoint_step != self.step:
            self.save_checkpoint()
        if self.dist.is_main:
            self.export()
        phases: list[tuple[str, Callable[[], Any]]] = [("final sample grid", self.save_samples)]
        if self.cfg.eval.final and self._last_eval_step != self.step and self.scorer is not None:
            phases.append(("final evaluation", lambda: self.evaluate(final=True)))
        finished = self._after_export(phases)
        parallel.barrier(self.dist)
        return finished
