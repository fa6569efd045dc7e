"""Hostile inputs around a finished training (issue #25, part A): nothing trained is lost to what comes after it,
no input exhausts the machine, degenerate data is named.

Each row of CASES is one hostile case with the exact first line it prints, its exit status, and (for a failure
after training) the run's files that must still be there: generator.safetensors/json, checkpoints, metrics.jsonl.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ganstab import pipeline
from ganstab.cli import main
from ganstab.data import DataSource
from ganstab.data import images as data_images
from ganstab.metrics import evaluator as evaluator_module
from ganstab.metrics.run_eval import MIN_REAL_DIVERSITY, RunEvaluator
from ganstab.metrics.stats import sample_spread
from ganstab.rundir import LOCK_FILE, read_jsonl
from ganstab.sampling import class_grid
from ganstab.training import outputs as outputs_module

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["log.progress=false", "train.steps=2", "train.batch_size=8", "model.width=8", "log.every=1", "eval.n=64",
         "eval.every=0", "eval.evaluator_epochs=1", "train.device=cpu"]
KEPT = ("generator.safetensors", "generator.json", "metrics.jsonl", "checkpoints/ckpt_0000002.pt")
FREE = 8 * 10**9  # the free memory the size checks see in this table


def _tiny_npz(path: Path, n: int, classes: int, seed: int = 0) -> Path:
    """n random 8x8 uint8 images with labels 0..classes-1 (enough for the evaluator's batch of 128)."""
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=np.arange(n) % classes)
    return path


@pytest.fixture(scope="session")
def warm(tmp_path_factory) -> dict[str, Path]:
    """Two tiny data sets (2 classes; 100 classes) and an evaluator cache trained on each, made once."""
    root = tmp_path_factory.mktemp("warm")
    data = {"npz": _tiny_npz(root / "tiny.npz", 256, 2), "npz100": _tiny_npz(root / "c100.npz", 300, 100, seed=1)}
    cache = root / "cache"
    for name, path in data.items():
        conditional = ["model.conditional=true"] if name == "npz100" else []
        code = main(["train", f"out={root / name}", f"eval.cache_dir={cache}", "data.name=npz", f"data.path={path}",
                     *TRAIN, *conditional])
        assert code == 0
    stems = sorted({p.with_suffix("") for p in cache.glob("evaluator-*.json")})
    assert len(stems) == 2
    stem = next(s for s in stems if json.loads(s.with_suffix(".json").read_text())["settings"]["num_classes"] == 2)
    return {"npz": data["npz"], "npz100": data["npz100"], "cache": cache, "stem": stem}


@dataclass
class Ctx:
    """What a case's setup may use: its folder, the warm data and cache (a copy of its own), monkeypatch."""

    dir: Path
    cache: Path
    stem: Path
    monkeypatch: pytest.MonkeyPatch
    subs: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------- setups
def _write(rel: str, data: bytes | str) -> Callable[[Ctx], None]:
    """Overwrite a file of the cache entry (`weights` or `json`) with `data`."""
    def setup(ctx: Ctx) -> None:
        path = ctx.stem.with_name(ctx.stem.name + (".safetensors" if rel == "weights" else ".json"))
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return setup


def _edit_json(change: Callable[[dict], object]) -> Callable[[Ctx], None]:
    """Rewrite the cache entry's metadata through `change` (which returns the new JSON value)."""
    def setup(ctx: Ctx) -> None:
        path = ctx.stem.with_name(ctx.stem.name + ".json")
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return setup


def _truncate_weights(size: int) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        path = ctx.stem.with_name(ctx.stem.name + ".safetensors")
        path.write_bytes(path.read_bytes()[:size])
    return setup


def _other_weights(ctx: Ctx) -> None:
    save_file({"other": torch.zeros(3)}, str(ctx.stem.with_name(ctx.stem.name + ".safetensors")))


def _json_is_folder(ctx: Ctx) -> None:
    path = ctx.stem.with_name(ctx.stem.name + ".json")
    path.unlink()
    path.mkdir()


def _raise(error: BaseException) -> Callable[..., None]:
    def fail(*_args, **_kwargs) -> None:
        raise error
    return fail


def _patch(owner: object, name: str, error: BaseException) -> Callable[[Ctx], None]:
    """Make `owner.name` raise `error` when called."""
    def setup(ctx: Ctx) -> None:
        ctx.monkeypatch.setattr(owner, name, _raise(error))
    return setup


