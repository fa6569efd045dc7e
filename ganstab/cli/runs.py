"""Commands over an existing run: `sample`, `eval`, `doctor` and `report`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


from ganstab.cli.common import cli_device
from ganstab.config import DataConfig, EvalConfig, to_dict
from ganstab.data import NAMED_SETS, DataSource, make_dataset, read_sample_set, with_reference
from ganstab.diagnose import context_from_config, diagnose, format_report, unread_reason, verdict
from ganstab.errors import UsageError
from ganstab.export import (GRID_MAX, check_grid_size, check_sample_out, check_sample_space, load_generator,
                            load_run_generator, write_samples)
from ganstab.metrics import EvaluatorSettings, InceptionFeatures, RunEvaluator, StackedEvaluator
from ganstab.metrics.inception import RESIZE as INCEPTION_RESIZE, score_images
from ganstab.pipeline import score_export
from ganstab.report.html import write_report
from ganstab.rundir import RunDir, atomic_write, finished_export, load_run_config, read_jsonl, read_metrics, skipped_note

EVAL_MAX = 200_000  # most samples `ganstab eval` scores (eval.n's own limit)

__all__ = ["EVAL_MAX", "cmd_sample", "cmd_eval", "cmd_eval_samples", "cmd_doctor", "cmd_report", "register"]


def cmd_sample(args: argparse.Namespace) -> int:
    """Write samples from a run's exported generator (or its newest valid checkpoint when none was exported)."""
    if args.format not in ("grid", "folder", "npy"):
        raise UsageError(f"--format must be grid, folder or npy, got {args.format!r}")
    if args.n <= 0:
        raise UsageError(f"--n must be positive, got {args.n}")
    check_grid_size(args.n, args.format)
    if args.classes is not None and args.classes != "all":
        raise UsageError(f"--classes takes 'all' (one row per class), got {args.classes!r}; use --class K for one class")
    if args.class_index is not None and args.classes is not None:
        raise UsageError("--class K and --classes all exclude each other; give one")
    device = cli_device(args.device)
    check_sample_out(Path(args.out), Path(args.run), args.format)
    generator, meta = load_run_generator(Path(args.run), device=str(device), echo=print)
    if args.format == "folder" and meta["data"].get("kind") == "points":
        raise UsageError("--format folder writes images, but this run generates 2-D points; use --format npy or grid")
    check_sample_space(meta, args.n, Path(args.out), args.format)
    path = write_samples(generator, meta, args.n, Path(args.out), args.format, args.seed, args.class_index,
                         args.classes == "all")
    count = args.n
    if args.classes == "all":
        classes = int(meta.get("num_classes") or 0)
        count = max(1, args.n // classes) * classes if classes else args.n
    print(f"wrote {count} samples to {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score a run's exported generator (or its best/ export) against the real data, or two sample sets."""
    if args.features not in (None, "ganstab", "inception"):
        raise UsageError(f"--features must be ganstab or inception, got {args.features!r}")
    if args.inception_weights is not None and args.features == "ganstab":
        raise UsageError("--inception-weights goes with --features inception; drop one of them")
    samples_only = [flag for flag, value in (("--against", args.against), ("--data", args.data),
                                             ("--json", args.json), ("--cache-dir", args.cache_dir),
                                             ("--evaluator-epochs", args.evaluator_epochs)) if value is not None]
    if args.samples is not None:
        if args.run is not None or args.best or args.seed is not None:
            raise UsageError("--samples scores two sample sets; --run, --best and --seed score a run: give one of them")
        return cmd_eval_samples(args)
    if args.run is None:
        raise UsageError("eval needs --run DIR, or --samples A --against B to score two sample sets")
    if samples_only:
        raise UsageError(f"{samples_only[0]} goes with --samples A --against B, not with --run; drop it")
    run = Path(args.run)
    if args.n is not None and args.n < 2:
        raise UsageError(f"--n must be at least 2, got {args.n}")
    if args.n is not None and args.n > EVAL_MAX:
        raise UsageError(f"--n must be at most {EVAL_MAX:,} (the evaluator's limit, as for eval.n), got {args.n}")
    device = cli_device(args.device)
    cfg = load_run_config(run)
    source = RunDir(run).best if args.best else run
    if args.best:
        generator, meta = load_generator(source, device=str(device))
    else:
        generator, meta = load_run_generator(source, device=str(device), echo=print)
    inception = _run_inception(args, cfg.eval.features, cfg.eval.inception_weights, meta, device)
    scored = score_export(cfg, generator, meta, device, n=args.n, seed=args.seed, inception=inception, echo=print)
    n, seed, scores, provenance = scored.n, scored.seed, scored.scores, scored.provenance
    if scored.test_accuracy is not None and inception is None:
        print(f"evaluator test accuracy: {scored.test_accuracy:.4f}")
    width = max(len(k) for k in scores)
    print(f"{source} ({n} samples against {provenance['reference_n']} real test images, "
          f"{provenance['features']}, step {meta.get('step')}):")
    for key, value in scores.items():
        print(f"  {key:<{width}}  {value:.6g}")
    # an Inception score is written beside the evaluator's of the same n and seed, never over it
    out = run / f"eval-n{n}-seed{seed}{'-best' if args.best else ''}{'-inception' if inception else ''}.json"
    atomic_write(out, json.dumps({"seed": seed, "step": meta.get("step"), **provenance, **scores}, indent=2))
    print(f"written: {out}")
    return 0


def _run_inception(args: argparse.Namespace, features: str, weights: str | None, meta: dict,
                   device: object) -> InceptionFeatures | None:
    """The Inception network `eval --run` scores the test reference with (--features, else the run's eval.features),
    None for ganstab's evaluator; the library and the weights file are checked before any scoring."""
    if (args.features or features) != "inception":
        return None
    asked_by = "--features inception" if args.features else "the run's eval.features=inception"
    if meta["data"].get("kind") == "points":
        raise UsageError("--features inception scores images, but this run generates 2-D points; drop --features")
    source = "--inception-weights" if args.inception_weights else "the run's eval.inception_weights"
    return InceptionFeatures(args.inception_weights or weights, device, source, "--inception-weights PATH", asked_by)


def _sample_set(path: str, flag: str) -> DataSource:
    """A sample set read for `eval --samples`, its notes (skipped files) printed."""
    source = read_sample_set(path)
    for note in source.notes:
        print(f"{flag}: {note}")
    return source


def _shape(source: DataSource) -> str:
    """(C, H, W) or (D,) of one sample, as printed in messages."""
    return str(tuple(int(s) for s in source.shape))


def _evaluator_line(evaluator: RunEvaluator, trained_on: str) -> tuple[str, dict[str, object]]:
    """The printed line and the JSON entry that name the feature space the numbers live in."""
    network = evaluator.evaluator
    if network is None:
        space = "mode coverage (PacGAN)" if evaluator.kind == "modes" else "raw coordinates"
        return f"scored on {space}, no evaluator network", {"space": space}
    channel = network.channel_evaluator if isinstance(network, StackedEvaluator) else network
    settings, digest = channel.settings, channel.weights_sha256()[:12]
    line = (f"evaluator: {settings.kind} trained on {trained_on} (version {settings.version}, weights sha256 {digest}); "
            "numbers are comparable only with numbers of this evaluator")
    return line, {"kind": settings.kind, "trained_on": trained_on, "version": settings.version, "hash": digest}


def _check_evaluable(source: DataSource, path: str) -> None:
    """Images on which ganstab can train its own evaluator: 1 or 3 channels, sides 8 to 64 pixels."""
    channels, height, width = source.shape
    try:
        EvaluatorSettings("autoencoder", channels, height, width)
    except ValueError as exc:
        raise UsageError(f"--against {path}: {exc}; ganstab's evaluator cannot learn these images, score against a "
                         f"named data set with --data NAME") from None


def _check_samples_args(args: argparse.Namespace) -> bool:
    """The checks of `eval --samples` that need no file read; returns whether --against names a data set."""
    if args.against is None:
        raise UsageError("--samples A needs --against B: the real reference (a folder, .npy/.npz, or "
                         f"a data set name: {', '.join(NAMED_SETS)})")
    if args.data is not None and args.data not in NAMED_SETS:
        raise UsageError(f"--data {args.data!r} is not a data set ganstab finds without a path; use one of "
                         f"{', '.join(NAMED_SETS)}")
    named = args.against in NAMED_SETS and not Path(args.against).exists()
    if not named and not Path(args.against).exists():
        raise UsageError(f"--against {args.against!r} does not exist and is not a data set name; pass a folder of "
                         f"images, a .npy/.npz file or one of {', '.join(NAMED_SETS)}")
    if not Path(args.samples).exists():
        raise UsageError(f"--samples {args.samples!r} does not exist; pass a folder of images or a .npy/.npz file")
    if not named and Path(args.samples).resolve() == Path(args.against).resolve():
        raise UsageError(f"--samples and --against are the same path {args.samples!r}; pass the real reference set "
                         "as --against")
    if named and args.data is not None and args.data != args.against:
        raise UsageError(f"--against {args.against} already names the evaluator's data set; drop --data {args.data}")
    if args.evaluator_epochs is not None and not 0 < args.evaluator_epochs <= 100:
        raise UsageError(f"--evaluator-epochs must be 1 to 100, got {args.evaluator_epochs}")
    if args.json is not None and not Path(args.json).resolve().parent.is_dir():
        raise UsageError(f"--json {args.json}: its folder does not exist; create it or write the JSON elsewhere")
    return named


def _reference_data(args: argparse.Namespace, fake: DataSource, named: bool) -> tuple[DataSource, str, str]:
    """(the DataSource the evaluator is built on, the reference's name, what the evaluator learnt from)."""
    if named or args.data is not None:
        data = make_dataset(DataConfig(name=args.data or args.against))
        if named:
            return data, data.name, data.name
    real = _sample_set(args.against, "--against")
    if fake.kind != real.kind or fake.shape != real.shape:
        raise UsageError(f"--samples {args.samples} holds samples of shape {_shape(fake)} but --against "
                         f"{args.against} holds {_shape(real)}; score sets of one shape")
    if args.data is None:
        if real.kind == "image":
            _check_evaluable(real, args.against)
        return real, args.against, args.against
    if real.kind != "image" or data.kind != "image":
        points = args.against if real.kind != "image" else args.data
        raise UsageError(f"--data picks an evaluator network for images, but {points} holds points, which are "
                         "scored on raw coordinates; drop --data")
    if real.shape != data.shape:
        raise UsageError(f"--against {args.against} holds samples of shape {_shape(real)} but the evaluator of "
                         f"--data {args.data} reads {_shape(data)}; pass a reference of that shape or drop --data")
    return with_reference(data, real.train), args.against, data.name


def _samples_scored(args: argparse.Namespace, fake: DataSource, data: DataSource, reference: str) -> int:
    """How many samples of A `eval --samples` scores (--n, else all), once A and the reference have one shape."""
    if fake.kind != data.kind or fake.shape != data.shape:
        raise UsageError(f"--samples {args.samples} holds samples of shape {_shape(fake)} but {reference} has "
                         f"{_shape(data)}; score sets of one shape")
    n = len(fake) if args.n is None else args.n
    if n < 2 or n > min(len(fake), EVAL_MAX):
        raise UsageError(f"--n must be 2 to {min(len(fake), EVAL_MAX):,} (the samples in {args.samples}, at most "
                         f"{EVAL_MAX:,}), got {n}")
    return n


def cmd_eval_samples(args: argparse.Namespace) -> int:
    """Score sample set A against reference B (a folder, .npy/.npz or a data set name) with one evaluator."""
    named = _check_samples_args(args)
    if args.features == "inception":
        return _eval_samples_inception(args, named)
    fake = _sample_set(args.samples, "--samples")
    data, reference, trained_on = _reference_data(args, fake, named)
    if data.channel_source is not None:  # stacked data: the 1-channel data's network on every channel
        trained_on = f"{data.channel_source.name}, applied to every channel"
    n = _samples_scored(args, fake, data, reference)
    device = cli_device(args.device)
    defaults = EvalConfig()
    # a named data set: its test reference, as `eval --run` cuts it; a reference the user gave: all of it (no
    # validation part is held out of it, since nothing selects here)
    evaluator = RunEvaluator(data.to(device), n, device, args.cache_dir,
                             args.evaluator_epochs or defaults.evaluator_epochs, echo=print,
                             evaluator_images=defaults.evaluator_images, val_n=None if named else 0,
                             evaluator="train" if args.evaluator_epochs else defaults.evaluator)
    scores = evaluator.score_samples(fake.train[:n], split="test")
    line, about = _evaluator_line(evaluator, trained_on)
    print(line)
    if evaluator.test_accuracy is not None and not math.isnan(evaluator.test_accuracy):
        print(f"evaluator test accuracy: {evaluator.test_accuracy:.4f}")
    width = max(len(k) for k in scores)
    size = evaluator.split_reference("test").size
    print(f"{args.samples} against {reference} ({n} samples, {size} reference):")
    for key, value in scores.items():
        print(f"  {key:<{width}}  {value:.6g}")
    if args.json is not None:
        provenance = {**evaluator.provenance("test"), "n": n, "resize": "none"}  # as eval --run writes them
        record = {**provenance, "samples": str(args.samples), "against": str(reference), "reference_n": size,
                  "evaluator": about, **scores}
        atomic_write(Path(args.json), json.dumps(record, indent=2))
        print(f"written: {args.json}")
    return 0


def _eval_samples_inception(args: argparse.Namespace, named: bool) -> int:
    """`eval --samples A --against B --features inception`: torch-fidelity's Inception metrics of A against B's test
    reference, cut as the ganstab path cuts it (a named set's as `eval --run` does, else B's first n), with the keys
    of `eval --run`'s JSON."""
    unused = [flag for flag, value in (("--data", args.data), ("--cache-dir", args.cache_dir),
                                       ("--evaluator-epochs", args.evaluator_epochs)) if value is not None]
    if unused:
        raise UsageError(f"{unused[0]} sets ganstab's evaluator network, which --features inception does not use; "
                         "drop it")
    device = cli_device(args.device)
    inception = InceptionFeatures(args.inception_weights, device, "--inception-weights", "--inception-weights PATH",
                                  "--features inception")
    fake = _sample_set(args.samples, "--samples")
    data = make_dataset(DataConfig(name=args.against)) if named else _sample_set(args.against, "--against")
    reference = data.name if named else args.against
    for path, source in ((args.samples, fake), (reference, data)):
        if source.kind != "image":
            raise UsageError(f"--features inception scores images, but {path} holds points; drop --features")
    n = _samples_scored(args, fake, data, reference)
    real = data.reference("test", n, None if named else 0)  # no validation part is held out of a given B
    scores = score_images(inception, real.to(device), fake.train[:n].to(device))
    print(f"features: {inception.name} (torch-fidelity's InceptionV3, weights {inception.file}); comparable with "
          "Inception metrics of the same weights, resize and sample counts")
    width = max(len(k) for k in scores)
    print(f"{args.samples} against {reference} ({n} samples, {len(real)} reference):")
    for key, value in scores.items():
        print(f"  {key:<{width}}  {value:.6g}")
    if args.json is not None:
        record = {"split": "test", "reference_n": len(real), "n": n, "features": inception.name,
                  "resize": INCEPTION_RESIZE, "samples": str(args.samples), "against": str(reference),
                  "evaluator": {"kind": "inception-v3-compat", "sha256": inception.digest}, **scores}
        atomic_write(Path(args.json), json.dumps(record, indent=2))
        print(f"written: {args.json}")
    return 0


def _warn(note: str) -> None:
    """One warning line on stderr."""
    print(f"ganstab: warning: {note}", file=sys.stderr, flush=True)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the stability findings of a finished or running run."""
    run = RunDir(args.run)
    cfg = load_run_config(run.root)
    if not run.metrics.is_file():
        raise UsageError(f"{run.root}: no metrics.jsonl yet; the run has not logged anything")
    found = read_metrics(run.root)
    if found.skipped:  # damaged lines the command goes on past
        _warn(skipped_note(found.skipped))
    records = found.records
    findings = diagnose(records, cfg.doctor, context_from_config(to_dict(cfg)))
    last = max((int(r["step"]) for r in records), default=0)
    print(f"{run.root}: {len(records)} logged lines up to step {last}")
    if run.recoveries.is_file():
        events = [r for r in read_jsonl(run.recoveries) if "after_step" not in r]
        print(f"automatic recoveries: {len(events)} (see {run.recoveries})")
    print(format_report(findings))
    reason = unread_reason(found, finished=finished_export(run.root))
    outcome = "unknown" if reason else verdict(findings)
    print(f"verdict: {outcome}" + (f" ({reason})" if reason else ""))
    return 1 if args.strict and outcome in ("failed", "unknown") else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write report.html for a run directory or an ablation folder."""
    path = write_report(Path(args.path), warn=_warn)  # a run's damaged lines: warned while read for the report
    print(f"report: {path}")
    return 0


def _register_eval(sub: argparse._SubParsersAction) -> None:
    """Add the `eval` command (a run, or two sample sets)."""
    p = sub.add_parser("eval", help="evaluate a trained run offline (FD, KID, precision/recall, modes, ...)",
                       description="Score a run's generator, or any sample set against a reference set, with "
                                   "ganstab's own evaluator network, or with --features inception torch-fidelity's "
                                   "InceptionV3 over your weights file (no downloads).")
    p.add_argument("--run", default=None, metavar="DIR", help="run directory")
    p.add_argument("--samples", default=None, metavar="A",
                   help="score this sample set instead of a run: a folder of images (ganstab sample --format "
                        "folder), or a .npy/.npz array (N, C, H, W) / (N, H, W[, C]) of uint8 or floats in [0, 1] or "
                        "[-1, 1], or points (N, 2)")
    p.add_argument("--against", default=None, metavar="B",
                   help="with --samples: the real reference, a set in the same formats or a data set name "
                        f"({', '.join(NAMED_SETS)}: its test split, as runs on it are scored)")
    p.add_argument("--data", default=None, metavar="NAME",
                   help="with --samples and a reference set B: use this data set's cached evaluator network (as runs "
                        "on it do) instead of one trained on B")
    p.add_argument("--json", default=None, metavar="OUT", help="with --samples: also write the scores to OUT")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="with --samples: evaluator cache (default $GANSTAB_CACHE or ~/.cache/ganstab, as "
                        "eval.cache_dir)")
    p.add_argument("--evaluator-epochs", type=int, default=None, metavar="E",
                   help="with --samples: the evaluator's training epochs (default 3, as eval.evaluator_epochs; given, it "
                        "trains one even for digits and fashion-mnist, whose shipped network is used otherwise)")
    p.add_argument("--n", type=int, default=None,
                   help=f"number of generated samples (default: eval.n of the run, or every sample of --samples; "
                        f"at most {EVAL_MAX:,})")
    p.add_argument("--seed", type=int, default=None,
                   help="latent seed (default: the run's seed + 7, the seed of training's final test evaluation, so the "
                        "scores of the final export equal the test eval_* line of metrics.jsonl at the same n)")
    p.add_argument("--best", action="store_true", help="score best/ (the best checkpoint by the main metric)")
    p.add_argument("--features", default=None, metavar="NET",
                   help="ganstab (its evaluator network) or inception (torch-fidelity's InceptionV3: FID, KID, IS, "
                        "precision/recall; needs the library and --inception-weights); default: the run's "
                        "eval.features, ganstab for --samples")
    p.add_argument("--inception-weights", default=None, metavar="PATH",
                   help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth (default: the run's "
                        "eval.inception_weights, else $GANSTAB_INCEPTION_WEIGHTS); ganstab never downloads it")
    p.add_argument("--device", default="cpu", help="device: cpu, cuda, cuda:N, mps or auto (default cpu)")
    p.set_defaults(func=cmd_eval)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `sample`, `eval`, `doctor` and `report` commands."""
    p = sub.add_parser("sample", help="write samples from a trained run",
                       description="Sample from a run's exported generator (EMA weights when trained with EMA).")
    p.add_argument("--run", required=True, metavar="DIR", help="run directory (holds generator.safetensors)")
    p.add_argument("--n", type=int, default=64,
                   help=f"number of samples (default 64; a grid shows at most {GRID_MAX:,}, folder and npy are "
                        "written in chunks, any n that fits on disk)")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="output .png/.jpg grid, folder or .npy file (never a file of a run: refused)")
    p.add_argument("--format", default="grid",
                   help="grid (default): one PNG; folder: one PNG per sample (for pytorch-fid/clean-fid); "
                        "npy: raw array")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--device", default="cpu",
                   help="device to sample on: cpu, cuda, cuda:N, mps or auto (default cpu)")
    p.add_argument("--class", dest="class_index", type=int, default=None, metavar="K",
                   help="conditional runs: samples of class K only (0-based; generator.json lists the names)")
    p.add_argument("--classes", default=None, metavar="all",
                   help="conditional runs: 'all' writes n // classes samples of every class, one row per class")
    p.set_defaults(func=cmd_sample)

    _register_eval(sub)

    p = sub.add_parser("doctor", help="diagnose a run: mode collapse, divergence, stalls, with advice",
                       description="Run the stability detectors over a run's metrics.jsonl and print the findings.")
    p.add_argument("run", metavar="RUN_DIR", help="run directory")
    p.add_argument("--strict", action="store_true", help="exit 1 when the verdict is failed (a finding of severity error)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("report", help="write a self-contained report.html for a run or an ablation",
                       description="Write PATH/report.html: curves, findings on the timeline, samples (runs) or "
                                   "the ranked summary, bar and line charts and links to the runs (ablations).")
    p.add_argument("path", metavar="RUN_DIR|ABLATION_DIR", help="a run directory or an ablation folder")
    p.set_defaults(func=cmd_report)
