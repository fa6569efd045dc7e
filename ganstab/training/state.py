"""The Trainer's checkpointed state: what is saved, how it is restored, resume and its config check.

A checkpoint holds G, D, G-EMA, both optimisers and AMP scalers, the step counters, the batch
counter (the data order is a pure function of it), every RNG state, the recorder's pending sums,
LeCam's anchors (when `penalty.lecam` is on), the doctor's state, the best evaluation and the config (`ganstab.training.checkpoint` writes it
atomically with a checksum).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganstab.config import keys_added_at_default, to_dict, unsafe_changes
from ganstab.errors import CheckpointError, ConfigError, one_line
from ganstab.rundir import skipped_note, truncate_findings, truncate_metrics
from ganstab.training import checkpoint as ckpt
from ganstab.training import parallel
from ganstab.training.transfer import InitWeights

__all__ = ["TrainerState"]


class TrainerState:
    """Mixin of the Trainer: `state`, `load_state`, `save_checkpoint`, `restore` and `resume_from`."""

    def state(self) -> dict[str, Any]:
        """Everything needed to continue as if never stopped."""
        return {
            "step": self.step, "d_steps": self.d_steps, "batch_index": self.batch_index,
            "images_seen": self.images_seen, "elapsed": self.elapsed, "recoveries": self.recoveries,
            "lr_scale_g": self.lr_scale_g, "lr_scale_d": self.lr_scale_d,
            "g": self.G.state_dict(), "d": self.D.state_dict(),
            "g_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "gen": self.gen.get_state(), "aug_gen": self.aug_gen.get_state(), "rng": ckpt.rng_state(),
            "ada": self.ada.state_dict() if self.ada is not None else None,
            "lecam": self.lecam.state_dict() if self.lecam is not None else None,
            "recorder": self.recorder.state_dict(), "doctor": self.tracker.state_dict(),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "best_eval": self.best_eval, "eval_seconds": self.eval_seconds, "eval_cost": self.eval_cost,
            "quick_seconds": self.quick_seconds, "quick_cost": self.quick_cost,
            "config": to_dict(self.cfg),
        }

    def _load_networks(self, state: dict[str, Any]) -> None:
        """Weights and optimiser states (architecture mismatches -> CheckpointError)."""
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
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(
                f"the checkpoint does not fit this model ({one_line(exc)}); "
                "it was written for another architecture or data shape"
            ) from None

    def initialise_from(self, weights: InitWeights) -> str:
        """Start G (and D, G's EMA where the source holds them) from trained weights; returns what was loaded."""
        def load(net: Any, state: dict[str, Any], name: str) -> None:
            try:
                net.load_state_dict(state)
            except (RuntimeError, KeyError, ValueError) as exc:
                detail = one_line(exc, 160)
                raise CheckpointError(f"train.init_from: the {name} in {str(weights.source)!r} does not fit this "
                                      f"model ({detail}); use the model.* settings, data shape and classes of the "
                                      "run it comes from") from None

        if self.cfg.model.freeze_d and weights.d is None:
            raise ConfigError(f"model.freeze_d freezes blocks of a trained D, but {str(weights.source)!r} holds a "
                              "generator only; give train.init_from a run folder with a checkpoint or remove "
                              "model.freeze_d")
        load(self.G, weights.g, "generator")
        loaded = ["G"]
        if weights.d is not None:
            load(self.D, weights.d, "discriminator")
            loaded.append("D")
        if self.G_ema is not None:
            load(self.G_ema, weights.g_ema if weights.g_ema is not None else self.G.state_dict(), "EMA generator")
            loaded.append("G's EMA" if weights.g_ema is not None else "G's EMA (a copy of G)")
        return ", ".join(loaded)

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state written by `state()`."""
        self._load_networks(state)
        self.step = int(state["step"])
        self.d_steps = int(state["d_steps"])
        self.batch_index = int(state["batch_index"])
        self.images_seen = int(state["images_seen"])
        self.elapsed = float(state["elapsed"])
        self.recoveries = int(state.get("recoveries", 0))
        shared = float(state.get("lr_scale", 1.0))  # checkpoints of the first round kept one scale for both
        self.lr_scale_g = float(state.get("lr_scale_g", shared))
        self.lr_scale_d = float(state.get("lr_scale_d", shared))
        self.gen.set_state(state["gen"].to(self.gen.get_state().device))
        if state.get("aug_gen") is not None:
            self.aug_gen.set_state(state["aug_gen"].to(self.aug_gen.get_state().device))
        if self.ada is not None and state.get("ada"):
            self.ada.load_state_dict(state["ada"])
        if self.lecam is not None and state.get("lecam"):
            self.lecam.load_state_dict(state["lecam"])
        ckpt.set_rng_state(state["rng"])
        self.recorder.load_state_dict(state.get("recorder", {}))
        self.best_eval = state.get("best_eval")
        self.eval_seconds = float(state.get("eval_seconds", 0.0))
        self.eval_cost = state.get("eval_cost")
        self.quick_seconds = float(state.get("quick_seconds", 0.0))
        self.quick_cost = state.get("quick_cost")
        for name, scaler in (("scaler_g", self.scaler_g), ("scaler_d", self.scaler_d)):
            if state.get(name) and scaler.is_enabled():
                scaler.load_state_dict(state[name])
        if state.get("doctor"):
            self.tracker.load_state_dict(state["doctor"])
        self.apply_schedules()  # the restored images_seen's scheduled values (lrs times the restored scales)

    def save_checkpoint(self) -> Path:
        """Write the current state atomically and keep the newest `log.keep_checkpoints`."""
        self._last_checkpoint_step = self.step
        path = self.run_dir.checkpoint(self.step)
        if self.dist.is_main:
            path = ckpt.save_checkpoint(self.run_dir.checkpoints, self.step, self.state(),
                                        self.cfg.log.keep_checkpoints)
            if not self.tracker.active_keys():  # no episode under way: the last known good state, kept apart
                ckpt.keep_as_good(path)
        parallel.barrier(self.dist)
        return path

    def restore(self, state: dict[str, Any], drop_findings: bool) -> None:
        """Load a state and drop the metric lines (and, on resume, the findings) logged after it."""
        self.load_state(state)
        if self.dist.is_main:
            damaged = truncate_metrics(self.run_dir.metrics, self.step, self.cfg.log.every)
            if damaged:
                self.echo(skipped_note(damaged, "kept as they are"))
            if drop_findings:
                truncate_findings(self.run_dir.findings, self.step)

    def resume_from(self, path: Path, allow_config_change: bool = False) -> list[str]:
        """Load a checkpoint, refusing a changed config unless allowed or only safe keys changed; return the keys
        the checkpoint's config lacks (added by a later version) that take their default, which is no change."""
        state = ckpt.load_checkpoint(path)  # on the CPU: each part moves its state to its device (RNG states stay)
        saved, current = state.get("config", {}), to_dict(self.cfg)
        unsafe = unsafe_changes(saved, current)
        if unsafe and not allow_config_change:
            raise CheckpointError(
                "the config differs from the checkpoint's (" + "; ".join(unsafe[:5])
                + (f"; +{len(unsafe) - 5} more" if len(unsafe) > 5 else "")
                + "); pass --allow-config-change to resume anyway"
            )
        self.restore(state, drop_findings=True)
        parallel.barrier(self.dist)
        return keys_added_at_default(saved, current)
