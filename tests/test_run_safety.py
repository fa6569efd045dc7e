"""Nothing lost, second round: the run-folder lock, duplicate YAML keys, interrupted runs, early data checks."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganstab import ablate, export, pipeline
from ganstab.cli import main
from ganstab.config import KEY_HELP, known_keys
from ganstab.errors import RunInUse
from ganstab.report import tensorboard as tensorboard_module
from ganstab.pipeline import load_config, train
from ganstab.rundir import LOCK_FILE, acquire_lock, checkpoint_step, is_eval_record, is_test_record, read_jsonl
from ganstab.training.checkpoint import newest_valid_checkpoint
from ganstab.training.progress import Progress, format_duration

HOST = socket.gethostname()
TOY = ["--preset", "toy", "train.batch_size=64", "log.every=5", "log.progress=false", "model.width=16",
       "train.device=cpu", "eval.final=false", "log.sample_every=100000"]


def _one_error(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under a folder (the lock excluded) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_FILE}


# ------------------------------------------------------------------------------------------ the lock
def test_lock_refuses_live_owner_and_takes_over_dead_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": HOST}))
        with pytest.raises(RunInUse) as info:
            acquire_lock(run, echo=lambda m: None)
        assert str(info.value) == (f"run folder {str(run)!r} is in use by process {holder.pid} on {HOST}; "
                                   "wait for it to finish or stop it first")
    finally:
        holder.kill()
        holder.wait()
    messages: list[str] = []
    lock = acquire_lock(run, echo=messages.append)
    assert messages == [f"taking over the stale lock of {str(run)!r} (process {holder.pid} on {HOST} is gone)"]
    assert json.loads((run / LOCK_FILE).read_text()) == {"pid": os.getpid(), "host": HOST}
    lock.release()
    assert not (run / LOCK_FILE).exists()
    assert run.is_dir()  # a folder we did not create stays


def test_lock_on_other_host_is_respected_and_new_folder_removed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunInUse, match="in use by process 1 on elsewhere"):
        acquire_lock(run)
    fresh = tmp_path / "fresh"
    acquire_lock(fresh).release()
    assert not fresh.exists()  # created by the lock, nothing written: removed again


def test_train_releases_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", *TOY, "train.steps=5", f"out={run}"]) == 0
    assert (run / "generator.json").is_file() and not (run / LOCK_FILE).exists()


def _wait_for(condition, proc: subprocess.Popen, seconds: float = 90.0) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the training process")


def test_resume_and_overwrite_of_live_run_refused_then_stale_lock_taken_over(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganstab", "train", *TOY, "train.steps=1000000", "train.threads=1", f"out={run}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        _wait_for(lambda: (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").stat().st_size > 0, proc)
        assert json.loads((run / LOCK_FILE).read_text()) == {"pid": proc.pid, "host": HOST}
        os.kill(proc.pid, signal.SIGSTOP)  # alive but frozen: nothing may change while we try
        before = _snapshot(run)
        expected = (f"ganstab: error: run folder {str(run)!r} is in use by process {proc.pid} on {HOST}; "
                    "wait for it to finish or stop it first")
        capsys.readouterr()
        assert main(["train", "--resume", str(run)]) == 2
        assert _one_error(capsys) == [expected]
        assert main(["train", *TOY, "train.steps=5", f"out={run}", "--overwrite"]) == 2
        assert _one_error(capsys) == [expected]
        assert main(["train", *TOY, "train.steps=5", f"out={run}"]) == 2
        assert _one_error(capsys) == [expected]
        assert _snapshot(run) == before
    finally:
        proc.kill()
        proc.wait()
    # the holder is gone: a resume takes the stale lock over and continues the run
    capsys.readouterr()
    newest = newest_valid_checkpoint(run / "checkpoints", warn=lambda m: None)
    steps = checkpoint_step(newest.name) + 2
    assert main(["train", "--resume", str(run), f"train.steps={steps}"]) == 0
    out = capsys.readouterr().out
    assert f"taking over the stale lock of {str(run)!r} (process {proc.pid} on {HOST} is gone)" in out
    assert not (run / LOCK_FILE).exists()


# ------------------------------------------------------------------------------------- interrupted runs
def test_sigterm_exports_generator_and_writes_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = load_config(None, TOY[2:] + ["train.steps=50", f"out={run}"], preset="toy")

    def stop_at_three(trainer) -> None:
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    messages: list[str] = []
    result = train(cfg, echo=messages.append, hooks={"after_step": stop_at_three})
    assert result.interrupted and result.steps == 3
    meta = json.loads((run / "generator.json").read_text())
    assert (meta["step"], meta["interrupted"]) == (3, True)
    assert (run / "generator.safetensors").is_file() and (run / "report.html").is_file()
    assert messages[-1] == (f"stopped by SIGTERM at step 3; checkpoint and generator saved. "
                            f"Resume with: ganstab train --resume {run}")
    assert not (run / LOCK_FILE).exists()
    assert ablate._run_state(run) == "resume"  # an interrupted export does not make an ablation run finished


def test_sample_and_eval_fall_back_to_newest_checkpoint(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", *TOY, "train.steps=10", "log.checkpoint_every=5", "eval.n=200", f"out={run}"]) == 0
    assert main(["sample", "--run", str(run), "--format", "npy", "--n", "16", "--out", str(tmp_path / "a.npy")]) == 0
    for name in ("generator.json", "generator.safetensors"):  # as if SIGKILLed before the export
        (run / name).unlink()
    capsys.readouterr()
    assert main(["sample", "--run", str(run), "--format", "npy", "--n", "16", "--out", str(tmp_path / "b.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    ema = "EMA" if load_config(None, [], preset="toy").train.ema > 0 else "G"
    assert lines[0] == (f"{str(run)!r} has no exported generator; using checkpoint ckpt_0000010.pt (step 10, "
                        f"{ema} weights)")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert main(["eval", "--run", str(run), "--n", "50"]) == 0
    assert f"{str(run)!r} has no exported generator; using checkpoint ckpt_0000010.pt" in capsys.readouterr().out


# ---------------------------------------------------------------------------- checks before the run folder
def test_model_too_large_for_memory_refused_before_allocating(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "available_memory", lambda device: 8 * 10**9)
    run = tmp_path / "run"
    assert main(["train", *TOY, "train.steps=5", "model.hidden=[100000000]", f"out={run}"]) == 2
    assert _one_error(capsys) == [
        "ganstab: error: G and D would hold 900,000,003 parameters, needing about 14.4 GB to train (weights, "
        "gradients, Adam state) but 8.0 GB of cpu memory is available; make the model smaller (model.hidden, "
        "model.width, model.depth)"]
    assert not run.exists()


def test_available_memory_reads_meminfo() -> None:
    free = pipeline.available_memory(torch.device("cpu"))
    with open("/proc/meminfo") as fh:
        line = next(line for line in fh if line.startswith("MemAvailable:"))
    assert free is not None and abs(free - int(line.split()[1]) * 1024) < 2 * 10**9


# ------------------------------------------------------------------------------------------ sample and eval
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_sample_on_cuda_without_cuda_refused(tmp_path: Path, capsys) -> None:
    assert main(["sample", "--run", str(tmp_path), "--out", str(tmp_path / "x.png"), "--device", "cuda"]) == 2
    assert _one_error(capsys) == ["ganstab: error: --device cuda but no CUDA device is available; use --device cpu"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 300-step toy grid25 run with a final evaluation of 300 samples."""
    run = tmp_path_factory.mktemp("toy") / "run"
    assert main(["train", *TOY[:-2], "train.steps=300", "eval.final=true", "eval.n=300", f"out={run}"]) == 0
    return run


