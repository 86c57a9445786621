"""The site builds with zero warnings and shows what a reader needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from notebook_checks import NOTEBOOKS, ROOT, glued, load

from gen_utils.bootstrap import repository_url


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [str(jb), "build", str(ROOT), "-W", "-n", "--keep-going", "--path-output", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return out / "_build" / "html"


def test_book_build_pages(html):
    for page in ["index.html", "book/intro.html", "book/setup.html", "book/notation.html",
                 "book/results.html", *[f"notebooks/{p.stem}.html" for p in NOTEBOOKS]]:
        assert (html / page).exists(), f"{page} was not built"


def test_book_build_chapter_pages_show_banner_and_colab(html):
    repo = repository_url().removeprefix("https://github.com/")
    for nb in NOTEBOOKS:
        page = (html / "notebooks" / f"{nb.stem}.html").read_text(encoding="utf-8")
        assert "gen_utils" in page and "| profile " in page, f"{nb.stem}: banner not rendered"
        colab = f"colab.research.google.com/github/{repo}/blob/main/notebooks/{nb.name}"
        assert colab in page, f"{nb.stem}: no Colab launch button ({colab})"


def test_book_build_results_page_shows_glued_numbers(html):
    page = (html / "book" / "results.html").read_text(encoding="utf-8")
    values = glued(load(ROOT / "notebooks" / "01_generative_modeling.ipynb"))
    for key in ("ngram_best_n", "run_profile"):
        assert str(values[key]) in page, f"results page does not show {key} = {values[key]}"
