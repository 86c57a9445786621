"""The gpu profile runs, as a dry run on the CPU: its models and code paths, a few steps each.

This catches a broken gpu configuration (a shape that only the gpu widths hit, a setting only the
gpu profile reads) before a reader meets it in Colab. Each notebook must finish in 120 s on 2 cores.
"""

from __future__ import annotations

import pytest
from notebook_checks import NOTEBOOKS

from gen_utils.dry_run import dry_run

DRY_RUN_SECONDS = 120.0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_gpu_profile_dry_run(path):
    seconds, slowest = dry_run(path, timeout=int(DRY_RUN_SECONDS))
    assert seconds <= DRY_RUN_SECONDS, (
        f"the gpu dry run took {seconds:.0f} s (slowest cells: {slowest}); cut the amounts of work in "
        f"the config cell's dry_run=dict(...)")
