"""`ganstab tune`: the search-space parser, seeded sampling, workers sharing a study, killed workers,
the end-to-end command and its report (tiny grid25 trials of a few dozen steps on one CPU thread)."""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="optuna is not installed (pip install 'ganstab[tune]')")

from ganstab import tune  # noqa: E402
from ganstab.cli.main import main  # noqa: E402
from ganstab.errors import ConfigError  # noqa: E402
from ganstab.pipeline import load_config, train  # noqa: E402
from ganstab.report import browser  # noqa: E402
from ganstab.report.tune import TUNE_SECTIONS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
BASE_YAML = """\
data: {name: grid25}
model: {arch: toy, latent_dim: 2, width: 16, depth: 2, g_norm: none, d_norm: none}
loss: {kind: nonsaturating}
train: {batch_size: 64, device: cpu, threads: 1}
log: {progress: false, sample_every: 1000, checkpoint_every: 1000}
eval: {n: 500}
"""
SPACE_YAML = """\
optim.g_lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
loss.kind: {choices: [nonsaturating, hinge]}
optim.g_betas: {choices: [[0.0, 0.9], [0.5, 0.999]]}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny base config and search space as YAML files."""
    folder = tmp_path_factory.mktemp("tune-inputs")
    (folder / "base.yaml").write_text(BASE_YAML)
    (folder / "space.yaml").write_text(SPACE_YAML)
    return folder / "base.yaml", folder / "space.yaml"


def tune_cmd(base: Path, space: Path, out: Path, *extra: str) -> list[str]:
    """The `ganstab tune` command line of these tests."""
    return [sys.executable, "-m", "ganstab", "tune", "--config", str(base), "--space", str(space), "--out", str(out),
            *extra]


