"""`ganstab eval --samples A --against B`: any two sample sets scored with one evaluator, in `eval --run`'s format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstab.cli import main
from ganstab.config import DataConfig
from ganstab.data import make_dataset
from ganstab.metrics.run_eval import RunEvaluator
from ganstab.metrics.stats import class_kl
from ganstab.rundir import is_test_record, read_jsonl
from ganstab.sampling import to_uint8

N = 200  # samples scored everywhere here (the run's eval.n)
RUN_ONLY = {"seed", "step"}  # keys of eval --run's JSON that a sample set has no value for
SAMPLES_ONLY = {"samples", "against", "evaluator"}  # which files were compared, which evaluator


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One evaluator cache for the module (the digits evaluator trains once, ~3 s)."""
    return tmp_path_factory.mktemp("evaluators")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    """A tiny digits run (20 steps) whose final evaluation scored N samples with the cached digits evaluator."""
    run = tmp_path_factory.mktemp("digits") / "run"
    assert main(["train", "train.steps=20", "train.batch_size=16", "log.progress=false", f"eval.n={N}",
                 "eval.every=0", "train.device=cpu", f"eval.cache_dir={cache}", f"out={run}"]) == 0
    return run


def _scores(capsys: pytest.CaptureFixture, argv: list[str], out: Path) -> tuple[dict, list[str]]:
    """Run `ganstab eval --samples ... --json out`; (the JSON written, the printed lines)."""
    capsys.readouterr()
    assert main(["eval", *argv, "--json", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out.splitlines()


def _digits_test(n: int) -> torch.Tensor:
    """The first n images of the digits test split in [-1, 1]."""
    data = make_dataset(DataConfig(name="digits"))
    return data.test[:n]


def _digits_test_reference(n: int) -> torch.Tensor:
    """The test reference `--against digits` (and `eval --run`) cuts for n samples: of the 360 test images, the
    first min(n, 360 - 180) (the last 180 are the validation reference)."""
    return make_dataset(DataConfig(name="digits")).reference("test", n)


# ------------------------------------------------------------------------ the same numbers as eval --run
def test_exported_npy_matches_eval_run(digits_run: Path, cache: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["eval", "--run", str(digits_run)]) == 0  # default seed: the final test line's (0 + 7)
    run_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    by_run = json.loads((digits_run / f"eval-n{N}-seed7.json").read_text())
    npy = tmp_path / "a.npy"
    assert main(["sample", "--run", str(digits_run), "--format", "npy", "--n", str(N), "--seed", "7",
                 "--out", str(npy)]) == 0
    scores, printed = _scores(capsys, ["--samples", str(npy), "--against", "digits", "--cache-dir", str(cache)],
                              tmp_path / "s.json")
    lines = [line for line in printed if line.startswith("  ")]
    assert printed[-len(lines) - 2:] == [f"{npy} against digits ({N} samples, 180 reference):", *lines,
                                         f"written: {tmp_path / 's.json'}"]
    assert set(scores) - SAMPLES_ONLY == set(by_run) - RUN_ONLY  # the same metric keys
    assert (scores["n"], scores["samples"], scores["against"], scores["reference_n"]) == (N, str(npy), "digits", 180)
    assert (scores["split"], scores["features"], scores["resize"]) == ("test", by_run["features"], "none")
    assert scores["evaluator"]["trained_on"] == "digits" and scores["evaluator"]["version"] == 3
    assert [line.split()[0] for line in lines] == [line.split()[0] for line in run_lines]  # same keys, same order
    width = max(len(line.split()[0]) for line in run_lines)  # the metric keys (provenance is not printed there)
    assert lines == [f"  {line.split()[0]:<{width}}  {scores[line.split()[0]]:.6g}" for line in run_lines]
    # the same samples (the same latents: seed 3, one chunk) against the same reference with the same evaluator;
    # the .npy floats pass through (x + 1) * 127.5 / 255 * 2 - 1 in float32 (relative error ~1e-7 per pixel),
    # so the metrics agree to 1e-5 relative; kid_std is a std of ~1e-16 (zero up to rounding): absolute 1e-9.
    # diversity differs by design: eval --run measures the fixed batch, --samples the set itself.
    for key in set(by_run) - RUN_ONLY - {"diversity", "n", "split", "features", "resize"}:  # text compared above
        torch.testing.assert_close(scores[key], by_run[key], rtol=1e-5, atol=1e-9, msg=key)
    assert 1.0 < by_run["fd"] < 1e3  # a 20-step G is far from the data (20.88): the agreement is not 0 == 0
    final_test = [r for r in read_jsonl(digits_run / "metrics.jsonl") if is_test_record(r)][-1]
    torch.testing.assert_close(by_run["fd_real"], final_test["eval_fd_real"], rtol=1e-6, atol=0.0)


def test_folder_export_equals_npy_of_the_same_images(digits_run: Path, cache: Path, tmp_path: Path,
                                                     capsys) -> None:
    folder, npy = tmp_path / "png", tmp_path / "a.npy"
    assert main(["sample", "--run", str(digits_run), "--format", "folder", "--n", str(N), "--seed", "3",
                 "--out", str(folder)]) == 0
    assert main(["sample", "--run", str(digits_run), "--format", "npy", "--n", str(N), "--seed", "3",
                 "--out", str(npy)]) == 0
    quantised = tmp_path / "q.npy"  # the PNGs' pixels, as uint8 (N, H, W, 1)
    np.save(quantised, to_uint8(torch.from_numpy(np.load(npy))))
    with Image.open(folder / "000007.png") as img:
        np.testing.assert_array_equal(np.asarray(img), np.load(quantised)[7, :, :, 0])
    common = ["--against", "digits", "--cache-dir", str(cache)]
    from_folder, _ = _scores(capsys, ["--samples", str(folder), *common], tmp_path / "f.json")
    from_npy, _ = _scores(capsys, ["--samples", str(quantised), *common], tmp_path / "q.json")
    from_floats, _ = _scores(capsys, ["--samples", str(npy), *common], tmp_path / "a.json")
    assert {k: v for k, v in from_folder.items() if k != "samples"} == {
        k: v for k, v in from_npy.items() if k != "samples"}  # identical metrics, bit for bit
    # 8-bit PNGs move each pixel by at most 1/255 of the range, the FD of a far-off G by ~1e-4 relative (20.8828
    # against 20.8808 measured): within 1e-3, and not equal (the rounding is there)
    torch.testing.assert_close(from_folder["fd"], from_floats["fd"], rtol=1e-3, atol=0.0)
    assert from_folder["fd"] != from_floats["fd"]


# ------------------------------------------------------------------------------- a set against itself
def test_digits_test_split_against_itself(digits_run: Path, cache: Path, tmp_path: Path, capsys) -> None:
    a = tmp_path / "a.npy"
    np.save(a, _digits_test_reference(N).numpy())  # the 180 test-reference images
    scores, _ = _scores(capsys, ["--samples", str(a), "--against", "digits", "--cache-dir", str(cache)],
                        tmp_path / "s.json")
    # identical features: FD = |0|^2 + tr(2C - 2 sqrt(C C)), computed in float64, where sqrt(C C) = C up to the
    # eigen-solver's rounding (~1e-15 relative to tr(C), which is ~10^2 here; 2.5e-12 measured): 1e-8 absolute
    torch.testing.assert_close(scores["fd"], 0.0, rtol=0.0, atol=1e-8)
    # class_kl compares with the data's class distribution (the training labels' histogram), not with the reference:
    # a real 180-image sample's own class histogram is that far from it, by hand
    data = make_dataset(DataConfig(name="digits"))
    scorer = RunEvaluator(data, N, torch.device("cpu"), cache, echo=lambda m: None)
    prior = torch.bincount(data.labels, minlength=10).double() / len(data.labels)
    expected = class_kl(scorer.evaluator.class_probs(_digits_test_reference(N)), prior)
    torch.testing.assert_close(scores["class_kl"], expected, rtol=1e-9, atol=1e-12)
    assert 0.01 < scores["class_kl"] < 0.1  # sampling noise of 180 images: under the doctor's warning
    assert (scores["precision"], scores["recall"], scores["coverage"]) == (1.0, 1.0, 1.0)
    assert scores["diversity"] == pytest.approx(1.0, abs=1e-6)  # the same 200 features as the reference


def test_copy_against_itself_with_its_own_evaluator(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    images = _digits_test(300).numpy()
    np.save(a, images)
    np.save(b, images)
    scores, printed = _scores(capsys, ["--samples", str(a), "--against", str(b), "--cache-dir", str(tmp_path / "c")],
                              tmp_path / "s.json")
    digest = scores["evaluator"]["hash"]
    assert f"evaluator: autoencoder trained on {b} (version 3, weights sha256 {digest}); numbers are comparable only with " \
           "numbers of this evaluator" in printed
    assert not any("test accuracy" in line for line in printed)  # an autoencoder has none (not "nan")
    torch.testing.assert_close(scores["fd"], 0.0, rtol=0.0, atol=1e-8)  # as above (1e-13 measured)
    assert (scores["precision"], scores["recall"], scores["coverage"]) == (1.0, 1.0, 1.0)
    assert "fd_real" not in scores  # B holds no images beyond the 300 reference ones
    about = scores["evaluator"]
    assert (about["kind"], about["trained_on"], about["version"], len(about["hash"])) == (
        "autoencoder", str(b), 3, 12)


def test_folder_reference_with_a_named_evaluator(digits_run: Path, cache: Path, tmp_path: Path, capsys) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    for index, img in enumerate(to_uint8(_digits_test(N))):
        Image.fromarray(img[:, :, 0]).save(ref / f"{index:04d}.png")
    a = tmp_path / "a.npy"
    np.save(a, to_uint8(_digits_test(N)))
    scores, _ = _scores(capsys, ["--samples", str(a), "--against", str(ref), "--data", "digits",
                                 "--cache-dir", str(cache)], tmp_path / "s.json")
    assert scores["evaluator"]["trained_on"] == "digits"
    assert (scores["precision"], scores["recall"]) == (1.0, 1.0)
    torch.testing.assert_close(scores["fd"], 0.0, rtol=0.0, atol=1e-8)  # as above
    assert list(cache.glob("evaluator-digits-*.safetensors")) == []  # digits' shipped network: no cache entry
    # fd_real: 200 digits training images against the 8-bit copy of the reference, and against the float reference
    # itself: equal up to the rounding of the pixels (~1e-4 relative, as for the folder export)
    floats = tmp_path / "ref.npy"
    np.save(floats, _digits_test(N).numpy())
    exact, _ = _scores(capsys, ["--samples", str(a), "--against", str(floats), "--data", "digits",
                                "--cache-dir", str(cache)], tmp_path / "t.json")
    assert scores["fd_real"] > 0
    torch.testing.assert_close(scores["fd_real"], exact["fd_real"], rtol=1e-3, atol=0.0)


# ------------------------------------------------------------------------------------------- points
def test_points_shifted_by_one(tmp_path: Path, capsys) -> None:
    points = torch.randn(500, 2, generator=torch.Generator().manual_seed(0)).numpy()
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, points + np.array([1.0, 0.0], dtype=np.float32))
    np.save(b, points)
    scores, _ = _scores(capsys, ["--samples", str(a), "--against", str(b)], tmp_path / "s.json")
    assert set(scores) - SAMPLES_ONLY == {"n", "split", "reference_n", "features", "resize", "fd", "precision",
                                          "recall", "density", "coverage", "diversity"}
    # the same covariance, means 1 apart: FD = |(1, 0)|^2 = 1
    torch.testing.assert_close(scores["fd"], 1.0, rtol=0.0, atol=1e-5)
    assert scores["diversity"] == pytest.approx(1.0, abs=1e-6)  # a shifted copy spreads as much
    assert scores["evaluator"] == {"space": "raw coordinates"}


# ---------------------------------------------------------------------------------------- bad input
def _bad(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv after 'eval', the one error line)."""
    good = tmp / "good.npy"
    np.save(good, np.zeros((10, 1, 8, 8), dtype=np.uint8))
    big = tmp / "big.npy"
    np.save(big, np.zeros((10, 1, 16, 16), dtype=np.uint8))
    empty = tmp / "empty"
    empty.mkdir()
    junk = tmp / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not a png")
    good2, big2 = tmp / "good2.npy", tmp / "big2.npy"
    np.save(good2, np.zeros((10, 1, 8, 8), dtype=np.uint8))
    np.save(big2, np.zeros((10, 1, 16, 16), dtype=np.uint8))
    tiny, tiny2 = tmp / "tiny.npy", tmp / "tiny2.npy"
    np.save(tiny, np.zeros((10, 4, 4), dtype=np.float32))
    np.save(tiny2, np.zeros((10, 4, 4), dtype=np.float32))
    points, points2 = tmp / "p.npy", tmp / "p2.npy"
    np.save(points, np.zeros((10, 2), dtype=np.float32))
    np.save(points2, np.ones((10, 2), dtype=np.float32))
    text = tmp / "text.npy"
    np.save(text, np.array([["a", "b"], ["c", "d"]]).reshape(1, 1, 2, 2))
    return {
        "missing samples": (["--samples", str(tmp / "nope.npy"), "--against", str(good)],
                            f"--samples {str(tmp / 'nope.npy')!r} does not exist; pass a folder of images or a "
                            ".npy/.npz file"),
        "missing against": (["--samples", str(good), "--against", str(tmp / "nope")],
                            f"--against {str(tmp / 'nope')!r} does not exist and is not a data set name; pass a "
                            "folder of images, a .npy/.npz file or one of digits, fashion-mnist, "
                            "stacked-fashion-mnist, ring8, grid25"),
        "empty folder": (["--samples", str(empty), "--against", str(good)],
                         f"image folder {str(empty)!r} is empty; put PNG/JPEG images in it"),
        "unreadable files": (["--samples", str(junk), "--against", str(good)],
                             f"image folder {str(junk)!r} holds no readable images (1 files skipped)"),
        "wrong dtype": (["--samples", str(text), "--against", str(good)],
                        f"{str(text)!r}: array 'x' holds text (dtype <U1), which ganstab cannot train on; store 'x' "
                        "as uint8 images or real numbers (integer, boolean or float)"),
        "shape mismatch": (["--samples", str(good), "--against", str(big)],
                           f"--samples {good} holds samples of shape (1, 8, 8) but --against {big} holds "
                           "(1, 16, 16); score sets of one shape"),
        "shape of a named set": (["--samples", str(big), "--against", "digits"],
                                 f"--samples {big} holds samples of shape (1, 16, 16) but digits has (1, 8, 8); "
                                 "score sets of one shape"),
        "same path": (["--samples", str(good), "--against", str(good)],
                      f"--samples and --against are the same path {str(good)!r}; pass the real reference set as "
                      "--against"),
        "no against": (["--samples", str(good)],
                       "--samples A needs --against B: the real reference (a folder, .npy/.npz, or a data set name: "
                       "digits, fashion-mnist, stacked-fashion-mnist, ring8, grid25)"),
        "n too large": (["--samples", str(good), "--against", "digits", "--n", "11"],
                        f"--n must be 2 to 10 (the samples in {good}, at most 200,000), got 11"),
        "run and samples": (["--samples", str(good), "--against", "digits", "--run", str(tmp)],
                            "--samples scores two sample sets; --run, --best and --seed score a run: give one of "
                            "them"),
        "json with run": (["--run", str(tmp), "--json", str(tmp / "x.json")],
                          "--json goes with --samples A --against B, not with --run; drop it"),
        "neither": ([], "eval needs --run DIR, or --samples A --against B to score two sample sets"),
        "points with --data": (["--samples", str(points), "--against", str(points2), "--data", "digits"],
                               f"--data picks an evaluator network for images, but {points2} holds points, which "
                               "are scored on raw coordinates; drop --data"),
        "points --data": (["--samples", str(good), "--against", str(good2), "--data", "ring8"],
                          "--data picks an evaluator network for images, but ring8 holds points, which are scored "
                          "on raw coordinates; drop --data"),
        "reference shape for --data": (["--samples", str(big), "--against", str(big2), "--data", "digits"],
                                       f"--against {big2} holds samples of shape (1, 16, 16) but the evaluator of "
                                       "--data digits reads (1, 8, 8); pass a reference of that shape or drop --data"),
        "unknown --data": (["--samples", str(good), "--against", str(good2), "--data", "mnist"],
                           "--data 'mnist' is not a data set ganstab finds without a path; use one of digits, "
                           "fashion-mnist, stacked-fashion-mnist, ring8, grid25"),
        "two data sets": (["--samples", str(good), "--against", "digits", "--data", "fashion-mnist"],
                          "--against digits already names the evaluator's data set; drop --data fashion-mnist"),
        "json folder missing": (["--samples", str(good), "--against", "digits", "--json", str(tmp / "no" / "x.json")],
                                f"--json {tmp / 'no' / 'x.json'}: its folder does not exist; create it or write the "
                                "JSON elsewhere"),
        "too small for an evaluator": (["--samples", str(tiny), "--against", str(tiny2)],
                                       f"--against {tiny2}: image size must be between 8x8 and 64x64, got 4x4; "
                                       "ganstab's evaluator cannot learn these images, score against a named data set "
                                       "with --data NAME"),
    }


@pytest.mark.parametrize("name", ["missing samples", "missing against", "empty folder", "unreadable files",
                                  "wrong dtype", "shape mismatch", "shape of a named set", "same path",
                                  "no against", "n too large", "run and samples", "json with run", "neither",
                                  "points with --data", "points --data", "reference shape for --data",
                                  "unknown --data", "two data sets", "json folder missing",
                                  "too small for an evaluator"])
def test_bad_input_one_line_exit_2(name: str, tmp_path: Path, capsys) -> None:
    argv, message = _bad(tmp_path)[name]
    capsys.readouterr()
    assert main(["eval", *argv]) == 2
    captured = capsys.readouterr()
    assert [line for line in captured.err.splitlines() if line.strip()] == [f"ganstab: error: {message}"]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "no").exists()
