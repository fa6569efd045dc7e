"""The reports in a real headless Chromium: no console errors, every image decoded from its data URI, screenshots.

Screenshots are kept under test-artifacts/ (gitignored). CI installs Debian's chromium in .ci/run;
without a browser these tests are skipped with the reason shown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ganstab.report import browser
from ganstab.report import html as report_html

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(browser.find_browser() is None,
                                reason="chromium is not installed (apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, train_tiny_toy_run) -> Path:
    """A tiny finished toy run with two findings and a recovery added to its files, and its report."""
    out = train_tiny_toy_run(tmp_path_factory.mktemp("browser") / "run")
    findings = [
        {"code": "stall.d_wins", "severity": "warning", "start_step": 10, "end_step": 30, "metric": "d_acc",
         "evidence": {"d_acc": 0.97}, "message": "D wins every batch.", "advice": "Lower optim.d_lr."},
        {"code": "divergence.explosion", "severity": "error", "start_step": 20, "end_step": 20, "metric": "loss_g",
         "evidence": {"ratio": 12.5}, "message": "loss_g exploded.", "advice": "Use penalty.gp=10."},
    ]
    (out / "findings.jsonl").write_text("".join(json.dumps(f) + "\n" for f in findings))
    (out / "recoveries.jsonl").write_text(json.dumps({"step": 20, "reason": "loss_g exploded", "lr_scale": 0.5,
                                                      "lr_g": 5e-4, "lr_d": 5e-4}) + "\n")
    report_html.write_report(out)
    return out


def _check(report: Path, screenshot: Path, sections: tuple[str, ...]) -> browser.PageCheck:
    check = browser.check_page(report, screenshot)
    assert check.console_errors == []
    expected_images = len(re.findall(r"<img\b", report.read_text(encoding="utf-8")))
    assert expected_images > 0 and len(check.images) == expected_images
    for image in check.images:
        assert image["src"].startswith("data:image/png;base64,"), image["alt"]
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image["alt"]
    assert check.section_ids == list(sections)
    assert check.screenshot == screenshot and screenshot.read_bytes().startswith(PNG_MAGIC)
    assert screenshot.stat().st_size > 20_000
    return check


def test_run_report_in_browser(run_dir: Path) -> None:
    check = _check(run_dir / "report.html", ARTIFACTS / "report_run.png", report_html.RUN_SECTIONS)
    assert check.title == "ganstab run: run"
    # losses, D outputs, r_t (every run logs d_real_sign), gradient norms, evaluation, samples
    assert len(check.images) == 4 + len(list((run_dir / "samples").glob("*.png"))) + int(
        any("eval_" in line for line in (run_dir / "metrics.jsonl").read_text().splitlines()))
    assert check.height > 1500


def test_ablation_report_in_browser(run_dir: Path, tmp_path: Path) -> None:
    from test_report import make_ablation

    out = tmp_path / "abl"
    make_ablation(run_dir, out)
    report = report_html.write_report(out)
    check = _check(report, ARTIFACTS / "report_ablation.png", report_html.ABLATION_SECTIONS)
    assert len(check.images) == 2
    # the linked run reports load too
    run_report = out / "a" / "seed0" / "report.html"
    run_check = browser.check_page(run_report)
    assert run_check.console_errors == [] and all(i["complete"] and i["width"] > 0 for i in run_check.images)


def test_checker_sees_errors_and_broken_images(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><title>broken</title></head><body>'
                    '<img alt="bad" src="data:image/png;base64,AAAA">'
                    '<script>throw new Error("boom")</script></body></html>')
    check = browser.check_page(page)
    assert len(check.images) == 1 and check.images[0]["width"] == 0
    assert any("boom" in e for e in check.console_errors)

