"""gu.explore: sliders on a live kernel, a static figure everywhere else."""

from __future__ import annotations

import gen_utils as gu
from gen_utils import widgets


def test_headless_uses_static(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_HEADLESS", "1")
    calls = []
    gu.explore(lambda t: calls.append(("draw", t)), lambda: calls.append("static"), t=(0.1, 2.0))
    assert calls == ["static"]
    assert not gu.live_kernel()


def test_no_kernel_uses_static(monkeypatch):
    monkeypatch.delenv("GEN_UTILS_HEADLESS", raising=False)
    # plain pytest: IPython has no running shell, so there is no live kernel
    assert not widgets.live_kernel()
    calls = []
    gu.explore(lambda t: calls.append(t), lambda: calls.append("static"), t=(0.1, 2.0))
    assert calls == ["static"]


def test_live_kernel_uses_interact(monkeypatch):
    monkeypatch.delenv("GEN_UTILS_HEADLESS", raising=False)
    monkeypatch.setattr(widgets, "live_kernel", lambda: True)
    seen = {}
    import ipywidgets

    monkeypatch.setattr(ipywidgets, "interact", lambda f, **kw: seen.update(f=f, kw=kw))
    draw = lambda t: None  # noqa: E731
    gu.explore(draw, lambda: seen.update(static=True), t=(0.1, 2.0))
    assert seen == {"f": draw, "kw": {"t": (0.1, 2.0)}}
