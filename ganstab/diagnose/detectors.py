"""Stability detectors: small pure functions over metrics.jsonl records that return findings.

Each `detect_*(records, cfg, context)` reads the training and/or evaluation lines it needs from
`records` (mixed, in file order; keys may be missing or null), never mutates them, and returns a
list of `Finding`s, one per episode (a maximal run of steps where its condition holds).
`context` describes the run (see `ganstab.diagnose.advice`) and only tailors which detectors
apply and the advice text.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .advice import advice_for, loss_family
from ganstab.config import DoctorConfig
from ganstab.metrics.registry import higher_is_better, main_metric_of
from .findings import Finding, severity_rank
from .series import (
    as_number,
    eval_records,
    fmt,
    log_interval,
    long_runs,
    median,
    runs,
    series,
    step_of,
    training_records,
)

Records = Sequence[Mapping[str, Any]]
Context = Mapping[str, Any] | None
Detector = Callable[[Records, DoctorConfig, Context], list[Finding]]



def _finding(
    code: str,
    severity: str,
    start: int,
    end: int,
    evidence: dict[str, float],
    message: str,
    context: Context,
    metric: str | None = None,
    extra_advice: str = "",
) -> Finding:
    advice = advice_for(code, context)
    if extra_advice:
        advice = f"{advice} {extra_advice}"
    return Finding(code, severity, start, end, evidence, message, advice, metric)


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted non-empty list."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --------------------------------------------------------------------------------------------
# divergence
# --------------------------------------------------------------------------------------------


def _bad_keys(record: Mapping[str, Any], cfg: DoctorConfig) -> list[str]:
    watched = frozenset(cfg.nonfinite_keys)
    bad = {key for key in (record.get("nonfinite") or []) if key in watched}
    for key in watched.intersection(record):
        value = record[key]
        if value is None and key in ("loss_d", "loss_g"):
            bad.add(key)
        elif isinstance(value, float) and as_number(value) is None:
            bad.add(key)
    return sorted(bad)


def detect_nonfinite(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """NaN/Inf (or a null loss) in the training losses, grad norms or logits: an error.

    Signal: the `nonfinite` list of each training line (keys written as null because they were
    NaN/Inf) restricted to `cfg.nonfinite_keys`, plus `loss_d`/`loss_g` logged as null. A
    non-finite loss means the parameters are already corrupted; every later step is wasted.
    """
    train = training_records(records)
    bad = [_bad_keys(record, cfg) for record in train]
    findings = []
    for first, last in runs([bool(keys) for keys in bad]):
        names = sorted({key for keys in bad[first:last + 1] for key in keys})
        count = last - first + 1
        start, end = step_of(train[first]), step_of(train[last])
        message = (
            f"{', '.join(names)} {'was' if len(names) == 1 else 'were'} NaN/Inf in {count} training "
            f"record{'s' if count != 1 else ''} over steps {start}-{end}."
        )
        evidence = {"records": count, "keys": len(names), "first_step": start}
        findings.append(_finding("divergence.nonfinite", "error", start, end, evidence, message, context))
    return findings


def _exceedances(
    steps: list[int], values: list[float], cfg: DoctorConfig
) -> tuple[list[bool], list[tuple[float, float, float]]]:
    """Per value: exploding or not, and (deviation ratio, baseline median, value).

    The baseline holds the non-exploding values of the last `explosion_window_steps` G steps
    before the newest one kept (so it freezes during an explosion); the check starts once it
    spans `explosion_min_history_steps` and holds `explosion_min_records` values.
    """
    interval = log_interval(steps)
    history: deque[tuple[int, float]] = deque()
    ordered: list[float] = []  # the history's values, sorted, for the median and quartiles
    flags: list[bool] = []
    detail: list[tuple[float, float, float]] = []
    centre, scale, stale = 0.0, 1.0, True
    for step, value in zip(steps, values):
        exceeding = False
        ratio = 0.0
        if (len(ordered) >= cfg.explosion_min_records
                and history[-1][0] - history[0][0] + interval >= cfg.explosion_min_history_steps):
            if stale:
                centre = _quantile(ordered, 0.5)
                spread = 0.5 * (_quantile(ordered, 0.75) - _quantile(ordered, 0.25))
                scale = max(abs(centre), spread, cfg.explosion_scale_floor, 1e-12)
                stale = False
            ratio = abs(value - centre) / scale
            exceeding = ratio > cfg.explosion_factor
        flags.append(exceeding)
        detail.append((ratio, centre, value))
        if not exceeding:
            history.append((step, value))
            bisect.insort(ordered, value)
            while history and history[0][0] <= step - cfg.explosion_window_steps:
                del ordered[bisect.bisect_left(ordered, history.popleft()[1])]
            stale = True
    return flags, detail


def detect_explosion(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """A loss or grad norm jumping far outside its running median: an error.

    Signal: for each key in `cfg.explosion_keys`, |value - m| > factor * s where m is the median
    of the non-exploding values of the last `explosion_window_steps` G steps and
    s = max(|m|, IQR / 2, `explosion_scale_floor`) its scale, held for `explosion_patience_steps`
    G steps and `explosion_patience_records` records. The floor keeps a loss near zero (loss_d
    0.04) from turning an ordinary swing to 2 into a "50x" deviation. Exploding gradients and losses precede NaNs in unstable
    GANs (Brock et al. 2019 trace BigGAN collapses to spikes in D's and G's spectra and losses).
    """
    train = training_records(records)
    findings = []
    for key in cfg.explosion_keys:
        steps, values = series(train, key)
        flags, detail = _exceedances(steps, values, cfg)
        for first, last in long_runs(steps, flags, cfg.explosion_patience_steps, cfg.explosion_patience_records):
            peak = max(range(first, last + 1), key=lambda i: detail[i][0])
            ratio, centre, value = detail[peak]
            start, end = steps[first], steps[last]
            message = (
                f"{key} reached {fmt(value)} at step {steps[peak]} against a running median of "
                f"{fmt(centre)}, a deviation of {fmt(ratio)} times its scale (threshold "
                f"{fmt(cfg.explosion_factor)}), over steps {start}-{end}."
            )
            evidence = {"value": value, "median": centre, "ratio": ratio, "factor": cfg.explosion_factor}
            findings.append(
                _finding("divergence.explosion", "error", start, end, evidence, message, context, key)
            )
    return findings


def detect_critic_drift(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """Critic outputs growing without bound under a Wasserstein-like loss: a warning.

    Signal: |d_real| and |d_fake| both above `cfg.drift_threshold` and each increasing in at
    least `drift_monotone_frac` of record-to-record steps over the records of the last
    `drift_window_steps` G steps (at least `drift_min_records` of them).
    The finding starts at the first G step of the window of its first flagged record.
    The Wasserstein critic is only defined up to a constant, so its outputs can drift together;
    Karras et al. 2018 (progressive GAN) add a drift penalty 0.001·D(real)² for this reason.
    Runs for Wasserstein losses and when the loss is unknown; other losses anchor the logits.
    """
    if loss_family(context) not in ("wasserstein", None):
        return []
    train = [r for r in training_records(records)
             if as_number(r.get("d_real")) is not None and as_number(r.get("d_fake")) is not None]
    if len(train) < cfg.drift_min_records:
        return []
    steps = [step_of(r) for r in train]
    interval = log_interval(steps)
    real = [abs(float(r["d_real"])) for r in train]
    fake = [abs(float(r["d_fake"])) for r in train]
    # prefix counts of increases: up[i] = number of j in 1..i with a[j] > a[j-1]
    up_real, up_fake = [0], [0]
    for i in range(1, len(train)):
        up_real.append(up_real[-1] + (real[i] > real[i - 1]))
        up_fake.append(up_fake[-1] + (fake[i] > fake[i - 1]))
    flags = [False] * len(train)
    fracs = [0.0] * len(train)
    window_first = [0] * len(train)
    for i in range(len(train)):
        lo = bisect.bisect_right(steps, steps[i] - cfg.drift_window_steps)
        window_first[i] = lo
        if i - lo + 1 < cfg.drift_min_records:
            continue
        diffs = i - lo
        frac_real = (up_real[i] - up_real[lo]) / diffs
        frac_fake = (up_fake[i] - up_fake[lo]) / diffs
        fracs[i] = min(frac_real, frac_fake)
        flags[i] = (
            real[i] > cfg.drift_threshold and fake[i] > cfg.drift_threshold
            and fracs[i] >= cfg.drift_monotone_frac
        )
    findings = []
    for first, last in runs(flags):
        # the first G step the window covers (a record at step s covers the interval's steps up to s)
        start = max(steps[first] - cfg.drift_window_steps, steps[window_first[first]] - interval) + 1
        end = steps[last]
        d_real, d_fake = float(train[last]["d_real"]), float(train[last]["d_fake"])
        message = (
            f"Critic outputs drifted to d_real {fmt(d_real)} and d_fake {fmt(d_fake)} (threshold "
            f"{fmt(cfg.drift_threshold)}), both magnitudes rising in {fracs[last]:.0%} of records "
            f"over steps {start}-{end}."
        )
        evidence = {"d_real": d_real, "d_fake": d_fake, "increase_frac": fracs[last],
                    "threshold": cfg.drift_threshold}
        findings.append(_finding("divergence.critic_drift", "warning", start, end, evidence, message, context))
    return findings


# --------------------------------------------------------------------------------------------
# dead training
# --------------------------------------------------------------------------------------------


def _dead_reasons(record: Mapping[str, Any], previous: Mapping[str, Any] | None, cfg: DoctorConfig) -> list[str]:
    """Why a training record shows no learning: zero grad norms, or both losses equal to the previous record's."""
    reasons = []
    for key in ("grad_norm_g", "grad_norm_d"):
        value = as_number(record.get(key))
        if value is not None and abs(value) < cfg.dead_grad_norm:
            reasons.append(key)
    if previous is not None:
        pairs = [(as_number(record.get(k)), as_number(previous.get(k))) for k in ("loss_d", "loss_g")]
        if all(now is not None and now == before for now, before in pairs):
            reasons.append("constant losses")
    return reasons


