"""Chapter code as importable modules, generated from the notebooks (``make export``).

The page is the single source, as with d2l's ``#@save``, but one module per chapter, as in
LLMs-from-scratch's ``pkg/``: the code cells of ``notebooks/NN_topic.ipynb`` whose first line is
``# export`` are written to ``gen_utils/chapters/chNN_topic.py``. From each such cell the module
takes its imports, functions, classes and UPPER_CASE constants, in order, with the comment lines
right above each; everything else in the cell (a demo call, a print, a figure) stays on the page
only. Imports the exported code does not use are left out, and all imports go to the top.

Later chapters then import earlier ones: ``from gen_utils.chapters.ch04_gan import Generator``.
``python -m gen_utils.export --check`` (and a test) fails when a module is out of date.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MARKER = "# export"
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = Path(__file__).resolve().parent / "chapters"
_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]+$")  # two characters at least: G, D are models


@dataclass
class Piece:
    """One exported statement: its source (with the comments above it) and its section."""

    source: str
    section: str
    is_import: bool


def module_name(notebook: Path) -> str:
    """``notebooks/04_gan.ipynb`` → ``ch04_gan``."""
    if not re.fullmatch(r"\d\d_[a-z0-9_]+", notebook.stem):
        raise ValueError(f"{notebook.name}: chapter notebooks are named NN_topic.ipynb")
    return f"ch{notebook.stem}"


def is_exported(source: str) -> bool:
    """True when a code cell's first line is exactly the export marker."""
    return source.split("\n", 1)[0].strip() == MARKER


def _cells(nb: dict) -> list[tuple[str, str]]:
    return [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]


def _heading(markdown: str) -> str | None:
    """The last markdown heading in a cell (``## 4.3 A DCGAN`` → ``4.3 A DCGAN``)."""
    found = None
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", ":::")):
            in_fence = not in_fence
        m = re.match(r"^#{1,6}\s+(.*\S)", line)
        if m and not in_fence:
            found = m.group(1)
    return found


def _is_kept(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t for t in targets if isinstance(t, ast.Name)]
        tuples = [e for t in targets if isinstance(t, ast.Tuple) for e in t.elts]
        all_names = names + [e for e in tuples if isinstance(e, ast.Name)]
        return bool(all_names) and len(all_names) == len(names) + len(tuples) and all(
            _CONSTANT.match(n.id) for n in all_names)
    return False


def _pieces(source: str, section: str, where: str) -> list[Piece]:
    """The kept statements of one exported cell, each with the comment lines right above it."""
    body = source.split("\n", 1)[1] if "\n" in source else ""
    try:
        tree = ast.parse(body)
    except SyntaxError as e:
        raise ValueError(f"{where}: the exported cell does not parse: {e}") from e
    lines = body.splitlines()
    pieces = []
    for node in tree.body:
        if not _is_kept(node):
            continue
        is_import = isinstance(node, (ast.Import, ast.ImportFrom))
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while not is_import and first > 0 and lines[first - 1].lstrip().startswith("#"):
            first -= 1  # the comment lines right above a definition belong to it
        text = "\n".join(lines[first : node.end_lineno]).rstrip()
        pieces.append(Piece(text, section, is_import))
    return pieces


def _bound_names(stmt: ast.stmt) -> set[str]:
    """Names an import statement binds (``import torch.nn as nn`` → nn, ``import torch.nn`` → torch)."""
    return {(a.asname or a.name.split(".")[0]) for a in stmt.names}


def _used_names(code: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}


def _needed_imports(imports: list[str], code: str) -> list[str]:
    """The import statements (deduplicated, in order) that bind a name ``code`` uses.

    A ``from x import a, b`` whose names are not all used is cut down to those that are.
    """
    used, kept = _used_names(code), []
    for text in imports:
        (stmt,) = ast.parse(text).body
        needed = [a for a in stmt.names if (a.asname or a.name.split(".")[0]) in used]
        if not needed:
            continue
        if isinstance(stmt, ast.ImportFrom) and len(needed) < len(stmt.names):
            text = _from_import(stmt, needed)
        if text not in kept:
            kept.append(text)
    return kept


def _from_import(stmt: ast.ImportFrom, names: list[ast.alias]) -> str:
    """``from module import names`` in isort's style, wrapped in parentheses past 110 characters."""
    def order(alias: ast.alias) -> tuple[int, str]:  # isort's order-by-type: CONSTANTS, Classes, others
        n = alias.name
        return (0 if n.isupper() else 1 if n[0].isupper() else 2), n

    parts = [f"{a.name} as {a.asname}" if a.asname else a.name for a in sorted(names, key=order)]
    head = f"from {'.' * stmt.level}{stmt.module or ''} import "
    line = head + ", ".join(parts)
    if len(line) <= 110:
        return line
    return head + "(\n" + "".join(f"    {p},\n" for p in parts) + ")"


