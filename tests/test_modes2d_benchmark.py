"""benchmarks/modes2d.py: the r3gan arm is `modes2d` with R3GAN's loss, R1 + R2 and schedules; scores come from the
final test line, validation beside them; results are keyed by data set and config; `--rescore-test` replaces the
stored test scores by the current code's final test evaluation of each run's export."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ganstab.cli import main as cli_main
from ganstab.pipeline import load_config

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "modes2d.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("modes2d_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while the file runs
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _load(bench, name: str, data: str, tmp_path: Path):
    preset, overrides = bench.run_overrides(name, data, 0, tmp_path / name, False, 500)
    return load_config(preset=preset, overrides=overrides)


@pytest.mark.parametrize("data", ["grid25", "ring8"])
def test_r3gan_arm_changes_only_loss_penalties_and_optimiser_schedule(bench, data: str, tmp_path: Path) -> None:
    r3gan, modes2d = _load(bench, "r3gan", data, tmp_path), _load(bench, "modes2d", data, tmp_path)
    assert r3gan.model == modes2d.model and r3gan.data == modes2d.data and r3gan.eval == modes2d.eval
    assert (r3gan.train.steps, r3gan.train.batch_size, r3gan.train.ema) == (10_000, 256, 20000.0)
    assert r3gan.train == modes2d.train
    assert (modes2d.loss.kind, modes2d.penalty.r1, modes2d.penalty.r2, modes2d.schedule) == ("nonsaturating", 0.1, 0.0, {})
    assert (r3gan.loss.kind, r3gan.penalty.r1, r3gan.penalty.r2) == ("relativistic", 0.1, 0.1)
    assert (r3gan.optim.g_lr, r3gan.optim.d_lr, r3gan.optim.g_betas, r3gan.optim.d_betas) == (
        1e-3, 1e-3, (0.0, 0.9), (0.0, 0.9))
    moves = {entry.key: (entry.end, entry.images, entry.kind) for entry in r3gan.schedule.values()}
    assert moves == {"penalty.r1": (0.01, 5_120_000, "cosine"), "penalty.r2": (0.01, 5_120_000, "cosine"),
                     "optim.g_lr": (2.5e-4, 5_120_000, "cosine"), "optim.d_lr": (2.5e-4, 5_120_000, "cosine"),
                     "optim.g_beta2": (0.99, 5_120_000, "cosine"), "optim.d_beta2": (0.99, 5_120_000, "cosine")}


def test_r3gan_at_gamma_sets_the_start_and_a_tenth_as_the_end(bench, tmp_path: Path) -> None:
    cfg = _load(bench, "r3gan@0.5", "ring8", tmp_path)
    assert (cfg.penalty.r1, cfg.penalty.r2) == (0.5, 0.5)
    assert (cfg.schedule["gamma_r1"].end, cfg.schedule["gamma_r2"].end) == (0.05, 0.05)
    assert bench.bench_config("r3gan") == bench.r3gan_2d(bench.R3GAN_2D_GAMMA)
    assert bench.bench_config("gan") is bench.CONFIGS["gan"]


@pytest.mark.parametrize("name", ["r3gan@0", "r3gan@x", "r3gan@-1", "r3gan@inf", "r3gan2"])
def test_unknown_or_bad_config_names_are_refused(bench, name: str) -> None:
    with pytest.raises(ValueError) as info:
        bench.bench_config(name)
    assert str(info.value) == (f"unknown config {name!r}; known: blog, gan, wgan-gp, wgan-clip, lsgan, hinge-sn, "
                               "modes2d, r3gan, r3gan@<gamma > 0>")


def test_cli_refuses_a_bad_config_or_dataset_with_status_2(bench, capsys, tmp_path: Path) -> None:
    workdir = tmp_path / "never-made"
    assert bench.main(["--configs", "modes2d,r3gan@0", "--workdir", str(workdir)]) == 2
    assert capsys.readouterr().err == ("modes2d.py: unknown config 'r3gan@0'; known: blog, gan, wgan-gp, wgan-clip, "
                                       "lsgan, hinge-sn, modes2d, r3gan, r3gan@<gamma > 0>\n")
    assert bench.main(["--datasets", "grid25,ring9", "--workdir", str(workdir)]) == 2
    assert capsys.readouterr().err == "modes2d.py: unknown dataset 'ring9'; known: grid25, ring8\n"
    assert not workdir.exists()


def test_first_seed_option(bench) -> None:
    args = bench.parse_args(["--seeds", "1", "--first-seed", "100", "--configs", "r3gan@0.01,r3gan@1"])
    assert (args.seeds, args.first_seed, args.configs) == (1, 100, "r3gan@0.01,r3gan@1")
    assert bench.parse_args([]).first_seed == 0


def test_final_scores_are_the_last_steps_validation_and_test_lines(bench) -> None:
    evals = [{"step": 500, "eval_split": "validation", "eval_modes": 20},
             {"step": 1000, "eval_split": "validation", "eval_modes": 24, "final": True},
             {"step": 1000, "eval_split": "test", "eval_modes": 23, "final": True}]
    assert bench.final_scores(evals, 1000) == (evals[1], evals[2])
    assert bench.final_scores(evals[:1], 1000) == ({}, {})
    assert bench.final_scores(evals[:2], 1000) == (evals[1], {})


def _record(config: str, seed: int, modes: float, hq: float, rkl: float, val_modes: float, val_hq: float) -> dict:
    return {"config": config, "data": "ring8", "seed": seed, "modes": modes, "hq_fraction": hq, "reverse_kl": rkl,
            "val_modes": val_modes, "val_hq_fraction": val_hq, "wall_s": 10.0, "cpu_s": 5.0,
            "findings": {"by_severity": {}, "codes": [], "mode_collapse": False}}


def test_table_is_keyed_by_data_and_config_with_hq_as_a_fraction(bench) -> None:
    records = [_record("r3gan", 0, 8, 0.9, 0.01, 8, 0.8), _record("r3gan", 1, 6, 0.7, 0.03, 7, 0.6),
               _record("modes2d", 0, 8, 0.95, 0.002, 8, 0.9)]
    rows = bench.summarize(records)
    assert [row["config"] for row in rows] == ["r3gan", "modes2d"]  # in order of first record
    table = bench.table(rows)
    assert list(table) == ["ring8"] and list(table["ring8"]) == ["r3gan", "modes2d"]
    r3gan = table["ring8"]["r3gan"]
    assert r3gan["modes"] == {"mean": 7.0, "se": 1.0}
    assert r3gan["hq_fraction"]["mean"] == pytest.approx(0.8, abs=1e-12)
    assert r3gan["hq_fraction"]["se"] == pytest.approx(0.1, abs=1e-12)
    assert (r3gan["hq_fraction"]["min"], r3gan["hq_fraction"]["max"]) == (0.7, 0.9)
    assert r3gan["hq_fraction"]["by_seed"] == {"0": 0.9, "1": 0.7}
    assert r3gan["cpu_s"] == 5.0
    assert r3gan["reverse_kl"]["mean"] == pytest.approx(0.02, abs=1e-12)
    assert r3gan["val_modes"] == {"mean": 7.5, "se": 0.5}
    assert r3gan["val_hq_fraction"]["mean"] == pytest.approx(0.7, abs=1e-12)
    assert (r3gan["all_modes"], r3gan["seeds"], r3gan["failed"]) == (1, 2, 0)
    assert table["ring8"]["modes2d"]["modes"] == {"mean": 8.0, "se": 0.0}


def test_rescore_replaces_the_test_scores_by_eval_runs_and_keeps_the_validation_ones(bench, tmp_path: Path,
                                                                                     capsys) -> None:
    run = tmp_path / "modes2d-ring8-s5"
    assert cli_main(["train", "--preset", "toy", "data.name=ring8", "seed=5", "train.steps=150", "train.batch_size=64",
                     "model.width=16", "log.every=50", "log.progress=false", "log.sample_every=100000",
                     "eval.every=75", "eval.final=true", "eval.n=300", "train.device=cpu", f"out={run}"]) == 0
    validation, test = bench.final_lines(run, 150)
    stale = {**_record("modes2d", 5, validation["eval_modes"], validation["eval_hq_fraction"],
                       validation["eval_reverse_kl"], validation["eval_modes"], validation["eval_hq_fraction"]),
             "steps": 150, "eval_split": "test"}  # before eaab9b5: the test scores were the validation samples'
    payload = bench.rescore_runs({"runs": [stale], "meta": {}, "table": {}}, tmp_path)
    capsys.readouterr()
    assert cli_main(["eval", "--run", str(run)]) == 0
    written = json.loads((run / "eval-n300-seed12.json").read_text())  # the test seed, 5 + 7
    rescored = payload["runs"][0]
    assert rescored["test_seed"] == 12
    assert (rescored["modes"], rescored["hq_fraction"], rescored["reverse_kl"]) == (
        written["modes"], written["hq_fraction"], written["reverse_kl"]) == (
        test["eval_modes"], test["eval_hq_fraction"], test["eval_reverse_kl"])  # the run's own current test line
    assert rescored["hq_fraction"] != validation["eval_hq_fraction"]
    assert (rescored["val_modes"], rescored["val_hq_fraction"]) == (validation["eval_modes"],
                                                                    validation["eval_hq_fraction"])
    table = payload["table"]["ring8"]["modes2d"]
    assert table["hq_fraction"]["mean"] == pytest.approx(written["hq_fraction"], abs=1e-12)
    assert payload["test_rescored"]["runs_rescored"] == 1
    assert payload["test_rescored"]["seed_rule"].startswith("the final test evaluation of the current code")
    # a folder whose validation line is not the stored run's is refused
    with pytest.raises(bench.RescoreMismatch):
        bench.rescore_runs({"runs": [{**stale, "val_modes": validation["eval_modes"] - 1}], "meta": {}, "table": {}},
                           tmp_path)