def run_cli(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """Run a command from the repository root with this worktree's package first on the path."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def load(out: Path, storage: str | None = None) -> optuna.study.Study:
    """The study of a tune folder."""
    return optuna.load_study(study_name=tune.STUDY_NAME, storage=tune.make_storage(storage or tune.default_storage(out)))


# ------------------------------------------------------------------------------------------ spaces
@pytest.mark.parametrize("space, message", [
    ([1, 2], "a search space must be a mapping of config keys to ranges or choices, got list"),
    ({}, "the search space is empty; give at least one config key to search"),
    ({"optim.g_rl": {"type": "float", "low": 1e-4, "high": 1e-2}},
     "search space key 'optim.g_rl' is not a config key (did you mean 'optim.g_lr'?); run 'ganstab keys' to list "
     "the keys"),
    ({"seed": {"choices": [1, 2]}}, "search space key 'seed' is set by tune itself; use --seed and --out instead"),
    ({"out": {"choices": ["a"]}}, "search space key 'out' is set by tune itself; use --seed and --out instead"),
    ({"optim.g_lr": 0.1}, "search space key 'optim.g_lr' must map to {type: float|int, low, high, log: true|false} "
                          "or {choices: [...]}, got float"),
    ({"optim.g_lr": {"type": "float", "low": 1e-2, "high": 1e-2}},
     "search space key 'optim.g_lr': low (0.01) must be below high (0.01)"),
    ({"optim.g_lr": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}},
     "search space key 'optim.g_lr': log: true needs low > 0, got low=0.0"),
    ({"loss.kind": {"choices": []}}, "search space key 'loss.kind': choices must be a non-empty list of values"),
    ({"loss.kind": {"choices": ["hinge", "hinge"]}},
     "search space key 'loss.kind': choices lists a value twice; give each value once"),
    ({"optim.g_lr": {"type": "double", "low": 1e-4, "high": 1e-2}},
     "search space key 'optim.g_lr': unknown type 'double'; use type: float or type: int (or choices: [...])"),
    ({"optim.g_lr": {"low": 1e-4, "high": 1e-2}},
     "search space key 'optim.g_lr': unknown type None; use type: float or type: int (or choices: [...])"),
    ({"train.n_critic": {"type": "int", "low": 1}}, "search space key 'train.n_critic': type: int needs low and high"),
    ({"train.n_critic": {"type": "int", "low": 1, "high": 2.5}},
     "search space key 'train.n_critic': an int range needs whole numbers, got low=1, high=2.5"),
    ({"optim.g_lr": {"type": "float", "low": "small", "high": 1e-2}},
     "search space key 'optim.g_lr': low must be a finite number, got 'small'"),
    ({"optim.g_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": "yes"}},
     "search space key 'optim.g_lr': log must be true or false, got 'yes'"),
    ({"optim.g_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "step": 2}},
     "search space key 'optim.g_lr': unknown field 'step'; use type, low, high, log or choices"),
    ({"loss.kind": {"choices": ["hinge"], "type": "float"}},
     "search space key 'loss.kind': give either choices or type/low/high, not both"),
])
def test_bad_space_gives_its_one_line(space: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        tune.parse_space(space)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_space_parses_ranges_and_choices(files: tuple[Path, Path]) -> None:
    space = tune.read_space(files[1])
    assert space["optim.g_lr"] == tune.Param("optim.g_lr", "float", 1e-4, 1e-2, True)
    assert space["loss.kind"].choices == ("nonsaturating", "hinge")
    betas = space["optim.g_betas"]
    assert betas.decode(betas.encode([0.5, 0.999])) == [0.5, 0.999]


def test_default_spaces_parse_and_fit_their_data() -> None:
    for kind in tune.DEFAULT_SPACES:
        space = tune.default_space(kind)
        assert {"loss.kind", "optim.g_lr", "optim.d_lr", "penalty.gp", "penalty.r1", "penalty.r2",
                "train.ema"} <= set(space)
        assert "relativistic" in space["loss.kind"].choices
        assert ("penalty.lecam" in space) == (kind != "points")
        assert space["optim.g_lr"].log and space["loss.real_label"].choices == (1.0, 0.9)
        assert ("augment.policy" in space) == (kind != "points")
        assert (space["model.arch"].choices if "model.arch" in space else None) == (
            None if kind == "points" else ("mlp", "dcgan"))
    assert tune.data_kind({"data": {"name": "grid25"}}) == "points"
    assert tune.data_kind({"data": {"name": "digits"}}) == "small_images"
    assert tune.objective_metric({"data": {"name": "grid25"}}) == ("modes", True)
    assert tune.objective_metric({"data": {"name": "digits"}}) == ("fd", False)


def test_missing_optuna_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tune, "optuna", None)
    with pytest.raises(ConfigError, match=r"^ganstab tune needs optuna; install it with: pip install 'ganstab\[tune\]'"):
        tune.require_optuna()


# ------------------------------------------------------------------------------------------ sampling
def _first_params(seed: int, n: int = 3) -> list[dict]:
    """The params of the first n trials of an in-memory study with the tune sampler and a fake objective."""
    space = tune.default_space("points")
    study = optuna.create_study(sampler=tune.TrialSeededTPE(seed), direction="maximize")
    study.optimize(lambda trial: float(sum(isinstance(space[k].suggest(trial), str) for k in space)), n_trials=n)
    return [t.params for t in study.trials]


def test_same_seed_gives_the_same_first_trials() -> None:
    first = _first_params(7)
    assert first == _first_params(7)
    assert first != _first_params(8)
    assert len({json.dumps(p, sort_keys=True) for p in first}) == 3


def test_refused_combination_prunes_the_trial_not_the_study(tmp_path: Path) -> None:
    space = tune.parse_space({"model.d_norm": {"choices": ["batch"]}, "penalty.gp": {"choices": [10.0]}})
    base = {"data": {"name": "grid25"}, "model": {"arch": "toy", "width": 16, "depth": 2},
            "train": {"device": "cpu", "threads": 1}}
    settings = tune.TuneSettings(out=tmp_path, base=base, space=space, storage=tune.default_storage(tmp_path),
                                 trials=2, steps=10, metric="modes", higher=True)
    tune.run_worker(settings, echo=lambda _m: None)
    trials = load(tmp_path).trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert all("model.d_norm=batch cannot be used with a gradient penalty" in t.user_attrs["config_error"]
               for t in trials)
    assert not (tmp_path / "trials").exists()


class FakeTrial:
    """The part of an Optuna trial the prune hook uses."""

    def __init__(self, prune: bool) -> None:
        self.prune, self.reports, self.user_attrs = prune, [], {}

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune

    def set_user_attr(self, key: str, value: object) -> None:
        self.user_attrs[key] = value


class FakeTrainer:
    """The part of a Trainer the prune hook reads."""

    step, eval_seconds = 12, 0.0


def test_prune_hook_reports_evaluations_and_prunes(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 10, "eval_modes": 4.0}) + "\n")
    trainer, keep = FakeTrainer(), FakeTrial(prune=False)
    hook = tune.PruneHook(keep, tmp_path, "modes")
    hook(trainer)
    assert keep.reports == []  # no evaluation yet
    trainer.eval_seconds = 0.5
    hook(trainer)
    assert keep.reports == [(10, 4.0)]
    trainer.eval_seconds = 0.6  # a quick evaluation: no new main metric, nothing reported twice
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": 11, "eval_class_kl": 0.1, "quick": True}) + "\n")
    hook(trainer)
    assert keep.reports == [(10, 4.0)]
    stop = FakeTrial(prune=True)
    with pytest.raises(optuna.TrialPruned):
        tune.PruneHook(stop, tmp_path, "modes")(trainer)
    assert stop.user_attrs["pruned_by"] == "pruner at step 10 (eval_modes=4)"
    # an error over evaluation lines is left to the pruner; one over training lines prunes at once
    finding = {"code": "evaluation.failed", "severity": "error", "start_step": 10}
    (tmp_path / "findings.jsonl").write_text(json.dumps(finding) + "\n")
    tune.PruneHook(FakeTrial(prune=False), tmp_path, "modes")(trainer)
    finding = {"code": "divergence.explosion", "severity": "error", "start_step": 11}
    with (tmp_path / "findings.jsonl").open("a") as fh:
        fh.write(json.dumps(finding) + "\n")
    doctor = FakeTrial(prune=False)
    with pytest.raises(optuna.TrialPruned):
        tune.PruneHook(doctor, tmp_path, "modes")(trainer)
    assert doctor.user_attrs["pruned_by"] == "doctor: divergence.explosion at step 12"


# ------------------------------------------------------------------------------------------ workers
def _check_disjoint(out: Path, storage: str | None, count: int) -> list:
    """Every trial number once, each trained trial in its own folder, no folder trained twice."""
    trials = load(out, storage).trials
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials))) and count <= len(trials) <= count + 1
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    runs = [t.user_attrs["run"] for t in trials]
    assert len(set(runs)) == len(runs)
    for trial in trials:
        metrics = Path(trial.user_attrs["run"]) / "metrics.jsonl"
        steps = [(json.loads(line)["step"], "eval_modes" in line, json.loads(line).get("eval_split"))
                 for line in metrics.read_text().splitlines()]
        assert len(steps) == len(set(steps)), f"trial {trial.number} was trained twice"
    assert sorted(int(p.name) for p in (out / "trials").iterdir()) == numbers
    return trials


def test_two_workers_share_one_sqlite_study(files: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "study"
    done = run_cli(tune_cmd(*files, out, "--trials", "4", "--steps", "20", "--workers", "2", "--rerun-seeds", "0"))
    assert done.returncode == 0, done.stderr
    trials = _check_disjoint(out, None, 4)
    assert len(re.findall(r"^trial \d+ (complete|pruned)", done.stdout, re.M)) == len(trials)


def test_two_commands_share_one_journal_file(files: tuple[Path, Path], tmp_path: Path) -> None:
    out, storage = tmp_path / "study", f"journal:{tmp_path / 'shared' / 'study.log'}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = tune_cmd(*files, out, "--trials", "4", "--steps", "20", "--storage", storage, "--rerun-seeds", "0")
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = _check_disjoint(out, storage, 4)
    assert (out / "trials.csv").is_file() and not (out / "study.db").exists()


def test_killed_worker_leaves_the_study_resumable(files: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "study"
    cmd = tune_cmd(*files, out, "--trials", "2", "--trial-seconds", "3", "--rerun-seeds", "0")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    victim = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out / "trials" / "0" / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.is_file() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
    assert metrics.is_file() and victim.poll() is None, "the first trial never started training"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert [t.state.name for t in load(out).trials] == ["RUNNING"]
    assert load(out).trials[0].user_attrs["host"] == socket.gethostname()
    again = run_cli(cmd)
    assert again.returncode == 0, again.stderr
    assert f"trial 0: its worker (pid {victim.pid}) is gone; marked FAIL" in again.stdout
    states = [t.state.name for t in load(out).trials]
    assert states[0] == "FAIL" and len(states) == 3 and set(states[1:]) <= {"COMPLETE", "PRUNED"}
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["state"] for r in rows] == states


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def tuned(files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`ganstab tune` with 3 trials of 30 steps, the top 2 re-run with 2 fresh seeds; (out, stdout)."""
    out = tmp_path_factory.mktemp("tune-e2e") / "study"
    done = run_cli(tune_cmd(*files, out, "--trials", "3", "--steps", "30", "--top", "2", "--rerun-seeds", "2",
                            "--seed", "3"))
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_tune_writes_every_output(tuned: tuple[Path, str], tmp_path: Path) -> None:
    out, stdout = tuned
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == ["number", "state", "value", "objective", "feasible", "params", "duration_s", "run", "note"]
    assert {r["objective"] for r in rows} == {"modes"}
    assert [r["feasible"] for r in rows] == ["true" if r["state"] == "COMPLETE" else "" for r in rows]
    assert json.loads(rows[0]["params"])["optim.g_betas"] in ([0.0, 0.9], [0.5, 0.999])
    assert len(re.findall(r"^trial \d ", stdout, re.M)) == 3
    rerun = list(csv.DictReader((out / "rerun.csv").open()))
    assert [r["rank"] for r in rerun] == ["1", "2"][:len(rerun)] and all(r["n"] == "2" for r in rerun)
    assert "| rank | trial |" in stdout
    assert sorted(p.name for p in (out / "rerun").iterdir() if p.is_dir()) == sorted(f"trial{r['trial']}" for r in rerun)
    assert {p.name for p in (out / "rerun" / f"trial{rerun[0]['trial']}").iterdir()} == {"seed1003", "seed1004"}
    best_text = (out / "best.yaml").read_text()
    assert best_text.startswith("# ganstab tune winner: objective modes (max), constraints: none\n")
    assert not re.search(r"^(seed|out):", best_text, re.M)
    winner = json.loads(rerun[0]["params"])
    cfg = load_config(out / "best.yaml", [f"out={tmp_path / 'best-run'}", "train.steps=5", "eval.every=0"])
    assert cfg.optim.g_lr == pytest.approx(winner["optim.g_lr"], rel=1e-12, abs=0)
    assert cfg.loss.kind == winner["loss.kind"] and list(cfg.optim.g_betas) == winner["optim.g_betas"]
    assert train(cfg, echo=lambda _m: None).steps == 5
    html = (out / "report.html").read_text()
    for section_id in TUNE_SECTIONS:
        assert f'<section id="{section_id}">' in html
    assert "data:image/png;base64," in html and "Parameter importances" in html


def test_rerunning_the_command_resumes_without_new_trials(tuned: tuple[Path, str], files: tuple[Path, Path]) -> None:
    out, _ = tuned
    again = run_cli(tune_cmd(*files, out, "--trials", "3", "--steps", "30", "--top", "2", "--rerun-seeds", "2",
                             "--seed", "3"))
    assert again.returncode == 0, again.stderr
    assert len(load(out).trials) == 3 and "4 runs; 4 finished before, nothing to train" in again.stdout
    other = run_cli(tune_cmd(*files, out, "--trials", "3", "--steps", "40", "--seed", "3"))
    assert other.returncode == 2
    assert other.stderr.strip().endswith("was started with another base config, space, budget, seed, objective or "
                                         "constraints; rerun that exact command to resume it, or choose another "
                                         "--out/--storage")
    constrained = run_cli(tune_cmd(*files, out, "--trials", "3", "--steps", "30", "--seed", "3", "--constraint",
                                   "modes>=3"))
    assert constrained.returncode == 2 and "seed, objective or constraints; rerun" in constrained.stderr


@pytest.mark.parametrize("extra, message", [
    ([], "give exactly one of --trials N and --time-budget SECONDS"),
    (["--trials", "2", "--time-budget", "5"], "give exactly one of --trials N and --time-budget SECONDS"),
    (["--trials", "2", "--steps", "5", "--trial-seconds", "2"], "give at most one trial budget: --steps N or "
                                                                "--trial-seconds S"),
    (["--trials", "2", "--rerun-steps", "5", "--rerun-seconds", "2"], "give at most one re-run budget: --rerun-steps N "
                                                                      "or --rerun-seconds S"),
    (["--trials", "2", "--rerun-seconds", "0"], "--rerun-seconds must be at least 1, got 0"),
    (["--trials", "2", "--rerun-steps", "-3"], "--rerun-steps must be at least 1, got -3"),
    (["--trials", "0"], "--trials must be at least 1, got 0"),
    (["--trials", "2", "--storage", "nowhere"], "--storage 'nowhere' is neither an Optuna RDB URL"),
])
def test_bad_arguments_are_one_line_exit_2(files: tuple[Path, Path], tmp_path: Path, extra: list[str], message: str,
                                           capsys: pytest.CaptureFixture) -> None:
    argv = ["tune", "--config", str(files[0]), "--space", str(files[1]), "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ganstab: error: {message}") and err.count("\n") == 1


def test_bad_space_file_is_one_line_exit_2(files: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("optim.g_lr: {type: float, low: 0.1, high: 0.01}\n")
    assert main(["tune", "--config", str(files[0]), "--space", str(space), "--trials", "1", "--out",
                 str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == ("ganstab: error: search space key 'optim.g_lr': low (0.1) must be below "
                                       "high (0.01)\n")


@pytest.mark.skipif(browser.find_browser() is None,
                    reason="chromium is not installed (apt-get install chromium; .ci/run installs it)")
def test_tune_report_in_browser(tuned: tuple[Path, str]) -> None:
    out, _ = tuned
    report = out / "report.html"
    check = browser.check_page(report, ARTIFACTS / "report_tune.png")
    assert check.console_errors == []
    expected_images = len(re.findall(r"<img\b", report.read_text(encoding="utf-8")))
    assert expected_images >= 3 and len(check.images) == expected_images
    for image in check.images:
        assert image["src"].startswith("data:image/png;base64,"), image["alt"]
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image["alt"]
    assert check.section_ids == list(TUNE_SECTIONS)
    assert check.title == "ganstab tune: study"


# ------------------------------------------------------------------------------------------ postgres
def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_workers_share_one_postgresql_study(files: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("Debian's PostgreSQL binaries are not installed (/usr/lib/postgresql/*/bin/initdb)")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install psycopg2-binary)")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("su") is None:
        pytest.skip("running as root, and postgres refuses root; no 'su' to run it as the postgres user")
    if as_root:
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and postgres refuses root; there is no 'postgres' user to run it as")
    # pytest's tmp_path lies under a root-only folder: the cluster gets its own folder that postgres owns
    pg_root = Path(tempfile.mkdtemp(prefix="ganstab-pg-"))
    if as_root:
        import pwd
        user = pwd.getpwnam("postgres")
        os.chown(pg_root, user.pw_uid, user.pw_gid)
    data, port = pg_root / "data", _free_port()

    def pg(*args: str) -> subprocess.CompletedProcess:
        command = " ".join(f"'{a}'" for a in args)
        full = ["su", "postgres", "-s", "/bin/sh", "-c", command] if as_root else ["/bin/sh", "-c", command]
        return subprocess.run(full, capture_output=True, text=True, timeout=120)

    init = pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "tune", "--auth=trust")
    assert init.returncode == 0, init.stderr
    start = pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(pg_root / "pg.log"), "-w", "-o",
               f"-c listen_addresses=127.0.0.1 -p {port} -k {pg_root}", "start")
    assert start.returncode == 0, start.stderr
    try:
        url = f"postgresql://tune@127.0.0.1:{port}/postgres"
        out = tmp_path / "study"
        done = run_cli(tune_cmd(*files, out, "--trials", "4", "--steps", "20", "--workers", "2", "--storage", url,
                                "--rerun-seeds", "0"))
        assert done.returncode == 0, done.stderr
        _check_disjoint(out, url, 4)
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(pg_root, ignore_errors=True)


def test_rerun_rows_follow_the_summary_ranking_with_its_tie_breaker() -> None:
    """Three re-runs all at 25 modes: the ablation summary ranks them by hq_fraction, and so must the table."""
    from ganstab.tune import order_by_ranking

    rows = [{"trial": 6, "mean": 25.0}, {"trial": 32, "mean": 25.0}, {"trial": 44, "mean": 25.0}]
    ordered = order_by_ranking(rows, ["trial44", "trial6", "trial32"])
    assert [(r["rank"], r["trial"]) for r in ordered] == [(1, 44), (2, 6), (3, 32)]