def test_eval_reproduces_training_final_evaluation(toy_run: Path, capsys) -> None:
    final = [r for r in read_jsonl(toy_run / "metrics.jsonl") if is_test_record(r)][-1]  # eval scores on test
    capsys.readouterr()
    assert main(["eval", "--run", str(toy_run)]) == 0
    cfg = load_config(None, [], preset="toy")
    written = json.loads((toy_run / f"eval-n300-seed{cfg.seed + 7}.json").read_text())  # the test line's seed
    assert written["seed"] == cfg.seed + 7 and written["step"] == final["step"] == 300
    assert final["eval_modes"] > 0
    for key in ("modes", "hq_fraction", "reverse_kl"):
        assert written[key] == final[f"eval_{key}"], key
    assert {f"eval_{k}": v for k, v in written.items() if f"eval_{k}" in final} == {
        k: v for k, v in final.items() if k.startswith("eval_") and k != "eval_time"}  # eval_time: its cost
    assert main(["eval", "--run", str(toy_run), "--seed", "0"]) == 0  # the old default: other samples
    old = json.loads((toy_run / "eval-n300-seed0.json").read_text())
    assert [old[k] for k in ("modes", "hq_fraction", "reverse_kl")] != [
        final[f"eval_{k}"] for k in ("modes", "hq_fraction", "reverse_kl")]


