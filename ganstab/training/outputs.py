"""What the Trainer writes while it trains: sample grids, the exported generator, evaluation lines, findings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import torch

from ganstab.export import generator_meta, save_generator
from ganstab.rundir import BEST_EVAL_FILE, append_jsonl, atomic_write
from ganstab.sampling import class_grid, generate, save_image_grid, save_scatter
from ganstab.training.checkpoint import save_checkpoint
from ganstab.training.interfaces import COLLAPSE_PREFIX, Divergence, training_eval_seed
from ganstab.training.recorder import clean_record

__all__ = ["OutputsMixin"]


class OutputsMixin:
    """Mixin of the Trainer: `save_samples`, `export`, `evaluate`, `observe` and `check_finite`."""

    def save_samples(self) -> Path | None:
        """Sample grid (images) or scatter plot (points) from the fixed noise batch (rank 0 only)."""
        if not self.dist.is_main:
            return None
        path = self.run_dir.sample(self.step)
        z, labels = class_grid(self.fixed_z, self.num_classes) if self.num_classes else (self.fixed_z, None)
        samples = generate(self.sampler_net(), z, labels=labels, **self.g_kwargs())
        if self.data.kind == "points":
            save_scatter(samples, path, self.data.centers, title=f"step {self.step}")
        else:
            save_image_grid(samples, path, nrow=None if labels is None else len(labels) // self.num_classes)
        if self.sink is not None:
            self.sink.image(self.step, "samples", path)
        return path

    def export(self, folder: Optional[Path] = None, interrupted: bool = False) -> Path:
        """Write the sampling network (EMA weights when enabled) as generator.safetensors + generator.json."""
        meta = generator_meta(self.cfg, self.shape, self.data.kind, self.G_ema is not None, self.step,
                              self.images_seen, self.g_kwargs(), interrupted=interrupted,
                              num_classes=self.num_classes, class_names=self.data.class_names)
        return save_generator(folder if folder is not None else self.out, self.sampler_net(), meta)

    def evaluate(self, final: bool = False) -> Optional[dict[str, Any]]:
        """Score the sampling network (rank 0) on the validation reference, log an `eval_` line (`"final": true`
        on the run's last one), keep the best export and its training state in best/; raise Divergence on a mode
        collapse during training. The final evaluation also logs a test line (`_final_test_line`)."""
        if not self.dist.is_main or self.scorer is None:
            return None
        self.scorer.prepare()  # the evaluator network's one-time training is not an evaluation's cost
        scores, self.eval_cost = self._score("validation")
        line = self._write_eval_line(scores, self.eval_cost, {"final": True} if final else {}, "validation")
        self._last_eval_step = self.step
        self.report_after_recovery(scores, self.scorer.main_metric_name())
        collapse = self._observe_evaluation(line)
        if final:
            collapse = None  # the run's last word is judged, but rolls nothing back
        if collapse is None and self.scorer.is_better(scores, self.best_eval):
            self.best_eval = dict(scores, step=self.step)
            self.export(self.run_dir.best)
            atomic_write(self.run_dir.best / BEST_EVAL_FILE, json.dumps(self.best_eval, indent=2))
            if not final:  # the training state at the best evaluation: where a collapse rolls back to
                save_checkpoint(self.run_dir.best, self.step, self.state(), keep=1)
        if collapse is not None:
            raise collapse
        if final:
            self._final_test_line()
        return line

    def _final_test_line(self) -> dict[str, Any]:
        """Score the final generator on the test reference and log it as `"eval_split": "test"`: a line for
        reports only, which neither the doctor, best/, recovery nor tune reads."""
        scores, cost = self._score("test")
        return self._write_eval_line(scores, cost, {"final": True}, "test")

    def _score(self, split: str) -> tuple[dict[str, float], float]:
        """The sampling network's scores on the `split` reference and their cost in seconds (added to eval_seconds)."""
        started = time.perf_counter()
        scores = self.scorer.evaluate(self.sampler_net(), self.cfg.model.latent_dim, self.g_kwargs(), self.fixed_z,
                                      seed=training_eval_seed(self.cfg.seed, split), split=split)
        cost = time.perf_counter() - started
        self.eval_seconds += cost
        return scores, cost

    def quick_evaluate(self) -> Optional[dict[str, Any]]:
        """A cheap `eval_` line between full evaluations (`"quick": true`: class balance and diversity only); raise
        Divergence on a mode collapse as `evaluate` does."""
        if not self.dist.is_main or self.scorer is None:
            return None
        started = time.perf_counter()
        scores = self.scorer.quick_evaluate(self.sampler_net(), self.cfg.model.latent_dim, self.g_kwargs(),
                                            self.fixed_z, seed=training_eval_seed(self.cfg.seed))
        self.quick_cost = time.perf_counter() - started
        self.quick_seconds += self.quick_cost
        self.eval_seconds += self.quick_cost
        if not scores:
            return None
        line = self._write_eval_line(scores, self.quick_cost, {"quick": True}, "validation")
        collapse = self._observe_evaluation(line)
        if collapse is not None:
            raise collapse
        return line

    def _write_eval_line(self, scores: dict[str, Any], cost: float, flags: dict[str, bool],
                         split: str) -> dict[str, Any]:
        """Write an evaluation's `eval_` line with what it was measured with (metrics.jsonl and, but for a test
        line, the event sink) and return it."""
        line = clean_record({"step": self.step, "images_seen": self.images_seen, "time": round(self.elapsed, 3),
                             **{f"eval_{k}": v for k, v in scores.items()}, "eval_time": round(cost, 4),
                             **{f"eval_{k}": v for k, v in self.scorer.provenance(split).items()}, **flags})
        self.recorder.write(line)
        if self.sink is not None and split != "test":
            self.sink.scalars(self.step, line)
        return line

    def _observe_evaluation(self, line: dict[str, Any]) -> Optional[Divergence]:
        """Feed an evaluation line to the doctor; the mode collapse it found (the one evaluation finding that
        rolls back), else None."""
        try:
            self.observe(line)
        except Divergence as exc:
            if exc.code.startswith(COLLAPSE_PREFIX):
                return exc
        return None

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
            raise Divergence(diverged[0].message, diverged[0].code, diverged[0].start_step)
        handled = [f for f in findings if f.severity == "error" and (f.code == "training.dead"
                                                                      or f.code.startswith(COLLAPSE_PREFIX))]
        if handled:
            raise Divergence(handled[0].message, handled[0].code, handled[0].start_step, fatal=False)

    def check_finite(self, line: dict[str, Any]) -> None:
        """Raise Divergence on a non-finite logged value or weight."""
        if line.get("nonfinite"):
            raise Divergence(f"non-finite {', '.join(line['nonfinite'])} at step {self.step}", start_step=self.step)
        for name, net in (("G", self.G), ("D", self.D)):
            if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
                raise Divergence(f"non-finite weights in {name} at step {self.step}", start_step=self.step)
