"""Serve MathJax 3 from the site's own ``_static/mathjax/``, so the book's math renders offline.

Sphinx loads MathJax from a CDN by default; a reader without network then sees raw ``\\( … \\)``.
This extension points ``mathjax_path`` at a local copy and, once the HTML is written, copies the
part of MathJax that the CHTML output needs from the ``django-static-mathjax`` wheel (MathJax 3.2.2,
Apache-2.0; import name ``mathjax``), which requirements.txt installs. Nothing is vendored in git.

MathJax is not put in ``html_static_path``: Jupyter Book 1.0.4 adds a ``<script>`` tag for every
``*.js`` file found there, which would load hundreds of MathJax components on every page.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.ext.mathjax import MATHJAX_URL

LOCAL_PATH = "mathjax/tex-mml-chtml.js"  # relative to _static/, where Sphinx resolves mathjax_path
# What tex-mml-chtml.js loads at run time, relative to the es5/ folder, plus the licence.
SUBSET = ("tex-mml-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y", "sre")


def mathjax_es5() -> Path:
    """The es5/ folder of the installed MathJax 3 wheel; raises ExtensionError naming the fix."""
    try:
        import mathjax  # the django-static-mathjax wheel
    except ImportError as err:
        raise ExtensionError(
            "mathjax_local: the MathJax wheel is not installed; run "
            "`pip install -r requirements.txt` (it pins django-static-mathjax)") from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / SUBSET[0]).is_file():
        raise ExtensionError(f"mathjax_local: {es5 / SUBSET[0]} not found; expected MathJax 3's es5/ there")
    return es5


def use_local_mathjax(app: Sphinx, config: Config) -> None:
    if config.mathjax_path == MATHJAX_URL:  # leave a path the book chose itself alone
        mathjax_es5()  # fail early, before a whole build, when the wheel is missing
        config.mathjax_path = LOCAL_PATH


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html" or app.config.mathjax_path != LOCAL_PATH:
        return
    es5 = mathjax_es5()
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in SUBSET:
        source = es5 / part
        if source.is_dir():
            shutil.copytree(source, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / part)
    shutil.copy2(es5.parent / "LICENSE", target / "LICENSE")


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", use_local_mathjax)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
