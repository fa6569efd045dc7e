"""When the Trainer evaluates: every `eval.every` steps, or under `eval.every=auto` by measured cost.

Under auto, a full evaluation comes on a log step whenever the evaluations so far, this one and the
final one (its validation and test lines: FINAL_EVALUATIONS, each reserved at the last measured cost) stay
within `eval.budget` of the training time. Until one is measured, a full evaluation is assumed to cost the
scorer's `first_cost_guess()`: FIRST_EVAL_GUESS_SECONDS on images, FIRST_POINTS_EVAL_GUESS_SECONDS on 2-D
points (whose evaluations take milliseconds: with the image guess a 12 s 2-D run never evaluated before its
end, so the doctor and collapse recovery had nothing to read). On
images a quick one (class balance and diversity on a small sample) fills the log steps between,
within QUICK_SHARE of that budget. The evaluator network's one-time training (at the first
evaluation) is no evaluation's cost and no training time.
"""

from __future__ import annotations

__all__ = ["EvalScheduleMixin", "FIRST_EVAL_GUESS_SECONDS", "FIRST_POINTS_EVAL_GUESS_SECONDS", "FINAL_EVALUATIONS",
           "QUICK_GUESS_FRACTION", "QUICK_SHARE"]

# eval.every=auto: the cost assumed for the first evaluation of images (the first one then measures the real cost)
FIRST_EVAL_GUESS_SECONDS = 0.25
# the same for 2-D points: their full evaluations measured 0.005-0.05 s (2,500 samples, toy networks, one thread)
FIRST_POINTS_EVAL_GUESS_SECONDS = 0.05
# eval.every=auto: the share of eval.budget that quick evaluations (images) may take between full ones
QUICK_SHARE = 0.2
# the cost assumed for the first quick evaluation, as a fraction of the last full one (measured: about 2 %)
QUICK_GUESS_FRACTION = 0.1
# the final evaluation scores twice, on the validation and on the test reference: both are reserved
FINAL_EVALUATIONS = 2


class EvalScheduleMixin:
    """Mixin of the Trainer: `_eval_due` (full evaluations) and `_quick_eval_due`."""

    def _eval_due(self, on_log_step: bool) -> bool:
        """Whether to evaluate now: every `eval.every` steps, or (auto) on a log step when the evaluations so
        far plus this one plus the final one (its FINAL_EVALUATIONS scores reserved at the same cost) stay within
        `eval.budget` of the training time."""
        every = self.cfg.eval.every
        if every != "auto":
            return bool(every) and self.step % every == 0
        if not on_log_step or self.step >= self.cfg.train.steps:
            return False  # the final evaluation follows anyway
        if self.eval_cost is not None:
            cost = self.eval_cost
        else:
            cost = self.scorer.first_cost_guess() if self.scorer is not None else FIRST_EVAL_GUESS_SECONDS
        reserve = FINAL_EVALUATIONS * cost if self.cfg.eval.final else 0.0
        return self.eval_seconds + cost + reserve <= self.cfg.eval.budget * self.elapsed

    def _quick_eval_due(self, on_log_step: bool) -> bool:
        """eval.every=auto on images: a quick evaluation on a log step without a full one, while the quick ones
        stay within QUICK_SHARE of `eval.budget` and all evaluations, the final one reserved, within the budget."""
        if self.cfg.eval.every != "auto" or not on_log_step or self.step >= self.cfg.train.steps:
            return False
        if self.scorer is None or not self.scorer.supports_quick():
            return False
        if self.eval_cost is None:
            return False  # the first full evaluation comes first
        cost = self.quick_cost if self.quick_cost is not None else QUICK_GUESS_FRACTION * self.eval_cost
        budget = self.cfg.eval.budget * self.elapsed
        reserve = FINAL_EVALUATIONS * self.eval_cost if self.cfg.eval.final else 0.0
        return self.quick_seconds + cost <= QUICK_SHARE * budget and self.eval_seconds + cost + reserve <= budget
