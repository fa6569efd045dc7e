"""Ablations: variant naming and parsing, the summary's numbers against the runs' own files, resume, ranking."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest

from ganstab import ablate, cli
from ganstab import summary as summary_module
from ganstab.diagnose import read_records

TINY = ["model.arch=toy", "model.width=16", "model.depth=2", "train.steps=40", "log.every=10", "log.sample_every=20",
        "log.checkpoint_every=20", "train.batch_size=64", "train.device=cpu", "train.ema=0"]


def _base() -> dict:
    return ablate.base_data(None, TINY, "toy")


def _expected_final(run_dir: Path, split: str = "test") -> dict[str, float]:
    """Recompute a run's final metrics straight from its files (independent of ablate.snapshot): evaluation
    metrics from the final test line (split "test", what is reported) or the validation lines (what ranks)."""
    records = read_records(run_dir)
    training = [r for r in records if "loss_d" in r]
    last = training[-1]
    out = {k: float(v) for k, v in last.items()
           if k in ("loss_d", "loss_g", "d_real", "d_fake", "d_acc", "d_real_sign", "grad_norm_d", "grad_norm_g", "gp",
                    "r1", "drift")}
    for record in records:
        if (record.get("eval_split") == "test") != (split == "test"):
            continue  # the summary ranks on validation lines and reports the final test line
        for key, value in record.items():
            if key.startswith("eval_") and not isinstance(value, str) and key not in ("eval_n", "eval_reference_n") \
                    and value is not None:
                out[key] = float(value)
    out["images_seen"] = float(records[-1]["images_seen"])
    out["wall_time"] = float(records[-1]["time"])
    findings = []
    if (run_dir / "findings.jsonl").is_file():
        findings = [json.loads(x) for x in (run_dir / "findings.jsonl").read_text().splitlines() if x.strip()]
    for severity in ("error", "warning", "info"):
        out[f"findings_{severity}"] = float(sum(f["severity"] == severity for f in findings))
    return out


def _check_summary(out: Path, summary: dict, variants: int, seeds: int) -> None:
    assert len(summary["variants"]) == variants
    for variant in summary["variants"]:
        assert len(variant["runs"]) == seeds and variant["unfinished"] == []
        for scope, split in (("final", "test"), ("validation", "validation")):
            per_run = [_expected_final(out / rel, split) for rel in variant["runs"]]
            assert set(variant[scope]) == set().union(*per_run)
            for metric, stats in variant[scope].items():
                values = [r[metric] for r in per_run]
                assert stats["n"] == seeds
                assert stats["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12, abs=1e-12)
                assert stats["se"] == pytest.approx(statistics.stdev(values) / math.sqrt(seeds), rel=1e-9, abs=1e-12)
        # budgets: the last training line with images_seen <= 50% of the smallest run's total
        totals = [max(r["images_seen"] for r in read_records(out / rel)) for v in summary["variants"] for rel in v["runs"]]
        half = summary["budgets"]["images_seen"][1]
        assert half == math.floor(min(totals) * 0.5)
        item = variant["images_seen"][1]
        assert item["fraction"] == 0.5 and item["budget"] == half
        values = []
        for rel in variant["runs"]:
            lines = [r for r in read_records(out / rel) if "loss_d" in r and r["images_seen"] <= half]
            values.append(max(lines, key=lambda r: r["images_seen"])["loss_d"])
        assert item["metrics"]["loss_d"]["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    # ranking (on the validation lines): eval_fd (lower) if logged, else eval_modes then eval_hq_fraction (higher),
    # else error count; then name
    finals = {v["name"]: v["validation"] for v in summary["variants"]}
    names = set().union(*finals.values())

    def mean(name: str, key: str) -> float:
        return finals[name][key]["mean"]

    if "eval_fd" in names:
        main, expected = "eval_fd", sorted(finals, key=lambda n: (mean(n, "eval_fd"), n))
    elif "eval_modes" in names:
        main, expected = "eval_modes", sorted(finals, key=lambda n: (-mean(n, "eval_modes"),
                                                                      -mean(n, "eval_hq_fraction"), n))
    else:
        main, expected = "findings_error", sorted(finals, key=lambda n: (mean(n, "findings_error"), n))
    assert summary["main_metric"] == main
    assert summary["ranking"] == expected
    assert [v["name"] for v in summary["variants"]] == expected
    assert [v["rank"] for v in summary["variants"]] == list(range(1, variants + 1))
    # the CSV holds the same numbers
    import csv

    rows = list(csv.DictReader(open(out / "summary.csv")))
    first = summary["variants"][0]
    row = next(r for r in rows if r["variant"] == first["name"] and r["scope"] == "final" and r["metric"] == "loss_g")
    assert float(row["mean"]) == first["final"]["loss_g"]["mean"]
    assert float(row["se"]) == first["final"]["loss_g"]["se"]
    assert int(row["n"]) == seeds and row["split"] == ""
    for scope, split in (("final", "test"), ("validation", "validation")):
        scored = [r for r in rows if r["variant"] == first["name"] and r["scope"] == scope
                  and r["metric"].startswith("eval_")]
        assert sorted(r["metric"] for r in scored) == sorted(k for k in first[scope] if k.startswith("eval_"))
        for row in scored:
            assert row["split"] == split and float(row["mean"]) == first[scope][row["metric"]]["mean"]


def test_parse_vary_and_names() -> None:
    key, values = ablate.parse_vary("loss.kind=nonsaturating,wasserstein,hinge")
    assert key == "loss.kind" and [v for v, _ in values] == ["nonsaturating", "wasserstein", "hinge"]
    assert values[2][1] == {"loss": {"kind": "hinge"}}
    key, values = ablate.parse_vary("optim.g_betas=[0.5,0.999],[0.0,0.9]")
    assert [nested["optim"]["g_betas"] for _, nested in values] == [[0.5, 0.999], [0.0, 0.9]]
    _, values = ablate.parse_vary("train.n_critic=1,5")
    assert [nested["train"]["n_critic"] for _, nested in values] == [1, 5]
    variants = ablate.grid_variants(["loss.kind=nonsaturating,wasserstein,hinge", "train.n_critic=1,5"])
    assert len(variants) == 6
    assert variants[-1].name == "loss.kind=hinge,train.n_critic=5"
    assert variants[-1].overrides == {"loss": {"kind": "hinge"}, "train": {"n_critic": 5}}
    assert ablate.safe_name("data.path=/tmp/x y") == "data.path=_tmp_x_y"
    assert ablate.parse_seeds("3") == [0, 1, 2] and ablate.parse_seeds("4,7") == [4, 7]


@pytest.mark.parametrize("text", ["loss.kind", "=a,b", "loss.kind=", "loss.kind=a,,b", "loss.kidn=hinge",
                                  "seed=1,2", "loss.kind=hinge,hinge"])
def test_bad_vary_is_one_line_exit_2(text: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["ablate", "--preset", "toy", "--vary", text, "--out", str(tmp_path / "a"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ganstab: error: ") and err.count("\n") == 1
    assert not (tmp_path / "a").exists()


def test_variants_file_and_invalid_variant_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "variants.yaml"
    spec.write_text("smooth-ns: {loss.kind: nonsaturating}\n"
                    "smooth-hinge:\n  loss: {kind: hinge}\n"
                    "plain/base: {}\n")
    code = cli.main(["ablate", "--preset", "toy", "--variants", str(spec), "--seeds", "2", "--out",
                     str(tmp_path / "a"), "--dry-run", "loss.real_label=0.9"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    skipped = [line for line in out if line.startswith("skipping variant")]
    assert len(skipped) == 1 and skipped[0].startswith("skipping variant smooth-hinge: label smoothing")
    planned = [line.split()[-1] for line in out if line.strip().startswith("new")]
    assert planned == [str(tmp_path / "a" / name / f"seed{s}") for name in ("smooth-ns", "plain_base") for s in (0, 1)]
    variants = ablate.read_variants(spec)
    assert [v.name for v in variants] == ["smooth-ns", "smooth-hinge", "plain_base"]
    assert variants[1].overrides == {"loss": {"kind": "hinge"}}
    crossed = ablate.make_variants(["train.n_critic=1,5"], spec)  # named variants x the --vary grid
    assert [v.name for v in crossed] == [f"{n},train.n_critic={c}" for n in ("smooth-ns", "smooth-hinge", "plain_base")
                                         for c in (1, 5)]
    assert crossed[1].overrides == {"loss": {"kind": "nonsaturating"}, "train": {"n_critic": 5}}


def _fake_run(run_dir: Path, evals: list[dict], findings: int = 0) -> None:
    """A hand-made finished run: two training lines, the given eval lines, `findings` errors."""
    run_dir.mkdir(parents=True)
    lines = [{"step": 10, "d_steps": 10, "images_seen": 640, "time": 0.1, "loss_d": 1.0, "loss_g": 1.0},
             {"step": 20, "d_steps": 20, "images_seen": 1280, "time": 0.2, "loss_d": 0.5, "loss_g": 2.0}]
    lines += [{"step": 20, "images_seen": 1280, "time": 0.25, **e} for e in evals]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run_dir / "findings.jsonl").write_text("".join(
        json.dumps({"code": "x", "severity": "error", "start_step": 5, "end_step": 6}) + "\n" for _ in range(findings)))
    (run_dir / "generator.json").write_text("{}")


@pytest.mark.parametrize("kind", ["fd", "modes", "fallback"])
def test_ranking_rules(kind: str, tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    values = {"fd": {"a": [{"eval_fd": 3.0}], "b": [{"eval_fd": 1.0}], "c": []},
              "modes": {"a": [{"eval_modes": 20, "eval_hq_fraction": 0.5}],
                        "b": [{"eval_modes": 24, "eval_hq_fraction": 0.1}],
                        "c": [{"eval_modes": 24, "eval_hq_fraction": 0.9}]},
              "fallback": {"a": [], "b": [], "c": []}}[kind]
    errors = {"a": 2, "b": 0, "c": 0}
    variants = [ablate.Variant(n) for n in names]
    ablate.write_plan(tmp_path, {}, variants, [0], [])
    for n in names:
        _fake_run(tmp_path / n / "seed0", values[n], findings=errors[n])
    summary = summary_module.summarize(tmp_path)
    expected = {"fd": ["b", "a", "c"], "modes": ["c", "b", "a"], "fallback": ["b", "c", "a"]}[kind]
    assert summary["ranking"] == expected
    assert summary["main_metric"] == {"fd": "eval_fd", "modes": "eval_modes", "fallback": "findings_error"}[kind]
    assert json.loads((tmp_path / "summary.json").read_text())["ranking"] == expected


def test_the_summary_ranks_on_validation_and_reports_the_test_line(tmp_path: Path) -> None:
    scores = {"a": (1.0, 5.0), "b": (2.0, 3.0)}  # (validation, test) FD of each variant's final evaluation
    ablate.write_plan(tmp_path, {}, [ablate.Variant(n) for n in scores], [0], [])
    for name, (validation, test) in scores.items():
        _fake_run(tmp_path / name / "seed0", [{"eval_fd": validation, "eval_split": "validation", "final": True},
                                              {"eval_fd": test, "eval_split": "test", "final": True}])
    summary = summary_module.summarize(tmp_path)
    assert summary["ranking"] == ["a", "b"]  # by validation: a's test FD (5) would rank it last
    assert (summary["final_split"], summary["ranking_split"]) == ("test", "validation")
    assert [v["final"]["eval_fd"]["mean"] for v in summary["variants"]] == [5.0, 3.0]
    assert [v["validation"]["eval_fd"]["mean"] for v in summary["variants"]] == [1.0, 2.0]
    assert summary_module.format_summary(summary).splitlines() == [
        "ranking by eval_fd on validation (lower is better); reported: the final evaluation on test:",
        "   1. a: 5 (test), 1 (validation) (1 runs)", "   2. b: 3 (test), 2 (validation) (1 runs)"]
    rows = [r for r in summary_module.summary_rows(summary) if r["variant"] == "a" and r["metric"] == "eval_fd"]
    assert [(r["scope"], r["fraction"], r["split"], r["mean"]) for r in rows] == [  # evaluated at the end only
        ("final", None, "test", 5.0), ("validation", None, "validation", 1.0),
        ("images_seen", 1.0, "validation", 1.0), ("wall_time", 1.0, "validation", 1.0)]
    metric, curves = summary_module.main_curve(tmp_path, summary)
    assert metric == "eval_fd" and curves["a"] == ([1280.0], [1.0], [0.0])  # the test line is no point of it


def test_mean_se_values() -> None:
    stats = summary_module.mean_se([1.0, 2.0, 4.0, None])
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(7 / 3)
    assert stats["se"] == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]) / math.sqrt(3))
    assert summary_module.mean_se([5.0]) == {"n": 1, "mean": 5.0, "se": None}
    assert summary_module.mean_se([]) == {"n": 0, "mean": None, "se": None}


def _run_grid(out: Path, vary: list[str], seeds: int, jobs: int = 2) -> ablate.AblationResult:
    variants = ablate.make_variants(vary)
    return ablate.run_ablation(out, _base(), variants, list(range(seeds)), jobs=jobs, echo=lambda _m: None)


def _grid_checks(out: Path, vary: list[str], n_variants: int, seeds: int, jobs_after: int = 2) -> None:
    result = _run_grid(out, vary, seeds)  # two spawned workers
    assert len(result.started) == n_variants * seeds and result.finished_before == []
    assert result.failed == [] and result.invalid == []
    for rel in result.started:
        assert (out / rel / "generator.json").is_file() and (out / rel / "report.html").is_file()
    assert (out / "report.html").is_file()
    _check_summary(out, json.loads((out / "summary.json").read_text()), n_variants, seeds)

    again = _run_grid(out, vary, seeds, jobs_after)  # everything finished: nothing is trained again
    assert again.started == [] and len(again.finished_before) == n_variants * seeds
    assert again.summary["ranking"] == result.summary["ranking"]

    # a half-done run (no generator.json, checkpoints present) is resumed, a wiped one restarted
    victim, wiped = result.started[0], result.started[-1]
    (out / victim / "generator.json").unlink()
    shutil.rmtree(out / wiped / "checkpoints")
    (out / wiped / "generator.json").unlink()
    third = _run_grid(out, vary, seeds, jobs_after)
    assert sorted(third.started) == sorted([victim, wiped])
    assert len(third.finished_before) == n_variants * seeds - 2
    assert "resuming from ckpt_0000040.pt" in (out / victim / "train.log").read_text()
    assert (out / wiped / "generator.json").is_file()
    assert json.loads((out / "summary.json").read_text())["ranking"] == result.summary["ranking"]


def test_ablation_2x2_end_to_end(tmp_path: Path) -> None:
    _grid_checks(tmp_path / "abl", ["loss.kind=nonsaturating,hinge"], 2, 2, jobs_after=1)  # resume in-process


@pytest.mark.slow
def test_ablation_4x3_end_to_end(tmp_path: Path) -> None:
    _grid_checks(tmp_path / "abl", ["loss.kind=nonsaturating,hinge", "train.n_critic=1,2"], 4, 3)


def test_cli_ablate_refuses_changed_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "abl"
    run = out / "base" / "seed0"
    run.mkdir(parents=True)
    from ganstab.config import dump_yaml
    from ganstab.pipeline import load_config

    cfg = load_config(None, TINY + ["train.steps=80", f"out={run}"], "toy")
    (run / "config.yaml").write_text(dump_yaml(cfg))
    (run / "generator.json").write_text("{}")
    code = cli.main(["ablate", "--preset", "toy", *TINY, "--seeds", "1", "--out", str(out), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "train.steps: 80 -> 40" in err and "--overwrite" in err and err.count("\n") == 1
