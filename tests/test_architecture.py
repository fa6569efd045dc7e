"""The house (GUIDE.md section 2): data flows one way between rooms, read from the source with ast.

No import side effects: the graph is built from the files' text. A room may import only rooms above
it in `ROOMS` (or itself); every import of a ganstab module sits at the top level of its file; the
run-folder file names and the atomic write live in `ganstab/rundir.py` alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ganstab

ROOT = Path(ganstab.__file__).parent

# the rooms in the order data flows (a room imports only rooms with a smaller index, or itself)
ROOMS: tuple[tuple[str, ...], ...] = (
    ("ganstab", "ganstab.errors", "ganstab.presets"),
    ("ganstab.config",),
    ("ganstab.rundir",),
    ("ganstab.sampling", "ganstab.data"),
    ("ganstab.models",),
    ("ganstab.losses", "ganstab.penalties", "ganstab.augment"),
    ("ganstab.export",),
    ("ganstab.training",),
    ("ganstab.metrics",),
    ("ganstab.diagnose",),
    ("ganstab.summary",),
    ("ganstab.report",),
    ("ganstab.pipeline",),
    ("ganstab.train", "ganstab.ablate", "ganstab.tune"),
    ("ganstab.cli", "ganstab.__main__"),
)
RUN_FILE_NAMES = ("config.yaml", "metrics.jsonl", "findings.jsonl", "recoveries.jsonl", "checkpoints", "samples",
                  "plots", "generator.safetensors", "generator.json", "report.html", "best", "eval.json",
                  "train.log", "ablation.json", "summary.json", "summary.csv")


def module_name(path: Path) -> str:
    """'ganstab/training/loop.py' -> 'ganstab.training.loop' (a package's __init__ -> the package)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def resolve(name: str) -> str:
    """The longest known module that `name` (a module or a name inside one) belongs to."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported ganstab module, line, inside a function) for every import in a file."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((resolve(a.name), child.lineno, in_function) for a in child.names
                             if a.name.split(".")[0] == "ganstab")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                if source.split(".")[0] == "ganstab":
                    for alias in child.names:
                        full = f"{source}.{alias.name}"
                        found.append((resolve(full) if full in MODULES else resolve(source), child.lineno,
                                      in_function))
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def room_of(module: str) -> int:
    """Index of the room a module belongs to (the longest matching room prefix)."""
    best, length = -1, -1
    for index, names in enumerate(ROOMS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > length:
                best, length = index, len(name)
    assert best >= 0, f"{module} belongs to no room; add it to ROOMS"
    return best


def graph() -> dict[str, set[str]]:
    """Module -> the ganstab modules it imports (self-imports of a package's own modules included)."""
    return {name: {target for target, _, _ in imports_of(path) if target != name} for name, path in MODULES.items()}


def test_no_ganstab_import_inside_a_function() -> None:
    hidden = [f"{MODULES[m].relative_to(ROOT.parent)}:{line} imports {target}"
              for m in MODULES for target, line, inside in imports_of(MODULES[m]) if inside]
    assert hidden == []


def test_import_graph_has_no_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                walk(target, stack + [target])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            walk(name, [name])
    assert cycles == []


def test_every_import_flows_down_the_rooms() -> None:
    upward = []
    for name, targets in graph().items():
        for target in targets:
            if room_of(target) > room_of(name):
                upward.append(f"{name} (room {room_of(name)}) imports {target} (room {room_of(target)})")
    assert upward == []


def test_graph_sees_a_cycle_and_a_hidden_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above can fail: a fake package with a cycle and a function-level import is caught."""
    fake = tmp_path / "ganstab"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "a.py").write_text("from ganstab import b\n")
    (fake / "b.py").write_text("def f():\n    from ganstab import a\n    return a\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    modules = {module_name(p): p for p in sorted(fake.rglob("*.py"))}
    monkeypatch.setattr(__import__(__name__), "MODULES", modules)
    assert ("ganstab.b", 1, False) in imports_of(fake / "a.py")
    assert ("ganstab.a", 2, True) in imports_of(fake / "b.py")
    assert graph()["ganstab.a"] == {"ganstab.b"} and graph()["ganstab.b"] == {"ganstab.a"}


def _path_joins(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every `path / "literal"` and every string constant that is a run file name with a dot."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
            if node.right.value in RUN_FILE_NAMES:
                found.append((node.lineno, node.right.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value:
            if node.value in RUN_FILE_NAMES:
                found.append((node.lineno, node.value))
    return found


def test_run_folder_file_names_are_defined_once() -> None:
    elsewhere = [f"{path.relative_to(ROOT.parent)}:{line} {name!r}" for path in MODULES.values()
                 if path.name != "rundir.py" for line, name in _path_joins(ast.parse(path.read_text()))]
    assert elsewhere == []
    rundir = ast.parse((ROOT / "rundir.py").read_text())
    defined = [n.value.value for n in rundir.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)]
    assert sorted(set(RUN_FILE_NAMES)) == sorted(set(defined) & set(RUN_FILE_NAMES))
    assert len(defined) == len(set(defined))


def test_one_atomic_write() -> None:
    users = [str(path.relative_to(ROOT.parent)) for path in MODULES.values()
             if any(word in path.read_text() for word in ("os.replace(", "os.fsync(", ".rename("))]
    assert users == ["ganstab/rundir.py"]


def test_one_severity_order_and_one_main_metric_table() -> None:
    severity_tuples, main_tables = [], []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple) and {getattr(e, "value", None) for e in node.elts} == {"info", "warning",
                                                                                                   "error"}:
                severity_tuples.append(str(path.relative_to(ROOT.parent)))
            if isinstance(node, ast.Tuple) and [getattr(e, "value", None) for e in node.elts][:2] == ["fd", False]:
                main_tables.append(str(path.relative_to(ROOT.parent)))
    assert severity_tuples == ["ganstab/diagnose/findings.py"]
    assert main_tables == []  # the main metric and its direction come from ganstab/metrics/registry.py


def test_no_private_name_crosses_a_module() -> None:
    crossing = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ganstab"):
                crossing += [f"{name} imports {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert crossing == []


def test_no_function_over_sixty_lines() -> None:
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}")
    assert long == []


def test_training_loop_stays_small() -> None:
    assert len((ROOT / "training" / "loop.py").read_text().splitlines()) <= 400
