"""gen_utils.bootstrap: the Colab cell generated from _config.yml and its in-place rewrite."""

from __future__ import annotations

import importlib.util
import json
import runpy
import subprocess
import sys
import types

import pytest

from gen_utils import bootstrap

URL = "https://github.com/example/book-repo"


def write_config(tmp_path, text):
    path = tmp_path / "_config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def notebook(cells):
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4,
            "nbformat_minor": 5}


def code(src, cell_id="code"):
    return {"cell_type": "code", "execution_count": None, "id": cell_id, "metadata": {},
            "outputs": [], "source": src.splitlines(keepends=True)}


def markdown(src, cell_id="md"):
    return {"cell_type": "markdown", "id": cell_id, "metadata": {},
            "source": src.splitlines(keepends=True)}


# --- repository_url -------------------------------------------------------------------------

def test_repository_url_of_the_book_config():
    yaml = pytest.importorskip("yaml")  # installed with jupyter-book
    expected = yaml.safe_load(bootstrap.CONFIG.read_text(encoding="utf-8"))["repository"]["url"]
    assert bootstrap.repository_url() == expected
    assert expected.startswith("https://github.com/")


@pytest.mark.parametrize(
    "text",
    [
        f"title: x\nrepository:\n  url: {URL}\n  branch: main\n",
        f"repository:\n  branch: main\n  path_to_book: .\n  url: {URL}\nhtml:\n  x: 1\n",
        f'repository:\n  url: "{URL}"\n',
        f"repository:\n  url: '{URL}'  # the one place\n",
        f"repository:\n\turl: {URL}\n",
    ],
    ids=["first", "last", "double-quoted", "single-quoted+comment", "tab"],
)
def test_repository_url_variants(tmp_path, text):
    assert bootstrap.repository_url(write_config(tmp_path, text)) == URL


@pytest.mark.parametrize(
    "text",
    ["title: x\n", f"repository:\n  branch: main\nhtml:\n  url: {URL}\n",
     f"launch:\n  url: {URL}\n"],
    ids=["no-section", "url-in-next-section", "other-section"],
)
def test_repository_url_missing(tmp_path, text):
    with pytest.raises(ValueError, match="no repository.url"):
        bootstrap.repository_url(write_config(tmp_path, text))


# --- bootstrap_source -----------------------------------------------------------------------

def test_bootstrap_source_mentions_url_and_colab():
    src = bootstrap.bootstrap_source()
    assert src.startswith(bootstrap.MARKER)
    assert bootstrap.repository_url() in src
    assert f"git+{bootstrap.repository_url()}" in src
    assert '"google.colab"' in src
    compile(src, "<bootstrap cell>", "exec")


def test_bootstrap_source_follows_the_config(tmp_path):
    src = bootstrap.bootstrap_source(write_config(tmp_path, f"repository:\n  url: {URL}\n"))
    assert f"git+{URL}" in src and bootstrap.repository_url() not in src


def _run_cell(monkeypatch, src, *, colab, installed):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        real_find_spec(name, *a) if installed or name != "gen_utils" else None))
    exec(compile(src, "<bootstrap cell>", "exec"), {})
    return calls


@pytest.mark.parametrize(("colab", "installed"), [(False, False), (True, True), (False, True)])
def test_bootstrap_cell_does_nothing_off_colab_or_when_installed(monkeypatch, colab, installed):
    assert _run_cell(monkeypatch, bootstrap.bootstrap_source(), colab=colab,
                     installed=installed) == []


def test_bootstrap_cell_pip_installs_on_a_fresh_colab(monkeypatch, tmp_path):
    src = bootstrap.bootstrap_source(write_config(tmp_path, f"repository:\n  url: {URL}\n"))
    calls = _run_cell(monkeypatch, src, colab=True, installed=False)
    assert calls == [(([sys.executable, "-m", "pip", "install", f"git+{URL}"],),
                      {"check": True})]


# --- rewrite --------------------------------------------------------------------------------

@pytest.fixture
def nb_path(tmp_path):
    path = tmp_path / "01_test.ipynb"
    nb = notebook([
        markdown("# Chapter 1\n\nText."),
        code(bootstrap.MARKER + " (old)\nprint('outdated')", "boot"),
        code("import gen_utils as gu\ngu.setup(seed=0)", "setup"),
    ])
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def test_bootstrap_cell_index(nb_path):
    nb = json.loads(nb_path.read_text())
    assert bootstrap.bootstrap_cell_index(nb) == 1
    nb["cells"][0]["source"] = [bootstrap.MARKER + " in markdown is not a cell"]
    assert bootstrap.bootstrap_cell_index(nb) == 1
    del nb["cells"][1]
    assert bootstrap.bootstrap_cell_index(nb) is None


def test_rewrite_updates_the_cell_and_is_idempotent(nb_path):
    before = json.loads(nb_path.read_text())
    assert bootstrap.rewrite(nb_path) is True
    after = json.loads(nb_path.read_text())
    assert "".join(after["cells"][1]["source"]) == bootstrap.bootstrap_source()
    assert after["cells"][0] == before["cells"][0] and after["cells"][2] == before["cells"][2]
    assert {k: v for k, v in after["cells"][1].items() if k != "source"} == {
        k: v for k, v in before["cells"][1].items() if k != "source"}
    assert after["metadata"] == before["metadata"]
    text = nb_path.read_text()
    assert bootstrap.rewrite(nb_path) is False
    assert nb_path.read_text() == text  # untouched the second time


def test_rewrite_with_another_config(nb_path, tmp_path):
    config = write_config(tmp_path, f"repository:\n  url: {URL}\n")
    bootstrap.rewrite(nb_path)
    assert bootstrap.rewrite(nb_path, config) is True
    assert f"git+{URL}" in nb_path.read_text()
    assert bootstrap.rewrite(nb_path, config) is False


def test_rewrite_without_a_bootstrap_cell(tmp_path):
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(notebook([code("print(1)")])))
    with pytest.raises(ValueError, match="no bootstrap cell"):
        bootstrap.rewrite(path)


def test_command_line(nb_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gen_utils.bootstrap", str(nb_path)])
    monkeypatch.delitem(sys.modules, "gen_utils.bootstrap")  # run it as a fresh __main__
    runpy.run_module("gen_utils.bootstrap", run_name="__main__", alter_sys=False)
    runpy.run_module("gen_utils.bootstrap", run_name="__main__", alter_sys=False)
    assert capsys.readouterr().out.splitlines() == [f"{nb_path}: updated",
                                                   f"{nb_path}: up to date"]
