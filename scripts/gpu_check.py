"""Run every chapter in the gpu profile on a CUDA machine and print one table (``make gpu-check``).

Notebooks run ``--jobs`` at a time (one GPU with many cores is typical), each in its own kernel,
and are written executed to ``--out`` (default ``_build/gpu``), never over the committed ones.
The table gives, per notebook: seconds, peak GPU memory, the headline metrics and whether each
meets its gpu target (``tests/notebook_checks.py``). Copy the notebooks that meet their targets
over ``notebooks/`` and commit them: the book then shows their gpu results, labelled by profile.

``python scripts/gpu_check.py [--jobs 3] [--timeout 600] [notebooks ...]``
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from notebook_checks import NOTEBOOKS, REQUIRED_GLUE, TARGETS, glued  # noqa: E402

OPS = {"<=": operator.le, ">=": operator.ge}


def run_one(nb: Path, out: Path, timeout: int, threads: int) -> tuple[Path, float, str]:
    """Execute ``nb`` into ``out`` in the gpu profile; returns (path, seconds, error or "")."""
    target = out / nb.name
    env = {**os.environ, "GEN_UTILS_PROFILE": "gpu", "GEN_UTILS_HEADLESS": "1",
           "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gen_utils.execute", str(nb), "--out", str(target),
                           "--timeout", str(timeout)], env=env, capture_output=True, text=True, cwd=ROOT)
    error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["failed"])[-1]
    return target, time.perf_counter() - start, error


def row(nb: Path, seconds: float, error: str) -> tuple[str, bool]:
    """One table line, and whether every gpu target is met."""
    if error or not nb.exists():
        return f"| {nb.stem} | {seconds:.0f} | — | FAILED: {error[:80]} | no |", False
    values = glued(json.loads(nb.read_text(encoding="utf-8")))
    heads = [k for k in REQUIRED_GLUE.get(nb.stem, ()) if k in values]
    metrics = ", ".join(f"{k} {values[k]}" for k in heads)
    checks, ok = [], True
    for key, per_profile in TARGETS.get(nb.stem, {}).items():
        if "gpu" in per_profile and key in values:
            op, bound = per_profile["gpu"]
            met = OPS[op](values[key], bound)
            ok &= met
            checks.append(f"{key} {values[key]} {op} {bound}: {'yes' if met else 'NO'}")
    memory = values.get("run_gpu_peak_mib", "—")
    return f"| {nb.stem} | {seconds:.0f} | {memory} | {metrics} | {'; '.join(checks) or '—'} |", ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS)
    ap.add_argument("--jobs", type=int, default=3, help="notebooks run at once")
    ap.add_argument("--timeout", type=int, default=540, help="per-cell limit in seconds")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "gpu")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:  # each job is a subprocess with its own kernel
        results = list(pool.map(lambda nb: run_one(nb, args.out, args.timeout, threads), args.notebooks))
    print("| notebook | seconds | peak GPU MiB | headline metrics | gpu targets |")
    print("|---|---|---|---|---|")
    met = []
    for nb, seconds, error in results:
        line, ok = row(nb, seconds, error)
        print(line)
        if ok:
            met.append(nb)
    print(f"\n{len(args.notebooks)} notebooks in {time.perf_counter() - start:.0f} s; executed copies in "
          f"{args.out}")
    print("meet every gpu target (copy over notebooks/ and commit): "
          + (" ".join(str(p.relative_to(ROOT)) for p in met) or "none"))
    sys.exit(0 if all(not e for _, _, e in results) else 1)


if __name__ == "__main__":
    main()