def _both(*setups: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        for one in setups:
            one(ctx)
    return setup


def _idx_other_test_size(ctx: Ctx) -> None:
    folder = ctx.dir / "idx"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in (("train-images-idx3-ubyte", (16, 8, 8)), ("t10k-images-idx3-ubyte", (4, 6, 6))):
        header = b"\0\0\x08\x03" + b"".join(int(d).to_bytes(4, "big") for d in shape)
        (folder / name).write_bytes(header + rng.integers(0, 256, shape, dtype=np.uint8).tobytes())


def _npz(name: str, **arrays: np.ndarray) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        np.savez(ctx.dir / name, **arrays)
    return setup


def _identical_pngs(ctx: Ctx) -> None:
    (ctx.dir / "same").mkdir()
    for i in range(16):
        Image.fromarray(np.full((8, 8), 90, dtype=np.uint8)).save(ctx.dir / "same" / f"{i:02d}.png")


def _npz_header_only(name: str, shapes: dict[str, tuple[tuple[int, ...], str]]) -> Callable[[Ctx], None]:
    """An .npz whose members are only .npy headers claiming `shapes` (a decompression bomb's promise)."""
    def setup(ctx: Ctx) -> None:
        with zipfile.ZipFile(ctx.dir / name, "w") as archive:
            for key, (shape, dtype) in shapes.items():
                with archive.open(f"{key}.npy", "w") as fh:
                    np.lib.format.write_array_header_1_0(
                        fh, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
        ctx.monkeypatch.setattr(data_images, "available_host_memory", lambda: FREE)
    return setup


def _small_memory(ctx: Ctx) -> None:
    ctx.monkeypatch.setattr(data_images, "available_host_memory", lambda: 10_000)


def _file(name: str, text: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        (ctx.dir / name).write_text(text)
    return setup


def _cache_env_below_file(ctx: Ctx) -> None:
    (ctx.dir / "afile").write_text("x")
    ctx.monkeypatch.setenv("GANSTAB_CACHE", str(ctx.dir / "afile" / "cache"))


# --------------------------------------------------------------------------------------- the table
@dataclass
class Case:
    """One hostile case: the command, its setup, the exact first line, the exit status, what must be kept."""

    name: str
    argv: list[str]
    first: str
    code: int = 2
    setup: Optional[Callable[[Ctx], None]] = None
    kept: bool = False  # the run trained: generator, checkpoints and metrics must be there afterwards
    failed_at: int = 2  # the step of the failed phase (its finding's step)
    also: str = ""  # a text that must appear in the output besides the first line


NPZ = ["data.name=npz", "data.path={npz}"]
AFTER = "training reached step 2 and the generator, checkpoints and metrics are saved in {out}, but the "
RETRAIN = "evaluator: cache entry {stem} is unreadable ("
SEEDS = ",".join(str(i) for i in range(1001))
VARY_100 = ",".join(str(i) for i in range(1, 101))

CASES: list[Case] = [
    # -- a damaged or foreign evaluator cache entry: retrained with one line, the run finishes (exit 0)
    Case("cache weights truncated", ["train", *NPZ], RETRAIN + "{stem}.safetensors is not a readable safetensors "
         "file (Error while deserializing header: header too small)); retraining it", 0, _truncate_weights(4), True),
    Case("cache weights cut mid-header", ["train", *NPZ], RETRAIN + "{stem}.safetensors is not a readable "
         "safetensors file (Error while deserializing header: invalid header length)); retraining it", 0,
         _truncate_weights(50), True),
    Case("cache weights empty", ["train", *NPZ], RETRAIN + "{stem}.safetensors is not a readable safetensors file "
         "(Error while deserializing header: header too small)); retraining it", 0, _write("weights", b""), True),
    Case("cache weights of another network", ["train", *NPZ], RETRAIN + "Error(s) in loading state_dict for "
         "_Classifier:); retraining it", 0, _other_weights, True),
    Case("cache metadata a JSON list", ["train", *NPZ], RETRAIN + "{stem}.json is not a ganstab evaluator file); "
         "retraining it", 0, _write("json", "[1, 2]"), True),
    Case("cache metadata a JSON string", ["train", *NPZ], RETRAIN + "{stem}.json is not a ganstab evaluator file); "
         "retraining it", 0, _write("json", '"evaluator"'), True),
    Case("cache metadata not JSON", ["train", *NPZ], RETRAIN + "Expecting value: line 1 column 1 (char 0)); "
         "retraining it", 0, _write("json", "\x00\x01 not json"), True),
    Case("cache settings a string", ["train", *NPZ], RETRAIN + "{stem}.json: 'settings' must be a mapping, got str); "
         "retraining it", 0, _edit_json(lambda m: dict(m, settings="classifier")), True),
    Case("cache settings of the wrong type", ["train", *NPZ], RETRAIN + "images need 1 or 3 channels, got one); "
         "retraining it", 0, _edit_json(lambda m: dict(m, settings=dict(m["settings"], in_channels="one"))), True),
    Case("cache settings unknown key", ["train", *NPZ], RETRAIN + "unknown evaluator settings: ['depth']); "
         "retraining it", 0, _edit_json(lambda m: dict(m, settings=dict(m["settings"], depth=9))), True),
    Case("cache accuracy a string", ["train", *NPZ], RETRAIN + "{stem}.json: 'test_accuracy' must be a number or "
         "null, got str); retraining it", 0, _edit_json(lambda m: dict(m, test_accuracy="high")), True),
    Case("cache metadata a folder", ["train", *NPZ], RETRAIN + "[Errno 21] Is a directory: '{stem}.json'); "
         "retraining it", 0, _json_is_folder, True),
    Case("cache entry of other data", ["train", *NPZ], "evaluator: cache entry {stem} has a different digest; "
         "retraining it", 0, _edit_json(lambda m: dict(m, data_hash="0" * 64)), True),
    # -- a phase after the export fails: one line, exit 2, the trained run kept
    Case("plots hit a full disk", ["train", *NPZ], AFTER + "plots failed: No space left on device 'plots/eval.png'; "
         "fix that, then write them with: ganstab report {out}", 2,
         _patch(pipeline, "plot_run", OSError(errno.ENOSPC, "No space left on device", "plots/eval.png")), True),
    Case("report fails", ["train", *NPZ], AFTER + "report failed: RuntimeError: template broken; fix that, then "
         "write it with: ganstab report {out}", 2, _patch(pipeline, "write_report", RuntimeError("template broken")),
         True),
    Case("final evaluation out of memory", ["train", *NPZ], AFTER + "final evaluation failed: MemoryError; fix that, "
         "then score the run with: ganstab eval --run {out}", 2, _patch(RunEvaluator, "evaluate", MemoryError()),
         True),
    Case("evaluator training fails", ["train", *NPZ], AFTER + "final evaluation failed: ValueError: test_images and "
         "images differ in shape; fix that, then score the run with: ganstab eval --run {out}", 2,
         _both(_write("json", "[]"),
               _patch(evaluator_module, "train_evaluator", ValueError("test_images and images differ in shape"))),
         True),
    Case("evaluation during training fails", ["train", *NPZ, "eval.every=1"], AFTER + "evaluation failed: "
         "Permission denied '/root/x'; fix that, then score the run with: ganstab eval --run {out}", 2,
         _patch(RunEvaluator, "evaluate", PermissionError(errno.EACCES, "Permission denied", "/root/x")), True, 1),
    Case("final sample grid on a full disk", ["train", *NPZ], AFTER + "final sample grid failed: No space left on "
         "device 'grid.png'; fix that, then draw samples with: ganstab sample --run {out} --out samples.png", 2,
         _patch(outputs_module, "save_image_grid", OSError(errno.ENOSPC, "No space left on device", "grid.png")),
         True),
    Case("cache cannot be written after retraining", ["train", *NPZ], RETRAIN + "{stem}.json is not a ganstab "
         "evaluator file); retraining it", 0,
         _both(_write("json", "[]"),
               _patch(evaluator_module.Evaluator, "save", OSError(errno.EROFS, "Read-only file system"))),
         True, also="(not cached: Read-only file system for {stem})"),
    # -- what can be known before step 1 is checked before step 1 (nothing written)
    Case("cache folder below a file", ["train", *NPZ, "eval.cache_dir={dir}/afile/cache"],  # the config's path check
         "eval.cache_dir '{dir}/afile/cache' lies below '{dir}/afile', which is a file; choose another "
         "eval.cache_dir or remove it", 2, _file("afile", "x")),
    Case("cache folder is a file", ["train", *NPZ, "eval.cache_dir={dir}/afile"],
         "eval.cache_dir '{dir}/afile' cannot be used for the evaluator cache (File exists); set eval.cache_dir (or "
         "GANSTAB_CACHE) to a writable folder, or eval.final=false eval.every=0 to train without evaluation", 2,
         _file("afile", "x")),
    Case("GANSTAB_CACHE below a file", ["train", *NPZ, "eval.cache_dir=null"],
         "eval.cache_dir '{dir}/afile/cache' cannot be used for the evaluator cache (Not a directory); set "
         "eval.cache_dir (or GANSTAB_CACHE) to a writable folder, or eval.final=false eval.every=0 to train without "
         "evaluation", 2, _cache_env_below_file),
    Case("test split of another size", ["train", "data.name=idx", "data.path={dir}/idx"],
         "idx: the test split holds 1x6x6 images but the training split 1x8x8; set data.image_size=8 to bring both "
         "to one size, or use test files of the training size", 2, _idx_other_test_size),
    # -- degenerate data is named before training (refused: see check_variation)
    Case("identical images", ["train", "data.name=npz", "data.path={dir}/same.npz"],
         "data set npz has no variation: its 32 first images are identical or nearly (mean spread 0 on the [-1, 1] "
         "scale, below 0.01), so a GAN learns nothing and every metric would be meaningless; use data whose samples "
         "differ", 2, _npz("same.npz", x=np.full((32, 8, 8), 7, dtype=np.uint8))),
    Case("nearly identical images", ["train", "data.name=npz", "data.path={dir}/near.npz"],
         "data set npz has no variation: its 32 first images are identical or nearly (mean spread 0.002 on the "
         "[-1, 1] scale, below 0.01), so a GAN learns nothing and every metric would be meaningless; use data whose "
         "samples differ", 2,
         _npz("near.npz", x=(0.5 + 1e-3 * np.random.default_rng(0).standard_normal((32, 8, 8))).astype(np.float32))),
    Case("identical points", ["train", "data.name=npz", "data.path={dir}/points.npz"],
         "data set npz has no variation: its 64 first points are identical or nearly (mean spread 0 in data units, "
         "below 1e-06), so a GAN learns nothing and every metric would be meaningless; use data whose samples "
         "differ", 2, _npz("points.npz", x=np.ones((64, 2), dtype=np.float32))),
    Case("folder of one image copied", ["train", "data.name=folder", "data.path={dir}/same"],
         "data set folder has no variation: its 16 first images are identical or nearly (mean spread 0 on the "
         "[-1, 1] scale, below 0.01), so a GAN learns nothing and every metric would be meaningless; use data whose "
         "samples differ", 2, _identical_pngs),
    # -- more classes than the sample grid has rows: one row per class, the run finishes
    Case("100 classes, 64 samples", ["train", "data.name=npz", "data.path={npz100}", "model.conditional=true",
                                     "eval.final=false"], "trained 2 G steps (2 D steps, 16 real images) in {out}",
         0, None, True),
    Case("100 classes, 8 samples, evaluated", ["train", "data.name=npz", "data.path={npz100}",
                                               "model.conditional=true", "log.n_samples=8"],
         "doctor: error at steps 2-2: The evaluation at step 2 is far from the data: eval_precision 0 and "
         "eval_coverage 0 are both at or below 0.05 (1 failing evaluation over steps 2-2). Advice: The generator's "
         "samples are far from the data; check the samples, then try loss.kind=wasserstein with penalty.gp=10 and "
         "train.n_critic=5, or keep the loss, add penalty.r1=10 and use TTUR (optim.d_lr=4e-4, optim.g_lr=1e-4).",
         0, None, True),
    # -- sizes checked before allocation
    Case("npz bomb header", ["train", "data.name=npz", "data.path={dir}/bomb.npz"],
         "'{dir}/bomb.npz' holds 'x' (1000000, 1000, 1000) uint8: about 9000.0 GB once loaded, but 8.0 GB of memory "
         "is available; use a smaller file, or a folder of images with data.stream=true", 2,
         _npz_header_only("bomb.npz", {"x": ((10**6, 1000, 1000), "u1")})),
    Case("npz labels bomb", ["train", "data.name=npz", "data.path={dir}/ybomb.npz"],
         "'{dir}/ybomb.npz' holds 'x' (10, 8, 8) uint8, 'y' (2000000000,) int64: about 32.0 GB once loaded, but "
         "8.0 GB of memory is available; use a smaller file, or a folder of images with data.stream=true", 2,
         _npz_header_only("ybomb.npz", {"x": ((10, 8, 8), "u1"), "y": ((2 * 10**9,), "<i8")})),
    Case("npz larger than free memory", ["train", "data.name=npz", "data.path={npz}"],
         "'{npz}' holds 'x' (256, 8, 8) uint8, 'y' (256,) int64: about 0.0 GB once loaded, but 0.0 GB of memory is "
         "available; use a smaller file, or a folder of images with data.stream=true", 2, _small_memory),
    Case("ablate a billion seeds", ["ablate", "--preset", "toy", "--seeds", "1000000000", "--dry-run", "--out",
                                    "{dir}/abl"],
         "--seeds 1000000000 is more than an ablation runs (at most 1,000 seeds per variant); give a smaller count"),
    Case("ablate 1001 seeds", ["ablate", "--preset", "toy", "--seeds", "1001", "--dry-run", "--out", "{dir}/abl"],
         "--seeds 1001 is more than an ablation runs (at most 1,000 seeds per variant); give a smaller count"),
    Case("ablate a list of 1001 seeds", ["ablate", "--preset", "toy", "--seeds", SEEDS, "--dry-run", "--out",
                                         "{dir}/abl"],
         "--seeds lists 1,001 seeds, more than an ablation runs (at most 1,000 per variant); give fewer"),
    Case("ablate a grid of 100,000 variants",
         ["ablate", "--preset", "toy", "--dry-run", "--out", "{dir}/abl", "--vary", f"train.steps={VARY_100}",
          "--vary", f"model.width={VARY_100}", "--vary", "train.n_critic=1,2,3,4,5,6,7,8,9,10"],
         "100,000 variants x 1 seeds = 100,000 runs, more than an ablation plans (at most 10,000); vary fewer keys or "
         "values, or use fewer seeds"),
    Case("ablate 101 variants x 100 seeds", ["ablate", "--preset", "toy", "--dry-run", "--out", "{dir}/abl",
                                             "--seeds", "100", "--vary", f"train.steps={VARY_100},101"],
         "101 variants x 100 seeds = 10,100 runs, more than an ablation plans (at most 10,000); vary fewer keys or "
         "values, or use fewer seeds"),
    Case("tune 1001 choices", ["tune", "--preset", "toy", "--space", "{dir}/space.yaml", "--trials", "1", "--out",
                               "{dir}/tune"],
         "search space key 'train.batch_size': 1,001 choices, more than a search can try (at most 1,000); give "
         "fewer, or a range {{type: int, low, high}}", 2,
         _file("space.yaml", "train.batch_size:\n  choices: [" + ", ".join(str(i) for i in range(1, 1002)) + "]\n")),
    Case("tune space file of 2 MB", ["tune", "--preset", "toy", "--space", "{dir}/space.yaml", "--trials", "1",
                                     "--out", "{dir}/tune"],
         "search space file '{dir}/space.yaml' is 2,000,033 bytes, more than a search space needs (at most "
         "1,000,000); give ranges instead of long choice lists", 2,
         _file("space.yaml", "# " + "x" * 2_000_000 + "\nloss.kind:\n  choices: [hinge]\n")),
]


@pytest.fixture
def no_plots(monkeypatch) -> None:
    """Plots and report cost seconds each and are not what most rows are about: a stand-in writes a marker."""
    monkeypatch.setattr(pipeline, "plot_run", lambda out: (Path(out) / "plots").mkdir(exist_ok=True))
    monkeypatch.setattr(pipeline, "write_report", lambda out: (Path(out) / "report.html").write_text("report"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: Case, warm, tmp_path: Path, capsys, monkeypatch, no_plots) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(warm["cache"], cache)
    out = tmp_path / "run"
    ctx = Ctx(tmp_path, cache, cache / warm["stem"].name, monkeypatch)
    subs = {"dir": str(tmp_path), "out": str(out), "stem": str(ctx.stem), "npz": str(warm["npz"]),
            "npz100": str(warm["npz100"])}

    def fill(text: str) -> str:
        for key, value in subs.items():
            text = text.replace("{" + key + "}", value)
        return text.replace("{{", "{").replace("}}", "}")

    if case.setup is not None:
        case.setup(ctx)
    argv = [fill(a) for a in case.argv]
    if argv[0] == "train":
        own_cache = any(a.startswith("eval.cache_dir=") for a in argv)
        argv[1:1] = [*TRAIN, f"out={out}", *([] if own_cache else [f"eval.cache_dir={cache}"])]
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert code == case.code, captured.err
    err = [line for line in captured.err.splitlines() if line.strip()]
    if case.code == 0:
        assert err == []
        assert captured.out.splitlines()[0] == fill(case.first), captured.out.splitlines()[0]
    else:
        assert err == ["ganstab: error: " + fill(case.first)]
    assert fill(case.also) in captured.out
    if case.kept:
        for name in KEPT:
            assert (out / name).is_file(), name
        assert not json.loads((out / "generator.json").read_text()).get("interrupted")
        assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss_d" in r] == [1, 2]
        assert not (out / LOCK_FILE).exists()
    if case.code == 2 and case.kept:
        finding = [f for f in read_jsonl(out / "findings.jsonl") if f["code"] == pipeline.AFTER_TRAINING_CODE]
        assert len(finding) == 1 and finding[0]["severity"] == "error" and finding[0]["start_step"] == case.failed_at
    elif case.code == 2 and argv[0] == "train":
        assert not out.exists()  # refused before the run folder was made


def test_case_count() -> None:
    assert len(CASES) >= 30


# --------------------------------------------------------------------------------------- SIGTERM
def test_sigterm_while_the_evaluator_trains_keeps_the_run(tmp_path: Path) -> None:
    """SIGTERM during the final evaluation's evaluator training: the export is already written, the lock is
    released and the process says how to score the run (exit 130, as every interrupted run); before, the default
    handler killed it (exit 143) with no generator and a stale lock."""
    data = _tiny_npz(tmp_path / "tiny.npz", 256, 2)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "ganstab", "train", *TRAIN, f"out={out}", f"eval.cache_dir={tmp_path / 'cache'}",
            "data.name=npz", f"data.path={data}", "eval.evaluator_epochs=100", "eval.evaluator_images=100000"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("evaluator: epoch 1/"):
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline
    rest, err = proc.communicate(timeout=120)
    lines += rest.splitlines()
    assert proc.returncode == 143, err  # 128 + SIGTERM, as for a run stopped while training
    assert "Traceback" not in err
    assert lines[-1] == (f"stopped by SIGTERM during the final evaluation at step 2; checkpoint and generator saved. "
                         f"Score it with: ganstab eval --run {out}")
    assert not any(line.startswith("evaluator: trained in") for line in lines)  # stopped, not waited for
    for name in KEPT:
        assert (out / name).is_file(), name
    assert json.loads((out / "generator.json").read_text())["step"] == 2
    assert not json.loads((out / "generator.json").read_text()).get("interrupted")  # training itself finished
    assert not (out / LOCK_FILE).exists()


# --------------------------------------------------------------------------------------- metrics stay meaningful
def test_sample_spread_values() -> None:
    torch.testing.assert_close(sample_spread(torch.zeros(5, 3)), 0.0)
    x = torch.tensor([[0.0, 2.0], [2.0, 2.0]])  # stds (population) 1 and 0: mean 0.5
    torch.testing.assert_close(sample_spread(x), 0.5)
    torch.testing.assert_close(sample_spread(torch.ones(1, 4)), 0.0)  # one sample has no spread


def test_diversity_absent_when_the_real_data_have_no_spread() -> None:
    """Points with no spread: diversity (a ratio over the real spread) is left out, every other value finite."""
    same = torch.ones(64, 2)
    source = DataSource(name="npz", kind="points", shape=(2,), train=same)
    scorer = RunEvaluator(source, 32, torch.device("cpu"))
    assert scorer.real_diversity < MIN_REAL_DIVERSITY
    scores = scorer.score_samples(torch.randn(32, 2, generator=torch.Generator().manual_seed(0)))
    assert "diversity" not in scores
    assert all(np.isfinite(v) for v in scores.values())
    varied = DataSource(name="npz", kind="points", shape=(2,),
                        train=torch.randn(64, 2, generator=torch.Generator().manual_seed(1)))
    scores = RunEvaluator(varied, 32, torch.device("cpu")).score_samples(varied.reference("validation", 32))
    torch.testing.assert_close(scores["diversity"], 1.0)  # the reference itself: exactly the real spread


def test_class_grid_has_a_row_for_every_class() -> None:
    z = torch.arange(8.0).reshape(4, 2)
    grid_z, labels = class_grid(z, 6)  # more classes than noise vectors: the noise is reused cyclically
    assert labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert grid_z.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [0, 1], [2, 3]]
    grid_z, labels = class_grid(z, 2)
    assert labels.tolist() == [0, 0, 1, 1] and torch.equal(grid_z, z)
