"""The site builds with zero warnings and shows what a reader needs.

The book_build_browser tests open every page in headless Chromium, offline (tests/browser.py), and
check what a reader sees: typeset math, loaded images, folded solutions, no request off the site.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from browser import find_chromium, inspect_all
from notebook_checks import NOTEBOOKS, ROOT, glued, load

from gen_utils.bootstrap import repository_url

BOOK_PAGES = ["book/intro.html", "book/setup.html", "book/notation.html", "book/results.html"]
CHAPTER_PAGES = [f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS]
MATH_PAGES = ["book/notation.html", *CHAPTER_PAGES]  # pages that must have typeset math
# What a reader must never see as text: TeX that MathJax did not typeset (delimiters \( \[ $$, or
# $ before a TeX command or a letter: inline math that Markdown broke apart) and raw Markdown tables.
RAW_SOURCE = re.compile(r"\\\(|\\\[|\$\$|\$(?=[\\A-Za-z{])|\|\s*:?-{3,}:?\s*\|")


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """The site, built once per module with -W; BOOK_HTML=_build/html reuses a site built by `make book`."""
    if os.environ.get("BOOK_HTML"):
        return Path(os.environ["BOOK_HTML"]).resolve()
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


def markdown_table_outputs(nb: Path) -> int:
    """Markdown outputs (``display(Markdown(...))``) that hold a table."""
    outputs = [out for cell in load(nb)["cells"] for out in cell.get("outputs", [])]
    return sum(bool(re.search(r"^\|\s*:?-{3,}", "".join(out.get("data", {}).get("text/markdown", "")), re.M))
               for out in outputs)


def png_outputs(nb: Path) -> int:
    outputs = [out for cell in load(nb)["cells"] for out in cell.get("outputs", [])]
    return sum("image/png" in out.get("data", {}) for out in outputs)


@pytest.fixture(scope="module")
def rendered(html) -> dict[str, dict]:
    """What headless Chromium shows on each page, offline (see tests/browser.py)."""
    executable = find_chromium()
    if executable is None:
        message = "no Chromium found: `apt-get install chromium` (Debian's package) or set $CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the browser test may not skip")
        pytest.skip(message)
    pages = BOOK_PAGES + CHAPTER_PAGES
    reports = inspect_all(executable, [(html / page).as_uri() for page in pages])
    return dict(zip(pages, reports.values(), strict=True))


def test_book_build_browser_typesets_math_offline(rendered):
    problems = []
    for page in MATH_PAGES:
        r = rendered[page]
        if not r["mathjax_loaded"]:
            problems.append(f"{page}: MathJax did not load")
        if r["math_elements"] == 0 or r["mjx_containers"] != r["math_elements"] or r["math_untypeset"]:
            problems.append(f"{page}: {r['mjx_containers']} typeset of {r['math_elements']} math spans "
                            f"({r['math_untypeset']} left untypeset)")
    for page, r in rendered.items():
        if r["mjx_errors"]:
            problems.append(f"{page}: MathJax errors {r['mjx_errors']}")
    assert not problems, "\n".join(problems)


def test_book_build_browser_shows_no_raw_tex_or_markdown(rendered):
    problems = []
    for page, r in rendered.items():
        for m in list(RAW_SOURCE.finditer(r["reader_text"]))[:3]:
            context = r["reader_text"][max(0, m.start() - 60):m.end() + 60].replace("\n", " ")
            problems.append(f"{page}: raw {m.group(0)!r} in the text: ...{context}...")
    assert not problems, (
        "a reader sees source instead of typeset math or tables (a common cause: inline $...$ that wraps "
        "onto a line starting with '-' or '+', which Markdown reads as a list item):\n" + "\n".join(problems))


def test_book_build_browser_markdown_outputs_render_as_tables(rendered):
    # nb_render_markdown_format: myst in _config.yml; commonmark would print these tables as raw text
    problems = []
    for nb, page in zip(NOTEBOOKS, CHAPTER_PAGES, strict=True):
        shown, expected = rendered[page]["output_tables"], markdown_table_outputs(nb)
        if shown < expected:
            problems.append(f"{page}: {shown} output tables, but the notebook prints {expected} in Markdown")
    assert not problems, "\n".join(problems)


def test_book_build_browser_images_load(rendered):
    problems = [f"{page}: broken image {img['src']}" for page, r in rendered.items()
                for img in r["images"] if not img["ok"]]
    for nb, page in zip(NOTEBOOKS, CHAPTER_PAGES, strict=True):
        shown, expected = rendered[page]["output_images"], png_outputs(nb)
        if shown < expected:
            problems.append(f"{page}: {shown} images in outputs, but the notebook has {expected} PNG outputs")
    assert not problems, "\n".join(problems)


def test_book_build_browser_colab_link_points_at_repository(rendered):
    repo = repository_url().removeprefix("https://github.com/")
    problems = []
    for nb, page in zip(NOTEBOOKS, CHAPTER_PAGES, strict=True):
        expected = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{nb.name}"
        if expected not in rendered[page]["colab_links"]:
            problems.append(f"{page}: no Colab link {expected}; found {rendered[page]['colab_links']}")
    assert not problems, "\n".join(problems)


def test_book_build_browser_requests_nothing_outside_the_site(rendered):
    problems = [f"{page}: requested {url}" for page, r in rendered.items() for url in r["offsite"]]
    assert not problems, "pages load from outside the site (they break offline):\n" + "\n".join(problems)


def test_book_build_browser_solutions_are_folded(rendered):
    problems = []
    for page in CHAPTER_PAGES:
        r = rendered[page]
        if r["solutions"] == 0:
            problems.append(f"{page}: no solution found (expected each in a dropdown titled 'Solution')")
        if r["solutions_unfolded"]:
            problems.append(f"{page}: solutions shown unfolded: {r['solutions_unfolded']}")
    assert not problems, "\n".join(problems)
