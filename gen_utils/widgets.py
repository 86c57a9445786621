"""Interactive explorers that degrade to a static figure when no live kernel is present.

On a live Jupyter/Colab kernel ``explore`` shows ipywidgets sliders wired to ``draw``. In batch
execution (``make execute``, nbval: ``GEN_UTILS_HEADLESS=1``), and therefore in the committed
outputs that the rendered site shows, it calls ``static()`` instead, which should draw a figure
covering a few slider settings (a traversal grid, a row of temperatures, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .runtime import headless


def live_kernel() -> bool:
    """True inside a live IPython kernel with ipywidgets available and not in batch mode."""
    if headless():
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def explore(draw: Callable[..., Any], static: Callable[[], Any], **sliders: Any) -> None:
    """Sliders → ``draw(**values)`` on a live kernel; otherwise ``static()`` once.

    sliders: ipywidgets controls or abbreviations accepted by ``ipywidgets.interact``
    (e.g. ``z1=(-3.0, 3.0, 0.1)``). ``draw`` should create its figure itself (and may return it).
    """
    if live_kernel():
        import ipywidgets

        ipywidgets.interact(draw, **sliders)
    else:
        static()