def test_sample_npy_too_large_for_disk_refused(toy_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "big.npy"
    assert main(["sample", "--run", str(toy_run), "--format", "npy", "--n", "999999999999", "--out", str(out)]) == 2
    lines = _one_error(capsys)
    assert len(lines) == 1 and lines[0].startswith(
        "ganstab: error: --n 999999999999 samples need about 8000.0 GB as --format npy but only ")
    assert lines[0].endswith(f"GB is free at {str(tmp_path)!r}; lower --n or choose another --out")
    assert list(tmp_path.iterdir()) == []


def test_sample_npy_streams_in_chunks_and_appears_atomically(toy_run: Path, tmp_path: Path, monkeypatch) -> None:
    assert main(["sample", "--run", str(toy_run), "--format", "npy", "--n", "10", "--out", str(tmp_path / "a")]) == 0
    whole = np.load(tmp_path / "a.npy")
    assert whole.shape == (10, 2) and whole.dtype == np.float32
    monkeypatch.setattr(export, "SAMPLE_CHUNK", 4)
    npy = ["sample", "--run", str(toy_run), "--format", "npy", "--n", "10", "--out"]
    assert main([*npy, str(tmp_path / "b.npy")]) == 0
    chunked = np.load(tmp_path / "b.npy")
    assert chunked.shape == (10, 2) and np.isfinite(chunked).all()
    calls = {"n": 0}
    real_generate = export.generate

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(export, "generate", failing)
    assert main([*npy, str(tmp_path / "c.npy")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npy"]  # no partial file, no temp file


# ------------------------------------------------------------------------------------- progress in a log file
PROGRESS = re.compile(r"^progress: step (\d+)/40 \((\d+)%\), (\d+|-) images/s, loss_d (-?\d+\.\d{3}|-), "
                      r"loss_g (-?\d+\.\d{3}|-), ETA (\d+:\d\d|-)$")


@pytest.mark.parametrize("progress", [True, False])
def test_progress_lines_without_terminal(tmp_path: Path, progress: bool) -> None:
    cfg = load_config(None, TOY[2:] + ["train.steps=40", f"log.progress={str(progress).lower()}",
                                       "log.progress_seconds=0.0001", f"out={tmp_path / 'run'}"], preset="toy")
    messages: list[str] = []
    train(cfg, echo=messages.append)
    lines = [m for m in messages if m.startswith("progress:")]
    if not progress:
        assert lines == []
        return
    assert len(lines) >= 2
    matches = [PROGRESS.match(line) for line in lines]
    assert all(matches), lines
    steps = [int(m.group(1)) for m in matches]
    assert steps == sorted(steps) and steps[-1] == 40
    last = matches[-1]
    assert (last.group(2), last.group(6)) == ("100", "0:00") and last.group(4) != "-"


def test_progress_line_format() -> None:
    progress = Progress(200, 50, enabled=True, terminal=False, echo=lambda m: None, every_seconds=30)
    progress.started = 0.0
    progress.step = 100
    progress.losses = (1.23456, -0.5)
    progress.images_per_second = 5400.4
    assert progress.line(now=10.0) == ("progress: step 100/200 (50%), 5400 images/s, loss_d 1.235, loss_g -0.500, "
                                       "ETA 0:20")
    assert format_duration(3725) == "1:02:05"


# ------------------------------------------------------------------------------------------- ganstab keys
def test_every_key_has_a_description(capsys) -> None:
    keys = known_keys()
    assert set(KEY_HELP) == set(keys)
    assert all(KEY_HELP[k].strip() and "\n" not in KEY_HELP[k] for k in keys)
    assert main(["keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" = ", 1)[0] for line in lines] == keys
    assert ("model.width = 64  [dcgan/toy/resnet/progressive]  channel width (dcgan, progressive, resnet D; resnet G "
            "has twice as many) or layer width (toy)") in lines
    assert "model.depth = 3  [toy only]  hidden layers of the toy MLPs" in lines
    assert ("model.hidden = null  [mlp/toy]  G's hidden layer widths, D's reversed (mlp default 256-256; toy: "
            "replaces width x depth)") in lines
    assert "log.progress_seconds = 30.0  [all runs]  seconds between plain progress lines when there is no terminal" \
        in lines


# ------------------------------------------------------------------------------------------------ TensorBoard
def test_tensorboard_requested_but_not_installed(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(tensorboard_module, "tensorboard_available", lambda: False)
    assert main(["train", *TOY, "train.steps=5", "log.tensorboard=true", f"out={tmp_path / 'run'}"]) == 2
    assert _one_error(capsys) == [
        "ganstab: error: log.tensorboard=true needs the tensorboard package; install it with pip install "
        "'ganstab[tensorboard]' (or pip install tensorboard), or set log.tensorboard=false"]
    assert not (tmp_path / "run").exists()


def test_tensorboard_events_read_back(tmp_path: Path) -> None:
    if not tensorboard_module.tensorboard_available():
        pytest.skip("tensorboard is not installed (pip install 'ganstab[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", *TOY[:-2], "train.steps=20", "log.sample_every=10", "eval.every=10", "eval.n=100",
                 "log.tensorboard=true", "doctor.d_acc_threshold=0.0", "doctor.d_acc_window_steps=5",
                 "doctor.d_acc_min_records=1",
                 f"out={run}"]) == 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    lines = read_jsonl(run / "metrics.jsonl")
    training = [r for r in lines if "loss_d" in r]
    loss_d = events.Scalars("train/loss_d")
    assert [e.step for e in loss_d] == [r["step"] for r in training] == [5, 10, 15, 20]
    np.testing.assert_allclose([e.value for e in loss_d], [r["loss_d"] for r in training], rtol=1e-6)
    evals = [r for r in lines if is_eval_record(r)]
    assert [(e.step, e.value) for e in events.Scalars("eval/modes")] == [(r["step"], r["eval_modes"]) for r in evals]
    assert [e.step for e in events.Images("samples")] == [10, 20, 20]  # the final grid is written again at the end
    assert "findings/text_summary" in tags["tensors"]
    finding = events.Tensors("findings/text_summary")[0]
    first = read_jsonl(run / "findings.jsonl")[0]
    assert first["code"] == "d_overpowers"
    assert finding.step == first["end_step"] == 10
    assert finding.tensor_proto.string_val[0].decode() == (
        f"**warning** at steps {first['start_step']}-{first['end_step']}: {first['message']} Advice: {first['advice']}")


def test_torn_lock_is_stale_after_a_moment(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text("")
    messages: list[str] = []
    acquire_lock(run, echo=messages.append).release()
    assert messages == [f"taking over the unreadable lock of {str(run)!r} "
                        "(left by a process that died while taking it)"]


# ------------------------------------------------------------------------- issue #30: nothing lost, second round
@pytest.mark.parametrize("target,fmt,owned", [
    ("generator.safetensors", "grid", "is generator.safetensors"),
    ("generator.json", "grid", "is generator.json"),
    ("config.yaml", "grid", "is config.yaml"),
    ("metrics.jsonl", "grid", "is metrics.jsonl"),
    ("report.html", "grid", "is report.html"),
    ("checkpoints/ckpt_0000300.pt", "grid", "lies in checkpoints"),
    ("samples/step_0000300.png", "grid", "lies in samples"),
    ("plots", "folder", "is plots"),
    ("checkpoints/grid.npy", "npy", "lies in checkpoints"),
])
def test_sample_refuses_the_runs_own_files_before_sampling(toy_run: Path, capsys, monkeypatch, target: str, fmt: str,
                                                           owned: str) -> None:
    def no_sampling(*args, **kwargs):
        raise AssertionError("the generator was loaded before --out was checked")

    monkeypatch.setattr("ganstab.cli.runs.load_run_generator", no_sampling)
    before = _snapshot(toy_run)
    capsys.readouterr()
    assert main(["sample", "--run", str(toy_run), "--out", str(toy_run / target), "--format", fmt]) == 2
    assert _one_error(capsys) == [
        f"ganstab: error: --out {str(toy_run / target)!r} {owned}, which belongs to the run {str(toy_run)!r}; "
        "write samples elsewhere, e.g. --out samples.png (grid), samples.npy or a new folder"]
    assert _snapshot(toy_run) == before


def test_sample_refuses_the_run_folder_and_unknown_extensions_before_sampling(toy_run: Path, tmp_path: Path, capsys,
                                                                               monkeypatch) -> None:
    monkeypatch.setattr("ganstab.cli.runs.load_run_generator", lambda *a, **k: pytest.fail("sampled"))
    before = _snapshot(toy_run)
    capsys.readouterr()
    assert main(["sample", "--run", str(toy_run), "--out", f"{toy_run}/", "--format", "folder"]) == 2
    assert _one_error(capsys) == [f"ganstab: error: --out {str(toy_run)!r} is the run folder {str(toy_run)!r} itself; "
                                  "write samples elsewhere, e.g. --out samples.png (grid), samples.npy or a new folder"]
    for name in ("x.safetensors", "x.gif", "x.PNG.bak"):
        assert main(["sample", "--run", str(toy_run), "--out", str(tmp_path / name)]) == 2
        suffix = Path(name).suffix
        assert _one_error(capsys) == [
            f"ganstab: error: --out {str(tmp_path / name)!r} ends in {suffix!r}, which --format grid cannot write; "
            "name a .png, .jpg or .jpeg file (or use --format npy or folder)"]
    assert _snapshot(toy_run) == before and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["grid.png", "grid.JPG", "grid.jpeg"])
def test_sample_writes_every_grid_extension_it_names(toy_run: Path, tmp_path: Path, name: str) -> None:
    assert main(["sample", "--run", str(toy_run), "--n", "16", "--out", str(tmp_path / name)]) == 0
    from PIL import Image

    with Image.open(tmp_path / name) as img:
        assert img.format == ("PNG" if name.endswith(".png") else "JPEG")


def test_os_refusal_of_a_user_path_exits_2_and_a_full_disk_1(tmp_path: Path, capsys, monkeypatch) -> None:
    from ganstab.cli import runs

    for error, status, line in [
        (PermissionError(13, "Permission denied", str(tmp_path / "x")), 2,
         f"permission denied for {str(tmp_path / 'x')!r}; choose a writable location"),
        (OSError(30, "Read-only file system", str(tmp_path / "x")), 2,
         f"read-only file system: {str(tmp_path / 'x')!r}; choose another path"),
        (NotADirectoryError(20, "Not a directory", str(tmp_path / "x")), 2,
         f"a part of the path is a file, not a folder: {str(tmp_path / 'x')!r}; choose another path"),
        (OSError(36, "File name too long", str(tmp_path / "x")), 2,
         f"name too long: {str(tmp_path / 'x')!r}; choose another path"),
        (OSError(28, "No space left on device", str(tmp_path / "x")), 1,
         f"disk full while writing {str(tmp_path / 'x')!r}; free space, then run the command again (files written "
         "before are intact: every write goes through a temp file)"),
    ]:
        def refuse(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(runs, "write_report", refuse)
        capsys.readouterr()
        assert main(["report", str(tmp_path)]) == status
        assert _one_error(capsys) == [f"ganstab: error: {line}"]


def test_unwritable_output_folder_named_before_anything_is_made(tmp_path: Path, capsys, monkeypatch) -> None:
    import ganstab.rundir as rundir_module

    target = tmp_path / "ro"
    target.mkdir()
    monkeypatch.setattr(rundir_module.os, "access", lambda path, mode: Path(path) != target)
    capsys.readouterr()
    assert main(["train", *TOY, "train.steps=5", f"out={target / 'run'}"]) == 2
    reason = "a read-only file system" if os.statvfs(target).f_flag & os.ST_RDONLY else "permission denied"
    assert _one_error(capsys) == [f"ganstab: error: output path {str(target / 'run')!r} cannot be written: "
                                  f"{str(target)!r} is not writable ({reason}); choose another out=DIR"]
    assert list(target.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder: a permission refusal cannot be made here")
def test_permission_denied_folder_refused_as_input(tmp_path: Path, capsys) -> None:
    target = tmp_path / "locked"
    target.mkdir(mode=0o500)
    try:
        assert main(["train", *TOY, "train.steps=5", f"out={target / 'run'}"]) == 2
        assert _one_error(capsys) == [f"ganstab: error: output path {str(target / 'run')!r} cannot be written: "
                                      f"{str(target)!r} is not writable (permission denied); choose another out=DIR"]
    finally:
        target.chmod(0o700)


@pytest.mark.parametrize("dtype,stored,expected", [
    ("float16", [0.0, 0.5, 1.0], [-1.0, 0.0, 1.0]),
    ("bool", [False, True, True], [-1.0, 1.0, 1.0]),
    ("int32", [0, 1, 1], [-1.0, 1.0, 1.0]),
    ("longdouble", [-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]),
])
def test_plain_dtypes_are_read_as_images(tmp_path: Path, dtype: str, stored: list, expected: list) -> None:
    from ganstab.config import DataConfig
    from ganstab.data import make_dataset

    x = np.resize(np.array(stored, dtype=dtype), (4, 8, 8))
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1], dtype=np.uint16))
    data = make_dataset(DataConfig(name="npz", path=str(tmp_path / "d.npz")))
    torch.testing.assert_close(data.train.reshape(-1)[:3], torch.tensor(expected), atol=1 / 255, rtol=0)
    assert data.shape == (1, 8, 8) and data.labels.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("dtype", ["bool", "int64", "float16"])
def test_plain_dtypes_are_read_as_points(tmp_path: Path, dtype: str) -> None:
    from ganstab.config import DataConfig
    from ganstab.data import make_dataset

    np.savez(tmp_path / "p.npz", x=np.array([[0, 1], [1, 0], [1, 1]], dtype=dtype))
    data = make_dataset(DataConfig(name="npz", path=str(tmp_path / "p.npz")))
    torch.testing.assert_close(data.train, torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))


def test_yaml_limits_are_exact() -> None:
    from ganstab.config import MAX_YAML_DEPTH, MAX_YAML_VALUES, ConfigError, parse_override

    assert parse_override("x=" + "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH) is not None
    with pytest.raises(ConfigError, match=f"nests values more than {MAX_YAML_DEPTH} levels deep"):
        parse_override("x=" + "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1))
    items = MAX_YAML_VALUES - 1  # a list of n values is n + 1 values with the list itself
    assert len(parse_override("x=[" + ",".join(["1"] * items) + "]")["x"]) == items
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        parse_override("x=[" + ",".join(["1"] * (items + 1)) + "]")
    # aliases count as often as they are used: a holds 1,000 values, b = 1 + 1,000 k, the mapping 1004 + 1,000 k
    assert parse_override("x={a: &a [" + ",".join(["1"] * 999) + "], b: [" + ",".join(["*a"] * 98) + "]}")
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        parse_override("x={a: &a [" + ",".join(["1"] * 999) + "], b: [" + ",".join(["*a"] * 99) + "]}")


def test_report_and_doctor_do_not_expand_an_alias_bomb_in_config_yaml(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    lines = ["x:", "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  {chr(98 + k)}: &{chr(98 + k)} [{', '.join(['*' + chr(97 + k)] * 9)}]" for k in range(8)]
    (run / "config.yaml").write_text("\n".join(lines + ["loss: *i", ""]))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss_d": 1.0, "loss_g": 1.0}) + "\n")
    started = time.time()
    assert main(["report", str(run)]) == 0  # the report shows what it can: no config, not 9 ** 9 values
    assert "config.yaml could not be read" in (run / "report.html").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["doctor", str(run)]) == 2
    assert _one_error(capsys) == [
        f"ganstab: error: config file {str(run / 'config.yaml')!r} expands to more than 100,000 values at line 7; a "
        "config holds a few hundred, so remove aliases repeated inside aliases (*name) or the long lists"]
    assert time.time() - started < 60


def test_the_final_test_line_scores_other_samples_than_the_validation_line(toy_run: Path) -> None:
    """On 2-D data the mode scores compare samples with the known centres, not with a reference: the test line must
    score its own generated samples, or it repeats the validation line that selected (bug: both used seed + 3)."""
    lines = [r for r in read_jsonl(toy_run / "metrics.jsonl") if r.get("final")]
    validation = [r for r in lines if r.get("eval_split") == "validation"][-1]
    test = [r for r in lines if is_test_record(r)][-1]
    assert validation["step"] == test["step"] == 300
    assert validation["eval_hq_fraction"] != test["eval_hq_fraction"]