def detect_dead(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """Training that stopped learning: zero gradients or frozen losses over a window. An error.

    Signal: a training record is dead when `grad_norm_g` or `grad_norm_d` is below
    `dead_grad_norm`, or `loss_d` and `loss_g` both equal the previous record's exactly. A
    window of the last `dead_window_steps` G steps (shorter at the start of a run; at least
    `dead_min_records` records) is dead when at least `dead_fraction` of its records are; an episode (dead windows less than
    a window apart) runs from the first dead record of its first dead window to the last of its last. A network whose gradient is exactly
    zero (dead ReLUs, a saturated sigmoid after a too-large step) does not recover on its own,
    even when a lucky batch briefly revives it.
    """
    train = training_records(records)
    reasons = [_dead_reasons(r, train[i - 1] if i else None, cfg) for i, r in enumerate(train)]
    steps = [step_of(r) for r in train]
    dead_before = [0]  # prefix counts of dead records
    for found in reasons:
        dead_before.append(dead_before[-1] + bool(found))
    window_first = [bisect.bisect_right(steps, step - cfg.dead_window_steps) for step in steps]
    flags = []
    for end, first in enumerate(window_first):
        count = end - first + 1
        dead = dead_before[end + 1] - dead_before[first]
        flags.append(count >= cfg.dead_min_records and dead >= cfg.dead_fraction * count)
    episodes: list[tuple[int, int]] = []
    for first, last in runs(flags):  # dead windows less than a window apart are one episode
        if episodes and steps[first] - steps[episodes[-1][1]] <= cfg.dead_window_steps:
            episodes[-1] = (episodes[-1][0], last)
        else:
            episodes.append((first, last))
    findings = []
    for first, last in episodes:
        dead_indices = [i for i in range(window_first[first], last + 1) if reasons[i]]
        names = sorted({name for i in dead_indices for name in reasons[i]})
        start, end = steps[dead_indices[0]], steps[dead_indices[-1]]
        covered = last - window_first[first] + 1
        fraction = len(dead_indices) / covered
        shown = ", ".join(n if n == "constant losses" else f"{n} < {fmt(cfg.dead_grad_norm)}" for n in names)
        message = (
            f"Training is dead over steps {start}-{end}: {len(dead_indices)} of {covered} records "
            f"({fraction:.0%}) show {shown}."
        )
        evidence = {"records": len(dead_indices), "fraction": fraction,
                    "zero_grad_g": int("grad_norm_g" in names), "zero_grad_d": int("grad_norm_d" in names),
                    "constant_losses": int("constant losses" in names)}
        findings.append(_finding("training.dead", "error", start, end, evidence, message, context))
    return findings


# --------------------------------------------------------------------------------------------
# discriminator overpowering
# --------------------------------------------------------------------------------------------


def detect_d_overpowers(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """D classifying (almost) every real and fake correctly for a sustained window: a warning.

    Signal: `d_acc` >= `cfg.d_acc_threshold` in consecutive training records covering at least
    `cfg.d_acc_window_steps` G steps (and `d_acc_min_records` records). A D that separates the distributions perfectly gives G vanishing or uninformative
    gradients (Arjovsky & Bottou 2017); skipped for Wasserstein losses, whose critic sign is
    arbitrary.
    """
    if loss_family(context) == "wasserstein":
        return []
    steps, acc = series(training_records(records), "d_acc")
    findings = []
    flags = [value >= cfg.d_acc_threshold for value in acc]
    for first, last in long_runs(steps, flags, cfg.d_acc_window_steps, cfg.d_acc_min_records):
        count = last - first + 1
        span = acc[first:last + 1]
        mean = sum(span) / count
        start, end = steps[first], steps[last]
        message = (
            f"D accuracy stayed at or above {fmt(cfg.d_acc_threshold)} (mean {mean:.3f}) for {count} "
            f"records over steps {start}-{end}."
        )
        evidence = {"d_acc_mean": mean, "d_acc_min": min(span), "records": count}
        findings.append(_finding("d_overpowers", "warning", start, end, evidence, message, context))
    return findings


def detect_d_overfitting(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """D memorising the training images: r_t = E[sign(D(real))] near 1 for a sustained window.

    Signal (Karras et al. 2020): `d_real_sign` >= `cfg.overfit_rt` in consecutive training records
    covering at least `cfg.overfit_window_steps` G steps (and `overfit_min_records` records), while
    no adaptive augmentation can still answer it (`augment_p` absent, or at least
    `cfg.overfit_p_max`). On a small data set this precedes the collapse of the samples; the
    remedy is augmentation of everything D sees. r_t alone cannot tell memorising from a D that
    is simply ahead on a large data set (the `dcgan` preset on all of Fashion-MNIST holds r_t at
    0.81-0.99 for its first 2,500 steps), so without augmentation the finding is `info`, advice
    that leaves the verdict alone; with ADA already at p = 1 it is a warning. Skipped for
    Wasserstein and relativistic losses, which see only D's differences, so the sign of D(real) is arbitrary.
    """
    if loss_family(context) in ("wasserstein", "relativistic"):
        return []
    train = [r for r in training_records(records) if as_number(r.get("d_real_sign")) is not None]
    steps = [step_of(r) for r in train]
    signs = [float(as_number(r["d_real_sign"])) for r in train]
    probs = [as_number(r.get("augment_p")) for r in train]
    flags = [rt >= cfg.overfit_rt and (p is None or p >= cfg.overfit_p_max) for rt, p in zip(signs, probs)]
    findings = []
    for first, last in long_runs(steps, flags, cfg.overfit_window_steps, cfg.overfit_min_records):
        span = signs[first:last + 1]
        mean = sum(span) / len(span)
        start, end = steps[first], steps[last]
        held = [p for p in probs[first:last + 1] if p is not None]
        why = f" with augment_p at {fmt(min(held))} or more" if held else ""
        message = (
            f"D may be overfitting the training images: r_t = E[sign(D(real))] stayed at or above "
            f"{fmt(cfg.overfit_rt)} (mean {mean:.3f}){why} for {len(span)} records over steps {start}-{end}."
        )
        evidence = {"rt_mean": mean, "rt_min": min(span), "records": len(span)}
        if held:
            evidence["augment_p_min"] = min(held)
        severity = "warning" if held else "info"
        findings.append(_finding("d_overfitting", severity, start, end, evidence, message, context))
    return findings


def detect_vanishing_g_grad(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """G's gradient norm collapsing while D wins: a warning.

    Signal: `grad_norm_g` below (median of its finite values in the first `vanish_early_steps`
    G steps, at least `vanish_min_records` of them) / `vanish_factor` with `d_acc` >=
    `vanish_d_acc` in the same record, for `vanish_patience_steps` G steps. With an optimal D the minimax G loss saturates and its gradient
    vanishes (Goodfellow et al. 2014; Arjovsky & Bottou 2017). Skipped for Wasserstein losses.
    """
    if loss_family(context) == "wasserstein":
        return []
    train = [r for r in training_records(records) if as_number(r.get("grad_norm_g")) is not None]
    train_steps = [step_of(r) for r in train]
    early_count = bisect.bisect_left(train_steps, train_steps[0] + cfg.vanish_early_steps) if train else 0
    if early_count < cfg.vanish_min_records or len(train) <= early_count:
        return []
    early = median([float(r["grad_norm_g"]) for r in train[:early_count]])
    later = train[early_count:]
    limit = early / cfg.vanish_factor
    flags = []
    for record in later:
        acc = as_number(record.get("d_acc"))
        flags.append(float(record["grad_norm_g"]) < limit and acc is not None and acc >= cfg.vanish_d_acc)
    findings = []
    for first, last in long_runs(train_steps[early_count:], flags, cfg.vanish_patience_steps, 1):
        count = last - first + 1
        span = later[first:last + 1]
        grad = median([float(r["grad_norm_g"]) for r in span])
        acc_mean = sum(float(r["d_acc"]) for r in span) / count
        ratio = early / grad if grad > 0 else float(np.finfo(np.float64).max)
        start, end = step_of(span[0]), step_of(span[-1])
        message = (
            f"grad_norm_g fell to {fmt(grad)}, {fmt(ratio)} times below its early median "
            f"{fmt(early)}, while D accuracy averaged {acc_mean:.3f} over steps {start}-{end}."
        )
        evidence = {"grad_norm_g": grad, "early_median": early, "ratio": ratio, "d_acc_mean": acc_mean}
        findings.append(_finding("vanishing_g_grad", "warning", start, end, evidence, message, context))
    return findings


# --------------------------------------------------------------------------------------------
# mode collapse (evaluation lines)
# --------------------------------------------------------------------------------------------


def _eval_series(records: Records, key: str, warmup: int = 0) -> tuple[list[int], list[float]]:
    steps, values = series(eval_records(records), key)
    kept = [(s, v) for s, v in zip(steps, values) if s >= warmup]
    return [s for s, _ in kept], [v for _, v in kept]


def ends_with_final(records: Records) -> bool:
    """Whether the last evaluation line is the run's final evaluation (it carries `"final": true`).

    Only that one may be decisive before the warm-up: during training the latest evaluation so far
    is not the final one, and an early evaluation (step 50 under `eval.every=auto`) is far from the
    data in every healthy run.
    """
    evals = eval_records(records)
    return bool(evals) and evals[-1].get("final") is True


def _decisive_final(records: Records, steps: list[int], values: list[float], warmup: int,
                    error: Callable[[float], bool]) -> bool:
    """True when the run's final evaluation meets the error condition: it counts even before the warm-up."""
    return ends_with_final(records) and bool(values) and error(values[-1]) and steps[-1] < warmup


def _threshold_runs(
    steps: list[int],
    values: list[float],
    warn: Callable[[float], bool],
    error: Callable[[float], bool],
    patience: int,
    exempt: list[bool] | None = None,
) -> list[tuple[int, int, str]]:
    """(first, last, severity) of runs of at least `patience` values meeting `warn`.

    A shorter run that ends with the final evaluation counts when that evaluation meets `error`:
    the run's last word is decisive even without a second evaluation to confirm it. A value marked
    in `exempt` meets `warn` only when it meets `error` too.
    """
    found = []
    flags = [warn(v) and (exempt is None or not exempt[i] or error(v)) for i, v in enumerate(values)]
    for first, last in runs(flags):
        if last - first + 1 < patience and not (last == len(values) - 1 and error(values[last])):
            continue
        severe = any(error(v) for v in values[first:last + 1])
        found.append((first, last, "error" if severe else "warning"))
    return found


def detect_coverage_drop(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """A recall-like metric falling from its best: lost modes. Warning; error for a large drop.

    Signal: for each key in `cfg.coverage_keys` (eval_coverage, eval_recall), values below
    (best so far - `coverage_margin`) for `collapse_patience` consecutive evaluations; an error
    when the drop reaches `coverage_error_margin`. Recall (Kynkäänniemi et al. 2019) and coverage
    (Naeem et al. 2020) measure how much of the real manifold the samples reach, so a fall after
    a good value is the classic mid-training mode collapse.
    """
    findings = []
    for key in cfg.coverage_keys:
        steps, values = _eval_series(records, key)
        best_before: list[tuple[float, int]] = []
        best, best_step = float("-inf"), 0
        for step, value in zip(steps, values):
            if value > best:
                best, best_step = value, step
            best_before.append((best, best_step))
        flags = [best_before[i][0] - v >= cfg.coverage_margin for i, v in enumerate(values)]
        for first, last in runs(flags):
            if last - first + 1 < cfg.collapse_patience:
                continue
            best, best_step = best_before[first]
            worst = min(values[first:last + 1])
            drop = best - worst
            severity = "error" if drop >= cfg.coverage_error_margin else "warning"
            start, end = steps[first], steps[last]
            message = (
                f"{key} fell to {fmt(worst)} from its best {fmt(best)} at step {best_step} (drop "
                f"{fmt(drop)}, margin {fmt(cfg.coverage_margin)}) over steps {start}-{end}."
            )
            evidence = {"value": worst, "best": best, "best_step": best_step, "drop": drop}
            findings.append(_finding(
                "mode_collapse.coverage", severity, start, end, evidence, message, context, key,
                extra_advice=f"The checkpoint nearest step {best_step} had the best {key}.",
            ))
    return findings


def detect_class_kl(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """Generated class histogram far from the real one (eval_class_kl): warning, error above a bound.

    Signal: `eval_class_kl` (KL in nats between the evaluator's class histogram of samples and
    the real class distribution) above `class_kl_warn` for `collapse_patience` evaluations after
    `eval_warmup_steps`; an error above `class_kl_error`, also from the final evaluation alone. Missing or over-represented classes
    are the classifier-based view of mode collapse (Santurkar et al. 2018). Quick evaluation lines
    are left out: KL over a few hundred samples is biased upwards (measured on the default recipe on
    Fashion-MNIST: 0.10-0.11 on 250 samples where 2,500 gave 0.05).
    """
    records = [r for r in records if not r.get("quick")]  # a quick line's KL on ~250 samples reads ~0.05 high
    steps, values = _eval_series(records, "eval_class_kl", cfg.eval_warmup_steps)
    all_steps, all_values = _eval_series(records, "eval_class_kl")
    if _decisive_final(records, all_steps, all_values, cfg.eval_warmup_steps, lambda v: v > cfg.class_kl_error):
        steps, values = steps + all_steps[-1:], values + all_values[-1:]
    findings = []
    for first, last, severity in _threshold_runs(
        steps, values, lambda v: v > cfg.class_kl_warn, lambda v: v > cfg.class_kl_error,
        cfg.collapse_patience,
    ):
        worst = max(values[first:last + 1])
        start, end = steps[first], steps[last]
        count = last - first + 1
        message = (
            f"eval_class_kl reached {fmt(worst)} nats (warning above {fmt(cfg.class_kl_warn)}, error "
            f"above {fmt(cfg.class_kl_error)}) over {count} evaluations, steps {start}-{end}."
        )
        evidence = {"class_kl": worst, "threshold": cfg.class_kl_warn, "evaluations": count}
        findings.append(_finding("mode_collapse.class_kl", severity, start, end, evidence, message, context))
    return findings


def detect_diversity(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """Samples much less varied than real data (eval_diversity): warning, error below a bound.

    Signal: `eval_diversity` (mean pairwise distance of a fixed-noise batch over that of real
    data; 1.0 = as diverse) below `diversity_warn` for `collapse_patience` evaluations after
    `eval_warmup_steps`; an error below `diversity_error`, also from the final evaluation alone. Low sample-to-sample distance is the
    direct symptom of collapse (cf. MS-SSIM diversity in Odena et al. 2017). A warning needs the value
    not to be a new best of the run: diversity still rising is a G still learning (measured: a healthy
    small-data run on Fashion-MNIST climbs from 0.21 through 0.64 at step 2000 to 0.8), not a collapse.
    """
    steps, values = _eval_series(records, "eval_diversity", cfg.eval_warmup_steps)
    all_steps, all_values = _eval_series(records, "eval_diversity")
    if _decisive_final(records, all_steps, all_values, cfg.eval_warmup_steps, lambda v: v < cfg.diversity_error):
        steps, values = steps + all_steps[-1:], values + all_values[-1:]
    best_before, running = {}, float("-inf")
    for step, value in zip(all_steps, all_values):
        best_before[step], running = running, max(running, value)
    rising = [value >= best_before[step] for step, value in zip(steps, values)]  # a new best: still learning
    findings = []
    for first, last, severity in _threshold_runs(
        steps, values, lambda v: v < cfg.diversity_warn, lambda v: v < cfg.diversity_error,
        cfg.collapse_patience, exempt=rising,
    ):
        worst = min(values[first:last + 1])
        start, end = steps[first], steps[last]
        count = last - first + 1
        message = (
            f"eval_diversity fell to {fmt(worst)} of the real data's (warning below "
            f"{fmt(cfg.diversity_warn)}, error below {fmt(cfg.diversity_error)}) over {count} "
            f"evaluations, steps {start}-{end}."
        )
        evidence = {"diversity": worst, "threshold": cfg.diversity_warn, "evaluations": count}
        findings.append(_finding("mode_collapse.diversity", severity, start, end, evidence, message, context))
    return findings


def detect_modes(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """Fewer captured modes than the data has, and not gaining: warning; error at half or fewer.

    Signal: `eval_modes` (PacGAN protocol: modes with at least one high-quality sample) below
    the expected count (`cfg.expected_modes`, else `context["expected_modes"]`; neither: skip)
    by more than `modes_tolerance` of it and no higher than the best earlier evaluation, for
    `collapse_patience` evaluations after
    `eval_warmup_steps`; an error at or below expected * `modes_error_fraction`. A final
    evaluation at or below that is decisive alone (0 of 8 modes at the end is a collapse). A run still
    gaining modes is learning, not collapsed; one stuck below or losing modes has dropped them
    (Lin et al. 2018, PacGAN; Metz et al. 2017, unrolled GANs).
    """
    expected = cfg.expected_modes
    if expected is None and context:
        expected = as_number(context.get("expected_modes"))
    if expected is None:
        return []
    expected = float(expected)
    all_steps, all_values = series(eval_records(records), "eval_modes")
    # "not gaining" = no new best: a run hopping between mode sets (22, 16, 21, 17, 13) is flagged too;
    # a dip within `modes_tolerance` of the expected count (25 -> 24) is not a collapse
    limit = expected * (1.0 - cfg.modes_tolerance)
    decisive = expected * cfg.modes_error_fraction
    final = len(all_values) - 1 if ends_with_final(records) else -1
    flags = [
        value < limit and (i == 0 or value <= max(all_values[:i]))
        and (all_steps[i] >= cfg.eval_warmup_steps or (i == final and value <= decisive))
        for i, value in enumerate(all_values)
    ]
    findings = []
    for first, last in runs(flags):
        if last - first + 1 < cfg.collapse_patience and not (last == final and all_values[last] <= decisive):
            continue
        span = all_values[first:last + 1]
        worst = min(span)
        severity = "error" if worst <= expected * cfg.modes_error_fraction else "warning"
        start, end = all_steps[first], all_steps[last]
        message = (
            f"eval_modes was as low as {fmt(worst)} of the {fmt(expected)} expected modes "
            f"({fmt(expected - worst)} missing) without gaining over steps {start}-{end}."
        )
        evidence = {"modes": worst, "expected": expected, "missing": expected - worst}
        findings.append(_finding("mode_collapse.modes", severity, start, end, evidence, message, context))
    return findings


def _evaluation_failure(record: Mapping[str, Any], cfg: DoctorConfig, expected: Any) -> tuple[str, float, float]:
    """(metric, value, threshold) of an evaluation far from the data, or ("", 0, 0)."""
    precision, coverage = as_number(record.get("eval_precision")), as_number(record.get("eval_coverage"))
    modes, hq = as_number(record.get("eval_modes")), as_number(record.get("eval_hq_fraction"))
    fd, fd_real = as_number(record.get("eval_fd")), as_number(record.get("eval_fd_real"))
    limit = cfg.failed_precision_coverage
    if precision is not None and coverage is not None and precision <= limit and coverage <= limit:
        return "eval_precision+eval_coverage", max(precision, coverage), limit
    if fd is not None and fd_real is not None and fd_real > 0 and fd > cfg.failed_fd_multiple * fd_real:
        return "eval_fd", fd, cfg.failed_fd_multiple * fd_real
    if modes is not None and expected is not None and modes < float(expected) * cfg.failed_modes_fraction:
        return "eval_modes", modes, float(expected) * cfg.failed_modes_fraction
    if hq is not None and hq < cfg.failed_hq_fraction:
        return "eval_hq_fraction", hq, cfg.failed_hq_fraction
    return "", 0.0, 0.0


def _failure_detail(failure: tuple[str, float, float], record: Mapping[str, Any], cfg: DoctorConfig,
                    expected: Any) -> tuple[str, dict[str, float]]:
    """The message part and evidence of one failing evaluation."""
    metric, value, threshold = failure
    if metric == "eval_precision+eval_coverage":
        precision, coverage = float(record["eval_precision"]), float(record["eval_coverage"])
        return (f"eval_precision {fmt(precision)} and eval_coverage {fmt(coverage)} are both at or below "
                f"{fmt(threshold)}", {"precision": precision, "coverage": coverage, "threshold": threshold})
    if metric == "eval_fd":
        fd_real = float(record["eval_fd_real"])
        return (f"eval_fd {fmt(value)} is above {fmt(cfg.failed_fd_multiple)} x the evaluator's real-vs-real FD "
                f"{fmt(fd_real)} ({fmt(threshold)})",
                {"fd": value, "fd_real": fd_real, "multiple": cfg.failed_fd_multiple, "threshold": threshold})
    if metric == "eval_modes":
        return (f"eval_modes {fmt(value)} of {fmt(float(expected))} is below {fmt(threshold)}",
                {"modes": value, "expected": float(expected), "threshold": threshold})
    return f"eval_hq_fraction {fmt(value)} is below {fmt(threshold)}", {"hq_fraction": value, "threshold": threshold}


def detect_failed_evaluation(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """An evaluation far from the data: an error naming the metric and its value.

    Signal, per evaluation after `eval_warmup_steps` and always for the final one: on images,
    `eval_precision` and `eval_coverage` both at or below `failed_precision_coverage` (samples
    neither look real nor reach the real manifold); with an FD, `eval_fd` above
    `failed_fd_multiple` times `eval_fd_real` (the evaluator's own real-vs-real FD at the same
    sample size); on 2-D data with known modes, `eval_modes` below expected *
    `failed_modes_fraction`, or `eval_hq_fraction` below `failed_hq_fraction` (most samples far
    from every mode). One finding per run of failing evaluations. The final evaluation is the line
    marked `"final": true` (see `ends_with_final`).
    """
    evals = eval_records(records)
    expected = cfg.expected_modes
    if expected is None and context:
        expected = as_number(context.get("expected_modes"))
    failures = [_evaluation_failure(record, cfg, expected) for record in evals]
    final = len(evals) - 1 if ends_with_final(records) else -1
    flags = [bool(failures[i][0]) and (step_of(r) >= cfg.eval_warmup_steps or i == final)
             for i, r in enumerate(evals)]
    findings = []
    for first, last in runs(flags):
        record = evals[last]
        detail, evidence = _failure_detail(failures[last], record, cfg, expected)
        start, end = step_of(evals[first]), step_of(record)
        count = last - first + 1
        message = (
            f"The evaluation at step {end} is far from the data: {detail} ({count} failing "
            f"evaluation{'s' if count != 1 else ''} over steps {start}-{end})."
        )
        findings.append(_finding("evaluation.failed", "error", start, end, evidence, message, context,
                                 failures[last][0].split("+")[0]))
    return findings


# --------------------------------------------------------------------------------------------
# progress: stall and oscillation
# --------------------------------------------------------------------------------------------


def stall_metric(records: Records, cfg: DoctorConfig) -> tuple[str, bool] | None:
    """The (key, higher_is_better) judged by the stall detector, or None when none is logged."""
    evals = eval_records(records)
    key = cfg.stall_metric
    if key is None:
        key = main_metric_of({k for r in evals for k, v in r.items() if as_number(v) is not None}
                             & {"eval_fd", "eval_modes"})
    if key is None:
        return None
    higher = cfg.stall_higher_is_better
    if higher is None:
        higher = higher_is_better(key)
    return key, higher


def detect_stall(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """The main evaluation metric not improving for a window of evaluations: info, then warning.

    Signal: the main metric (`cfg.stall_metric`; default eval_fd, lower is better, else
    eval_modes, higher is better) has not beaten its best by `stall_min_delta` (relative) for
    `stall_window` evaluations (info) or twice that (warning). A metric reaching a perfect value
    (all expected modes) is convergence, not a stall. Plateaus are the signal early stopping and
    lr schedules act on; in GANs FID often plateaus before the losses show anything (Heusel et
    al. 2017 track FID over training for this reason).
    """
    chosen = stall_metric(records, cfg)
    if chosen is None:
        return []
    key, higher = chosen
    steps, values = _eval_series(records, key)
    expected = cfg.expected_modes
    if expected is None and context:
        expected = as_number(context.get("expected_modes"))
    best, best_index = 0.0, -1
    since: list[int] = []
    best_at: list[int] = []
    for index, value in enumerate(values):
        margin = cfg.stall_min_delta * max(abs(best), 1e-12)
        improved = best_index < 0 or (value > best + margin if higher else value < best - margin)
        if improved:
            best, best_index = value, index
        since.append(index - best_index)
        best_at.append(best_index)
    converged = key == "eval_modes" and expected is not None
    findings = []
    for first, last in runs([count >= cfg.stall_window for count in since]):
        best_index = best_at[last]
        if converged and values[best_index] >= float(expected):
            continue
        count = since[last]
        severity = "warning" if count >= 2 * cfg.stall_window else "info"
        start, end = steps[best_index], steps[last]
        message = (
            f"{key} has not improved on its best {fmt(values[best_index])} (step {start}) for "
            f"{count} evaluations, up to step {end} (latest {fmt(values[last])})."
        )
        evidence = {"best": values[best_index], "best_step": start, "evaluations_since_best": count,
                    "latest": values[last]}
        findings.append(_finding("stall", severity, start, end, evidence, message, context, key))
    return findings


def _detrended_stds(values: np.ndarray, window: int) -> np.ndarray:
    """Spread of the residual of a least-squares line over each run of `window` consecutive values.

    The spread is sqrt(pi/2) * mean |residual| (equal to the std for Gaussian noise, and less
    swayed by single outliers); entry j covers values[j : j + window].
    """
    blocks = np.lib.stride_tricks.sliding_window_view(values, window)
    t = np.arange(window, dtype=np.float64)
    t -= t.mean()
    centred = blocks - blocks.mean(axis=1, keepdims=True)
    slope = centred @ t / (t @ t)
    residual = centred - slope[:, None] * t[None, :]
    return np.sqrt(np.pi / 2) * np.abs(residual).mean(axis=1)


def _window_stds(steps: list[int], values: list[float], window: int, min_records: int,
                 interval: int) -> tuple[list[int], list[float | None]]:
    """(first record of each window, detrended std of the window ending at each record or None).

    The window ending at record e holds the records with a step in (steps[e] - window, steps[e]];
    only full windows (not cut by the start of the run) with at least `min_records` records count.
    """
    array = np.asarray(values, dtype=np.float64)
    begins = [bisect.bisect_right(steps, step - window) for step in steps]
    std_by_end: list[float | None] = [None] * len(values)
    by_length: dict[int, list[int]] = {}
    for end, begin in enumerate(begins):
        if end - begin + 1 >= min_records and steps[end] - window >= steps[0] - interval:
            by_length.setdefault(end - begin + 1, []).append(end)
    for length, ends in by_length.items():  # one vectorised pass per window length (one when logging is regular)
        stds = _detrended_stds(array, length)
        for end in ends:
            std_by_end[end] = float(stds[begins[end]])
    return begins, std_by_end


def detect_oscillation(records: Records, cfg: DoctorConfig, context: Context = None) -> list[Finding]:
    """Loss oscillations of growing amplitude: a warning.

    Signal: the detrended std of `cfg.osc_key` (loss_d) over `osc_blocks` consecutive windows of
    `osc_window_steps` G steps (each holding at least `osc_min_records` records), each at least
    `osc_growth` times the previous, the last above `osc_min_std`, holding for
    `osc_patience_steps` G steps (noise alone rarely does).
    Simultaneous gradient descent on an unregularised GAN cycles around the equilibrium with
    growing amplitude (Mescheder et al. 2018, Dirac-GAN; Nagarajan & Kolter 2017); gradient
    penalties such as R1 damp it.
    """
    steps, values = series(training_records(records), cfg.osc_key)
    window, blocks = cfg.osc_window_steps, cfg.osc_blocks
    interval = log_interval(steps)
    begins, std_by_end = _window_stds(steps, values, window, cfg.osc_min_records, interval)

    def chain(end: int) -> list[int] | None:
        """End indices of the `blocks` consecutive windows ending at record `end`, oldest first."""
        ends = [end]
        for _ in range(blocks - 1):
            previous = begins[ends[-1]] - 1
            if previous < 0:
                return None
            ends.append(previous)
        return ends[::-1]

    flags = [False] * len(values)
    chains: list[list[int] | None] = [None] * len(values)
    for end in range(len(values)):
        ends = chain(end)
        if ends is None or any(std_by_end[e] is None for e in ends):
            continue
        stds = [std_by_end[e] for e in ends]
        growing = all(stds[k + 1] >= cfg.osc_growth * stds[k] for k in range(blocks - 1))
        flags[end] = growing and stds[-1] >= cfg.osc_min_std
        chains[end] = ends
    findings = []
    for first, last in long_runs(steps, flags, cfg.osc_patience_steps, 1):
        peak = max(range(first, last + 1), key=lambda i: std_by_end[i])
        peak_chain = chains[peak]
        std_last = float(std_by_end[peak])
        std_first = float(std_by_end[peak_chain[0]])
        growth = std_last / std_first if std_first > 0 else float(np.finfo(np.float64).max)
        # the first G step the oldest window covers (a record at step s covers the interval's steps up to s)
        start = max(steps[first] - blocks * window, steps[begins[chains[first][0]]] - interval) + 1
        end = steps[last]
        message = (
            f"The detrended std of {cfg.osc_key} grew from {fmt(std_first)} to {fmt(std_last)} "
            f"({fmt(growth)}x) across {blocks} consecutive windows of {window} steps over steps "
            f"{start}-{end}."
        )
        evidence = {"std_first": std_first, "std_last": std_last, "growth": growth}
        findings.append(_finding("oscillation", "warning", start, end, evidence, message, context, cfg.osc_key))
    return findings


# --------------------------------------------------------------------------------------------
# registry and entry point
# --------------------------------------------------------------------------------------------

# detectors over training lines, and over evaluation lines (the Tracker reruns only the kind fed)
TRAINING_DETECTORS: tuple[Detector, ...] = (
    detect_nonfinite, detect_explosion, detect_critic_drift, detect_dead, detect_d_overpowers,
    detect_d_overfitting, detect_vanishing_g_grad, detect_oscillation,
)
EVAL_DETECTORS: tuple[Detector, ...] = (
    detect_coverage_drop, detect_class_kl, detect_diversity, detect_modes, detect_failed_evaluation,
    detect_stall,
)
DETECTORS: tuple[Detector, ...] = TRAINING_DETECTORS + EVAL_DETECTORS


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Findings ordered by start step, then most severe first, then code."""
    return sorted(findings, key=lambda f: (f.start_step, -severity_rank(f.severity), f.code, f.metric or ""))


def verdict(findings: Sequence[Finding]) -> str:
    """One word for a run: "failed" with any error, "warnings" with any warning, else "healthy"."""
    severities = {finding.severity for finding in findings}
    if "error" in severities:
        return "failed"
    if "warning" in severities:
        return "warnings"
    return "healthy"


def diagnose(records: Records, cfg: DoctorConfig | None = None, context: Context = None) -> list[Finding]:
    """Run every detector over a run's records and return all findings, ordered by start step."""
    cfg = cfg or DoctorConfig()
    findings: list[Finding] = []
    for detector in DETECTORS:
        findings.extend(detector(records, cfg, context))
    return sort_findings(findings)
