"""ruff over the package, the tests, the generated chapter modules and every notebook's code cells.

The rules and the line length (110) are in pyproject.toml; ruff reads .ipynb files cell by cell.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: `pip install -r requirements.txt` installs it")
    return [exe]


@pytest.mark.parametrize("target", ["gen_utils", "tests", "notebooks"])
def test_ruff_is_clean(target):
    out = subprocess.run([*ruff(), "check", "--no-cache", "--output-format", "concise", target],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"ruff check {target}:\n{out.stdout[-4000:]}{out.stderr[-2000:]}"
