"""Every public function and method of the package has type hints and a docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import ganstab

ROOT = Path(ganstab.__file__).parent


def _public_callables(tree: ast.Module):
    """Module-level public functions and public methods of public classes (not nested helpers)."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node, node.name
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield node, node.name
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield item, f"{node.name}.{item.name}"


def test_public_api_has_hints_and_docstrings() -> None:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, name in _public_callables(tree):
            where = f"{path.relative_to(ROOT.parent)}:{node.lineno} {name}"
            if not ast.get_docstring(node):
                problems.append(f"{where}: no docstring")
            if isinstance(node, ast.ClassDef):
                continue
            args = [a for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                    if a.arg not in ("self", "cls")]
            missing = [a.arg for a in args if a.annotation is None]
            if missing:
                problems.append(f"{where}: no type hint for {', '.join(missing)}")
            if node.returns is None:
                problems.append(f"{where}: no return type")
    assert problems == []
