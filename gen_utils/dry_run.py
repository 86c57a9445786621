"""Run notebooks in the gpu profile as a dry run on any machine (``make dry-run``, and CI).

``GEN_UTILS_DRY_RUN=1`` makes every ``gu.loop`` setting take its smoke value while the models,
widths and code paths stay the gpu profile's. The notebooks are executed in memory: nothing is
written back. Prints one line per notebook and exits non-zero if any cell fails.

``python -m gen_utils.dry_run notebooks/*.ipynb``
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from .execute import INLINE


def dry_run(path: Path, timeout: int = 300) -> tuple[float, list[tuple[float, int]]]:
    """Execute ``path`` in the gpu profile with dry-run loop lengths.

    Returns the seconds taken and the three slowest code cells as (seconds, cell index).
    """
    import nbformat
    from nbclient import NotebookClient

    env = {"GEN_UTILS_PROFILE": "gpu", "GEN_UTILS_DRY_RUN": "1", "GEN_UTILS_HEADLESS": "1",
           "MPLBACKEND": INLINE}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start, _slowest(nb)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _slowest(nb, n: int = 3) -> list[tuple[float, int]]:
    from datetime import datetime

    times = []
    for i, cell in enumerate(nb.cells):
        t = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in t and "shell.execute_reply" in t:
            a, b = (datetime.fromisoformat(t[k].replace("Z", "+00:00"))
                    for k in ("iopub.execute_input", "shell.execute_reply"))
            times.append(((b - a).total_seconds(), i))
    return sorted(times, reverse=True)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--timeout", type=int, default=300, help="per-cell limit in seconds")
    args = ap.parse_args()
    failed = []
    for nb in args.notebooks:
        try:
            seconds, slowest = dry_run(nb, args.timeout)
            cells = ", ".join(f"cell {i} {t:.0f} s" for t, i in slowest)
            print(f"{nb}: gpu dry run in {seconds:.1f} s (slowest: {cells})", flush=True)
        except Exception as e:  # report every notebook, then fail
            failed.append(nb)
            last = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()[-1:] or [""]
            print(f"{nb}: FAILED: {type(e).__name__}: {last[0][:500]}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
