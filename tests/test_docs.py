"""The documentation site: a strict MkDocs build, the generated references, descriptions read from the schema."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from pydantic import BaseModel

from ganstab.cli.main import build_parser
from ganstab.config import KEY_HELP, Config, DoctorConfig, key_help, known_keys

ROOT = Path(__file__).resolve().parents[1]
HAS_MKDOCS = all(importlib.util.find_spec(m) is not None for m in ("mkdocs", "material", "mkdocstrings_handlers"))
needs_mkdocs = pytest.mark.skipif(not HAS_MKDOCS, reason="mkdocs, mkdocs-material or mkdocstrings[python] is not "
                                                          "installed (pip install -e '.[docs]')")


def _hooks() -> types.ModuleType:
    """docs/hooks.py loaded as a module."""
    spec = importlib.util.spec_from_file_location("ganstab_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _field(key: str):
    """The pydantic field of a dotted config key."""
    model: type[BaseModel] = Config
    parts = key.split(".")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation
    return model.model_fields[parts[-1]]


def test_key_help_is_the_schema_descriptions() -> None:
    keys = known_keys()
    assert len(keys) == 157  # eval.val_n (evaluation splits), eval.evaluator (shipped networks), eval.features and
    # eval.inception_weights (Inception metrics)
    assert list(KEY_HELP) == keys
    for key in keys:
        description = _field(key).description
        assert description and description.strip() == description and "\n" not in description, key
        assert KEY_HELP[key] == description
    # a parenthesised docstring split over lines is one description, and the doctor's thresholds are keys too
    assert KEY_HELP["eval.every"] == ("G steps between evaluations during training (0 = only the final one); auto: "
                                      "scheduled by cost, on log steps, so that evaluations take at most eval.budget "
                                      "of the training time")
    assert DoctorConfig.model_fields["explosion_factor"].description == (
        "|value - running median| must exceed this many times the series' scale to count as exploding")
    assert key_help("penalty.lecam_decay") == (
        "decay of LeCam's EMAs of D's mean real and fake logits (0.99 as in the paper)", "penalty.lecam > 0")


def test_config_reference_lists_every_key() -> None:
    text = _hooks().config_reference()
    keys = known_keys()
    assert text.count("\n### `") == len(keys) and text.startswith("## top level")
    assert "### `doctor.explosion_factor`\n\ntype `float` · default `10.0` · applies to: all runs\n\n" \
           "|value - running median| must exceed" in text
    assert "### `out`\n\ntype `Optional[str]` · default `null` · applies to: all runs\n\n" \
           "run folder; default runs/&lt;name&gt; derived from the config\n" in text


def test_cli_reference_has_every_command() -> None:
    hooks = _hooks()
    text = hooks.cli_reference()
    names = [name for name, _ in hooks._subcommands(build_parser())]
    assert len(names) >= 10 and "train" in names and "keys" in names
    for name in names:
        assert f"`ganstab {name}`" in text
    assert text.count("```text") == text.count("\n## ") + text.count("\n### ") + text.count("\n#### ") + 1


def test_missing_docstring_is_a_warning(monkeypatch, caplog) -> None:
    hooks = _hooks()
    module = types.ModuleType("ganstab_docs_undocumented", "A module.")
    exec("def documented():\n    'Yes.'\n\ndef bare():\n    pass\n", module.__dict__)
    module.__all__ = ["documented", "bare"]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(hooks, "API_MODULES", (module.__name__,))
    with caplog.at_level(logging.WARNING, logger="mkdocs.plugins.ganstab_docs"):
        hooks._check_docstrings()
    assert [r.getMessage() for r in caplog.records] == ["ganstab_docs_undocumented.bare has no docstring"]


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of the project at root into site."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=root,
                          capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"})


@needs_mkdocs
def test_site_builds_strict_and_a_broken_link_fails(tmp_path) -> None:
    done = _build(ROOT, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    trick = (site / "tricks" / "wgan-gp" / "index.html").read_text(encoding="utf-8")
    assert "Gulrajani et al. 2017" in trick and "Where common advice differs" in trick
    assert "penalty.zcr_sigma" in (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    assert "ganstab.penalties.gradient_penalty" in (site / "reference" / "api" / "index.html").read_text("utf-8")
    # the same project with one broken link does not build
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    with open(copy / "docs" / "index.md", "a", encoding="utf-8") as f:
        f.write("\n[nowhere](no-such-page.md)\n")
    broken = _build(copy, tmp_path / "site2")
    assert broken.returncode == 1
    assert "no-such-page.md" in broken.stdout + broken.stderr
