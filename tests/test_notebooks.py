"""Notebook hygiene: every chapter is executed top to bottom, clean, lean and glued."""

from __future__ import annotations

import ast
import json
import operator
import re

import pytest
from notebook_checks import (
    CPU_BUDGET_SECONDS,
    MACHINE_PATHS,
    MAX_NOTEBOOK_MB,
    NOTEBOOKS,
    REQUIRED_GLUE,
    RUN_KEYS,
    TARGETS,
    code_cells,
    drawing_cells,
    glued,
    load,
    math_broken_by_list_markers,
)

from gen_utils.bootstrap import bootstrap_source
from gen_utils.runtime import PROFILES

ids = [p.stem for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


def test_every_notebook_has_a_glue_table_entry():
    assert {p.stem for p in NOTEBOOKS} == set(REQUIRED_GLUE), (
        "tests/notebook_checks.py REQUIRED_GLUE must list exactly the notebooks in notebooks/"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_executed_in_order_without_errors(path):
    cells = code_cells(load(path))
    counts = [c.get("execution_count") for c in cells]
    assert None not in counts, f"{sum(n is None for n in counts)} code cells were never executed"
    assert counts == list(range(1, len(counts) + 1)), "execution counts are not 1..N: re-run top to bottom"
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"error outputs: {[e.get('ename') for e in errors]}"


def config_settings_without_reason(cell: str) -> list[str]:
    """Keywords of the ``gu.config(...)`` call in ``cell`` whose line has no ``#`` comment."""
    lines = cell.splitlines()
    missing = []
    for node in ast.walk(ast.parse(cell)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "gu.config":
            missing += [kw.arg for kw in node.keywords if "#" not in lines[kw.value.end_lineno - 1]]
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_skeleton(path):
    nb = load(path)
    first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.match(rf"# {path.stem[:2]} · ", "".join(first_md["source"])), "title must be '# NN · Topic'"
    cells = code_cells(nb)
    assert "".join(cells[0]["source"]) == bootstrap_source(), (
        "the first code cell must be the generated Colab bootstrap cell: run `make bootstrap`"
    )
    sources = ["".join(c["source"]) for c in cells]
    config = [s for s in sources if "gu.config(" in s]
    assert config, "no configuration cell (cfg = gu.config(...))"
    assert not any("gu.pick(" in s for s in sources), "settings go in gu.config, one per line"
    assert not any(re.search(r"\bcfg\[", s) for s in sources), "read settings as cfg.name, not cfg['name']"
    uncommented = [kw for cell in config for kw in config_settings_without_reason(cell)]
    assert not uncommented, f"configuration settings without a comment saying why: {uncommented}"
    assert any("# NBVAL_CHECK_OUTPUT" in s for s in sources), "no numeric check cell"
    assert any("gu.finish(" in s for s in sources), "results are not recorded with gu.finish"
    text = json.dumps(nb)
    assert "{cite}" in text, "no references ({cite})"
    assert ":class: dropdown" in text or "{dropdown}" in text, "no exercise solutions in a dropdown"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_check_cells_draw_nothing(path):
    # catches: a check cell that also draws; make test runs with MPLBACKEND=Agg, so a figure the committed
    # output holds is missing there and nbval fails the cell ("Missing output fields ... text/plain")
    drawn = [
        i for i, c in enumerate(code_cells(load(path)), 1)
        if "# NBVAL_CHECK_OUTPUT" in "".join(c["source"])
        and any({"image/png", "text/plain"} & set(o.get("data", {}))  # glue records alone are not compared
                for o in c.get("outputs", []))
    ]
    assert not drawn, f"code cells {drawn} check output and also display something: split the figure off"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_banner(path):
    cells = code_cells(load(path))
    setup = next(c for c in cells if "gu.setup(" in "".join(c["source"]))
    text = "".join("".join(o.get("text", "")) for o in setup["outputs"] if o["output_type"] == "stream")
    assert re.search(r"gen_utils \S+ \| profile (smoke|cpu|gpu) \| device \S+", text), text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_glue_keys_and_profile(path):
    values = glued(load(path))
    missing = [k for k in (*REQUIRED_GLUE[path.stem], *RUN_KEYS) if k not in values]
    assert not missing, f"glue keys missing: {missing}"
    assert values["run_profile"] in PROFILES
    assert values["run_profile"] != "smoke", "committed outputs must come from a cpu or gpu run"
    assert isinstance(values["run_seconds"], (int, float)) and values["run_seconds"] > 0


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem in TARGETS], ids=lambda p: p.stem)
def test_targets(path):
    values = glued(load(path))
    ops = {"<=": operator.le, ">=": operator.ge}
    for key, per_profile in TARGETS[path.stem].items():
        profile = values["run_profile"]
        if profile not in per_profile:
            continue
        op, bound = per_profile[profile]
        assert ops[op](values[key], bound), f"{key} = {values[key]} misses its {profile} target {op} {bound}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_cpu_run_fits_the_budget(path):
    values = glued(load(path))
    if values.get("run_profile") != "cpu":
        pytest.skip(f"committed from a {values.get('run_profile')} run")
    assert values["run_seconds"] <= CPU_BUDGET_SECONDS, (
        f"the cpu run took {values['run_seconds']} s: the cpu profile must finish in "
        f"{CPU_BUDGET_SECONDS:.0f} s on 2 cores"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_lean_and_anonymous(path):
    size_mb = path.stat().st_size / 1e6
    assert size_mb < MAX_NOTEBOOK_MB, f"{size_mb:.1f} MB: keep figures lean"
    text = path.read_text(encoding="utf-8")
    found = [p for p in MACHINE_PATHS if p in text]
    assert not found, f"machine paths in the notebook: {found}"
    nb = load(path)
    for cell in code_cells(nb):
        for out in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in out.get("data", {}), (
                "a live widget output was committed: widgets must fall back to a static figure "
                "when GEN_UTILS_HEADLESS is set"
            )


# Names that must differ per chapter are listed here with the reason (none today).
SHARED_NAMES_ALLOWED: dict[str, str] = {}


def top_level_definitions(nb: dict) -> set[str]:
    """Functions and classes a notebook defines at the top level of its code cells."""
    names = set()
    for cell in code_cells(nb):
        src = "".join(cell["source"])
        try:
            tree = ast.parse(src)
        except SyntaxError:  # a cell with IPython magics: nothing to define there
            continue
        names |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                              ast.ClassDef))}
    return names


