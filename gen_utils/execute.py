"""Execute a notebook in place, top to bottom, in a fresh kernel (``make execute``).

``python -m gen_utils.execute notebooks/01_generative_modeling.ipynb --timeout 1800``
runs it with the notebook's folder as working directory, writes the outputs back and prints
the wall-clock time. The profile comes from ``$GEN_UTILS_PROFILE`` as usual.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# Figures are captured only by the inline backend. A shell that exports MPLBACKEND=Agg (as `make
# test` does for nbval) would otherwise make every figure vanish from the committed outputs.
INLINE = "module://matplotlib_inline.backend_inline"


def execute(path: Path, timeout: int = 1800, kernel: str = "python3", out: Path | None = None) -> float:
    """Run every cell of ``path`` and save it (to ``out`` if given); returns the seconds taken."""
    import nbformat
    from nbclient import NotebookClient

    os.environ["MPLBACKEND"] = INLINE  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel, record_timing=False,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, out or path)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--timeout", type=int, default=1800, help="per-cell limit in seconds")
    ap.add_argument("--out", type=Path, help="write the executed notebook here (one notebook only)")
    args = ap.parse_args()
    if args.out and len(args.notebooks) != 1:
        ap.error("--out takes one notebook")
    for nb in args.notebooks:
        print(f"{nb}: executed in {execute(nb, args.timeout, out=args.out):.1f} s")


if __name__ == "__main__":
    main()