def _import_sort_key(text: str) -> tuple[int, int, str]:
    """isort's order (ruff's ``I`` rules): future, stdlib, third party, gen_utils; ``import x``
    before ``from x import y`` within a section; by module name, ignoring case."""
    (stmt,) = ast.parse(text).body
    module = stmt.module or "" if isinstance(stmt, ast.ImportFrom) else stmt.names[0].name
    top = module.split(".")[0]
    if isinstance(stmt, ast.ImportFrom) and stmt.level:
        section = 4
    elif top == "__future__":
        section = 0
    elif top in sys.stdlib_module_names:
        section = 1
    elif top == "gen_utils":
        section = 3
    else:
        section = 2
    return section, int(isinstance(stmt, ast.ImportFrom)), module.lower()


def _format_imports(imports: list[str]) -> list[str]:
    """Sorted import lines, a blank line between sections."""
    lines, last = [], None
    for text in sorted(imports, key=_import_sort_key):
        section = _import_sort_key(text)[0]
        if last is not None and section != last:
            lines.append("")
        lines.append(text)
        last = section
    return lines


def _title(nb: dict, notebook: Path) -> str:
    for kind, src in _cells(nb):
        if kind == "markdown":
            m = re.search(r"^#\s+(.*\S)", src, re.MULTILINE)
            if m:
                return m.group(1)
    return notebook.stem


def generate(notebook: Path) -> str | None:
    """The source of ``notebook``'s chapter module, or None when no cell is marked for export."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    section, pieces = _title(nb, notebook), []
    for i, (kind, src) in enumerate(_cells(nb)):
        if kind == "markdown":
            section = _heading(src) or section
        elif kind == "code" and is_exported(src):
            pieces += _pieces(src, section, f"{notebook.name}, cell {i}")
    if not pieces:
        return None
    body_parts, last_section = [], None
    for p in pieces:
        if p.is_import:
            continue
        if p.section != last_section:
            body_parts.append(f"# --- {p.section} " + "-" * max(3, 96 - len(p.section)))
            last_section = p.section
        body_parts.append(p.source)
    body = "\n\n\n".join(body_parts)
    imports = _format_imports(_needed_imports([p.source for p in pieces if p.is_import], body))
    rel = notebook.resolve().relative_to(ROOT).as_posix() if notebook.resolve().is_relative_to(ROOT) \
        else notebook.name
    first = f'"""{_title(nb, notebook)}: the code of {rel}.'
    if len(first) > 110:                                   # the lint's line length: break before the path
        first = f'"""{_title(nb, notebook)}: the code of\n{rel}.'
    header = (
        f"{first}\n\n"
        f"GENERATED by `make export` from the cells marked `{MARKER}`: do not edit this file. Edit\n"
        "the notebook and run `make export`; tests/test_export.py fails when this file is out of date.\n"
        '"""'
    )
    # one blank line after the imports: the body starts with a section comment (ruff's isort)
    return "\n".join([header, "", *imports, "", body, ""]) if imports else "\n".join([header, "", body, ""])


def export_all(notebooks: list[Path] | None = None, out_dir: Path = CHAPTERS) -> dict[Path, str]:
    """``{module path: source}`` for every chapter notebook with exported cells."""
    notebooks = notebooks if notebooks is not None else sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    modules = {}
    for nb in notebooks:
        code = generate(nb)
        if code is not None:
            modules[out_dir / f"{module_name(nb)}.py"] = code
    return modules


def stale(out_dir: Path = CHAPTERS, notebooks: list[Path] | None = None) -> list[str]:
    """What ``make export`` would change: missing, out-of-date and orphaned modules."""
    wanted = export_all(notebooks, out_dir)
    problems = [f"{p.name} is out of date with its notebook" if p.exists() else f"{p.name} is missing"
                for p, code in wanted.items() if not p.exists() or p.read_text(encoding="utf-8") != code]
    problems += [f"{p.name} has no notebook with exported cells (delete it)"
                 for p in sorted(out_dir.glob("ch[0-9][0-9]_*.py")) if p not in wanted]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report; exit 1 if anything is stale")
    args = ap.parse_args(argv)
    if args.check:
        problems = stale()
        for p in problems:
            print(p)
        if problems:
            print("run `make export` and commit the result")
        return 1 if problems else 0
    wanted = export_all()
    CHAPTERS.mkdir(exist_ok=True)
    for path, code in wanted.items():
        changed = not path.exists() or path.read_text(encoding="utf-8") != code
        path.write_text(code, encoding="utf-8")
        print(f"{path.relative_to(ROOT)}: {'written' if changed else 'up to date'}")
    for path in sorted(CHAPTERS.glob("ch[0-9][0-9]_*.py")):
        if path not in wanted:
            path.unlink()
            print(f"{path.relative_to(ROOT)}: removed (its notebook exports nothing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