def test_no_function_or_class_is_defined_in_two_notebooks():
    owners: dict[str, list[str]] = {}
    for path in NOTEBOOKS:
        for name in top_level_definitions(load(path)):
            owners.setdefault(name, []).append(path.stem)
    twice = {n: o for n, o in owners.items() if len(o) > 1 and n not in SHARED_NAMES_ALLOWED}
    assert not twice, (
        f"defined in more than one chapter: {twice}. Export it from the chapter that teaches it "
        "(a cell starting with `# export`) and import it: from gen_utils.chapters.chNN_topic import …"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_every_cell_that_draws_has_its_figure(path):
    # catches figures lost by a non-inline matplotlib backend during execution (MPLBACKEND=Agg)
    nb = load(path)
    missing = [i for i in drawing_cells(nb)
               if not any("image/png" in o.get("data", {}) for o in nb["cells"][i].get("outputs", []))]
    assert not missing, f"cells {missing} draw a figure but have no image/png output: re-run `make execute`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_inline_math_is_not_cut_by_a_list_marker(path):
    broken = math_broken_by_list_markers(load(path))
    assert not broken, f"inline math wraps onto a list-marker line (renders as raw TeX): {broken}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_each_glue_key_is_recorded_once(path):
    # catches the same name glued twice (gu.glue and gu.finish): myst-nb warns, and the -W build fails
    names = [o["metadata"]["scrapbook"]["name"] for c in code_cells(load(path)) for o in c.get("outputs", [])
             if "scrapbook" in o.get("metadata", {})]
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"glued more than once: {twice}"
