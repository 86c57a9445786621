"""The package's layering: the lowest modules import nothing from the package's face.

``runtime`` and ``data`` sit at the bottom (every chapter and module uses them), so they may import
only leaf modules; nothing in gen_utils imports the face (``from . import x`` / ``import gen_utils``),
and no library module imports a generated chapter module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gen_utils"
LOWEST = {"runtime": {"version", "precision"}, "data": set(), "version": set(), "precision": set()}


def package_imports(path: Path) -> set[str]:
    """The gen_utils modules ``path`` imports anywhere in it (``"."`` for the package face)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level and node.module:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:  # from . import x: a submodule or the face
            found |= {a.name if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                      else "." for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gen_utils"):
            found.add(node.module.removeprefix("gen_utils").lstrip(".") or ".")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("gen_utils").lstrip(".") or "." for a in node.names
                      if a.name.split(".")[0] == "gen_utils"}
    return found


@pytest.mark.parametrize("module", sorted(LOWEST))
def test_the_lowest_modules_import_only_leaves(module):
    assert package_imports(PACKAGE / f"{module}.py") <= LOWEST[module]


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.glob("*.py") if p.name != "__init__.py"),
                         ids=lambda p: p.stem)
def test_library_modules_import_neither_the_face_nor_chapters(path):
    imported = package_imports(path)
    assert "." not in imported, f"{path.name} imports the package face"
    assert not any(m.startswith("chapters") for m in imported), f"{path.name} imports chapter code"
