"""The Colab bootstrap cell, generated from the repository URL in ``_config.yml``.

Every notebook's first code cell is exactly ``bootstrap_source()``; ``make bootstrap`` rewrites
it in place (``python -m gen_utils.bootstrap notebooks/*.ipynb``) and a test checks it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

MARKER = "# Colab bootstrap"
CONFIG = Path(__file__).resolve().parent.parent / "_config.yml"


def repository_url(config: Path = CONFIG) -> str:
    """``repository.url`` from the book's ``_config.yml``."""
    text = config.read_text(encoding="utf-8")
    m = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", text, re.MULTILINE)
    if not m:
        raise ValueError(f"{config} has no repository.url")
    return m.group(1).strip("'\"")


def bootstrap_source(config: Path = CONFIG) -> str:
    """Source of the bootstrap cell: on Colab install gen_utils from the repository."""
    url = repository_url(config)
    return (
        f"{MARKER} (generated from _config.yml by `make bootstrap`; do not edit by hand)\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules and importlib.util.find_spec("gen_utils") is None:\n'
        '    pip = [sys.executable, "-m", "pip", "install"]  # no -q: pip\'s warnings must reach you\n'
        f'    subprocess.run([*pip, "git+{url}"], check=True)'
    )


def bootstrap_cell_index(nb: dict) -> int | None:
    """Index of the notebook's bootstrap cell (the code cell starting with the marker)."""
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and "".join(cell["source"]).startswith(MARKER):
            return i
    return None


def rewrite(path: Path, config: Path = CONFIG) -> bool:
    """Make ``path``'s bootstrap cell the generated one; True if the file changed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    i = bootstrap_cell_index(nb)
    if i is None:
        raise ValueError(f"{path} has no bootstrap cell (a code cell starting with {MARKER!r})")
    src = bootstrap_source(config)
    if "".join(nb["cells"][i]["source"]) == src:
        return False
    nb["cells"][i]["source"] = src.splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{arg}: {'updated' if rewrite(Path(arg)) else 'up to date'}")
