"""The package's layout rules: what the job's tasks may import, and module hygiene."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "patronage"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_stages_never_import_dev_tooling():
    for path in sorted((SRC / "stages").glob("*.py")):
        dev = sorted(n for n in _imports(path) if n.startswith("patronage.devtools"))
        assert not dev, f"{path.name} imports {dev}"


def test_every_module_says_what_it_owns():
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__init__.py" and not path.read_text(encoding="utf-8").strip():
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc, f"{path.relative_to(SRC)} has no module docstring"


def test_the_local_runner_knows_nothing_of_the_product():
    for path in sorted((SRC / "localjobs").glob("*.py")):
        foreign = sorted(
            n
            for n in _imports(path)
            if n.startswith("patronage") and not n.startswith("patronage.localjobs")
        )
        assert not foreign, f"localjobs/{path.name} imports {foreign}"


def test_no_module_is_over_400_lines():
    for path in sorted(SRC.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 400, f"{path.relative_to(SRC)} has {lines} lines"
