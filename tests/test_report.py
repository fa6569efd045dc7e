"""HTML reports: sections present, every image an inline PNG, findings and recoveries shown, ablation links."""

from __future__ import annotations

import base64
import json
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest

from ganstab import ablate, cli
from ganstab import summary as summary_module
from ganstab.report import html as report_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r"<img\b[^>]*>")
SRC = re.compile(r'src="([^"]*)"')


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, train_tiny_toy_run) -> Path:
    """A tiny finished toy run on grid25 (its report.html is written by the training itself)."""
    return train_tiny_toy_run(tmp_path_factory.mktemp("report") / "run")


def _images(text: str) -> list[bytes]:
    """Decoded PNG bytes of every <img> (asserting each is an inline base64 PNG)."""
    found = []
    for tag in IMG.findall(text):
        src = SRC.search(tag).group(1)
        assert src.startswith("data:image/png;base64,"), src[:40]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_MAGIC) and len(data) > 200
        found.append(data)
    return found


def _self_contained(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "could not be rendered" not in text


def _section(text: str, section_id: str) -> str:
    start = text.index(f'<section id="{section_id}">')
    return text[start:text.index("</section>", start)]


def test_training_writes_run_report(run_dir: Path) -> None:
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    for section_id in report_html.RUN_SECTIONS:
        assert text.count(f'<section id="{section_id}">') == 1, section_id
    _self_contained(text)
    samples = sorted((run_dir / "samples").glob("*.png"))
    assert [p.name for p in samples] == [f"step_{s:07d}.png" for s in (10, 20, 30, 40)]
    has_eval = any(k.startswith("eval_") for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                   for k in json.loads(line))
    images = _images(text)
    # losses, D outputs (d_real/d_fake + d_acc), r_t (every run logs d_real_sign), gradient norms, evaluation
    # (when logged), then every sample grid
    assert len(images) == 4 + int(has_eval) + len(samples)
    assert images[-len(samples):] == [p.read_bytes() for p in samples]
    assert len(_images(_section(text, "losses"))) == 1
    assert len(_images(_section(text, "d-outputs"))) == 1
    assert len(_images(_section(text, "augment"))) == 1  # r_t only: no ADA in this run
    assert len(_images(_section(text, "grad-norms"))) == 1
    assert len(_images(_section(text, "samples"))) == 4
    assert "<code>model.width</code>" in _section(text, "config")
    # 40 steps end far from the data: the final evaluation (0 of 25 modes) is decisive on its own
    findings = _section(text, "findings")
    assert "evaluation.failed" in findings and "mode_collapse.modes" in findings
    assert '<div class="k">verdict</div><div class="v">failed</div>' in _section(text, "summary")
    assert "No automatic recoveries" in _section(text, "recoveries")


def test_findings_and_recoveries_are_shown(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    plain = _images(_section((run / "report.html").read_text(), "losses"))[0]
    findings = [
        {"code": "stall.d_wins", "severity": "warning", "start_step": 10, "end_step": 30, "metric": "d_acc",
         "evidence": {"d_acc": 0.97}, "message": "D wins every batch <&>", "advice": "Lower optim.d_lr."},
        {"code": "divergence.explosion", "severity": "error", "start_step": 20, "end_step": 20, "metric": "loss_g",
         "evidence": {"ratio": 12.5}, "message": "loss_g exploded", "advice": "Use penalty.gp=10."},
    ]
    (run / "findings.jsonl").write_text("".join(json.dumps(f) + "\n" for f in findings))
    (run / "recoveries.jsonl").write_text(json.dumps({"step": 20, "reason": "loss_g exploded", "lr_scale": 0.5,
                                                      "lr_g": 5e-4, "lr_d": 5e-4}) + "\n")
    path = report_html.write_report(run)
    text = path.read_text(encoding="utf-8")
    _self_contained(text)
    table = _section(text, "findings")
    assert table.count("<tr>") == 3  # header + two findings
    assert "D wins every batch &lt;&amp;&gt;" in table and "Lower optim.d_lr." in table
    assert table.count('class="sev warning"') == 1 and table.count('class="sev error"') == 1
    assert "10&ndash;30" in table and "20&ndash;20" in table and "#2" in table
    assert "Findings (2)" in text and "Recoveries (1)" in text
    recoveries = _section(text, "recoveries")
    assert recoveries.count("<tr>") == 2 and "loss_g exploded" in recoveries
    assert '<div class="k">errors</div><div class="v">1</div>' in _section(text, "summary")
    # the verdict is the first card of the summary, marked as an error
    assert _section(text, "summary").split('<div class="cards">', 1)[1].startswith(
        '<div class="card error"><div class="k">verdict</div><div class="v">failed</div></div>')
    marked = _images(_section(text, "losses"))[0]
    assert marked != plain  # the spans and the recovery line are drawn on the timeline


def test_run_summary_shows_the_final_test_line_and_says_so(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lines = [x for x in lines if not any(k.startswith("eval_") for k in x)]
    lines += [{"step": 40, "images_seen": 2560, "time": 0.1, "eval_modes": 7.0, "eval_split": "validation",
               "final": True},
              {"step": 40, "images_seen": 2560, "time": 0.1, "eval_modes": 5.0, "eval_split": "test", "final": True}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    cards = _section(report_html.write_report(run).read_text(encoding="utf-8"), "summary")
    assert '<div class="k">eval_modes (test)</div><div class="v">5</div>' in cards
    assert "eval_modes (validation)" not in cards
    assert "Evaluation values are the final evaluation&#x27;s on the test reference." in cards
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:-1]))  # no test line yet
    cards = _section(report_html.write_report(run).read_text(encoding="utf-8"), "summary")
    assert '<div class="k">eval_modes (validation)</div><div class="v">7</div>' in cards
    assert "No final test line yet: evaluation values are the last on the validation reference." in cards


def test_report_cli(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "report.html").unlink()
    assert cli.main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {run / 'report.html'}"
    assert (run / "report.html").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganstab: error: ") and err.count("\n") == 1 and "neither a run" in err
    assert not (empty / "report.html").exists()


def test_report_cli_reads_each_lines_file_once(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with open(run / "metrics.jsonl", "ab") as stream:
        stream.write(b"[1, 2]\n")  # a damaged line: warned about once, the rest reported
    reads: dict[str, int] = {}
    original = Path.read_bytes

    def counted(self: Path) -> bytes:
        reads[self.name] = reads.get(self.name, 0) + 1
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    assert cli.main(["report", str(run)]) == 0
    assert (reads["metrics.jsonl"], reads["findings.jsonl"]) == (1, 1)
    assert capsys.readouterr().err.splitlines() == [
        f"ganstab: warning: skipped 1 damaged line of {run}/metrics.jsonl (line {len(lines_of(run))}: a JSON list, "
        "not an object); the rest was read"]


def lines_of(run: Path) -> list[bytes]:
    """The non-empty lines of a run's metrics.jsonl."""
    return [x for x in (run / "metrics.jsonl").read_bytes().splitlines() if x.strip()]


def make_ablation(run_dir: Path, out: Path) -> dict:
    """An ablation folder of two variants x two seeds built from copies of a real run, with eval_modes set."""
    modes = {"a": [20, 22], "b": [24, 25]}
    ablate.write_plan(out, {}, [ablate.Variant("a", labels=["loss.kind=hinge"]), ablate.Variant("b")], [0, 1],
                      [("c", "label smoothing has no meaning for loss.kind=hinge")])
    for name, values in modes.items():
        for seed, value in enumerate(values):
            run = out / name / f"seed{seed}"
            shutil.copytree(run_dir, run)
            lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
            lines = [x for x in lines if not any(k.startswith("eval_") for k in x)]
            for step, images, fraction in ((20, 1280, 0.5), (40, 2560, 1.0)):
                lines.append({"step": step, "images_seen": images, "time": 0.1,
                              "eval_modes": value * fraction, "eval_hq_fraction": 0.5})
            lines.append({"step": 40, "images_seen": 2560, "time": 0.1, "eval_modes": value - 1,  # the test line
                          "eval_hq_fraction": 0.25, "eval_split": "test", "final": True})
            (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return summary_module.summarize(out)


def test_ablation_report(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "abl"
    summary = make_ablation(run_dir, out)
    assert summary["ranking"] == ["b", "a"] and summary["main_metric"] == "eval_modes"
    path = report_html.write_report(out)
    text = path.read_text(encoding="utf-8")
    for section_id in report_html.ABLATION_SECTIONS:
        assert text.count(f'<section id="{section_id}">') == 1, section_id
    _self_contained(text)
    assert len(_images(_section(text, "bars"))) == 1 and len(_images(_section(text, "curve"))) == 1
    assert len(_images(text)) == 2
    table = _section(text, "summary")
    # ranked on validation (★: a 21 ± 1, b 24.5 ± 0.5), reported on test (a 20 ± 1, b 23.5 ± 0.5), each labelled
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>")[1])
    cells = {re.search(r">(\w)</a>", row).group(1): re.findall(r'<td class="num">([^<]*)</td>', row) for row in rows}
    headers = re.findall(r"<th>(.*?)</th>", table)
    assert headers[:6] == ["rank", "variant", "runs", "<code>eval_modes</code> (validation) ★",
                           "<code>eval_modes</code> (test)", "<code>eval_hq_fraction</code> (test)"]
    assert cells["a"][:5] == ["2", "2", "21 ± 1", "20 ± 1", "0.25 ± 0"]
    assert cells["b"][:5] == ["1", "2", "24.5 ± 0.5", "23.5 ± 0.5", "0.25 ± 0"]
    assert table.index(">b</a>") < table.index(">a</a>")
    links = re.findall(r'href="([^"#]+)"', _section(text, "runs"))
    assert len(links) == 4
    for link in links:
        assert (out / urllib.parse.unquote(link)).is_file() and link.endswith("/report.html")
    assert "label smoothing has no meaning" in _section(text, "skipped")
    budgets = _section(text, "budgets")
    assert "images seen ≤ 1280 (50%)" in budgets and "10.5 ± 0.5" in budgets  # a at half the images: 10 and 11


def test_report_refuses_other_folders(tmp_path: Path) -> None:
    with pytest.raises(report_html.ReportError, match="neither a run directory"):
        report_html.write_report(tmp_path)
