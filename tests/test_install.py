"""Installing gen_utils on Colab must not upgrade what Colab ships (IPython, ipywidgets, torch).

A fresh venv gets Colab's IPython 7.34.0 and ipywidgets 7.7.1 (real packages from the index) and
an older torch. torch is represented by its metadata only (a dist-info folder, as pip sees an
installed package): a real 2.3.1 wheel is ~800 MB, and pip's decision depends only on the version.
``pip install --dry-run --report`` then says what installing gen_utils would change.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLAB = {"ipython": "7.34.0", "ipywidgets": "7.7.1"}
OLD_TORCH = "2.3.1"


def fake_installed(site: Path, name: str, version: str) -> None:
    """Register ``name==version`` as installed, the way pip records it (no files)."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")


@pytest.fixture(scope="module")
def colab_like(tmp_path_factory):
    venv = tmp_path_factory.mktemp("colab") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pins = [f"{k}=={v}" for k, v in COLAB.items()]
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"could not install {pins} into a fresh venv:\n{done.stderr[-2000:]}")
        pytest.skip(f"no package index reachable to install {pins} (CI fails here instead)")
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-c", purelib],
                               capture_output=True, text=True, check=True).stdout.strip())
    fake_installed(site, "torch", OLD_TORCH)
    return python


def test_installing_gen_utils_upgrades_nothing_colab_ships(colab_like, tmp_path):
    # catches a lower bound above Colab's (e.g. ipython>=8, ipywidgets>=8, a new torch) sneaking back
    report = tmp_path / "report.json"
    done = subprocess.run([str(colab_like), "-m", "pip", "install", "--dry-run",
                           "--disable-pip-version-check", "--report", str(report), "--quiet", str(ROOT)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    planned = {item["metadata"]["name"].lower(): item["metadata"]["version"]
               for item in json.loads(report.read_text())["install"]}
    assert "gen-utils" in planned or "gen_utils" in planned
    touched = {name: planned[name] for name in ("ipython", "ipywidgets", "torch", "torchvision")
               if name in planned}
    assert not touched, f"installing gen_utils would install/upgrade {touched} over Colab's own"
    assert "myst-nb" not in planned, "myst-nb belongs to the `book` extra, not the runtime"


def test_the_runtime_requirements_are_what_the_code_imports():
    # catches a dependency added for one notebook but not declared (or one nothing imports)
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ \[]", d)[0].lower() for d in deps}
    assert names == {"torch", "numpy", "matplotlib", "tqdm", "ipywidgets", "ipython", "sacrebleu",
                     "rouge-score", "tokenizers"}
