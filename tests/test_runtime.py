"""gen_utils.runtime: profiles, pick, setup/run, seeding, headless and finish."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch
from _helpers import reset_run

import gen_utils as gu
from gen_utils import runtime


@pytest.fixture(autouse=True)
def _fresh_session(monkeypatch):
    """No stored Run, no profile from the environment, torch's thread count restored."""
    threads = torch.get_num_threads()
    monkeypatch.delenv(runtime.PROFILE_ENV, raising=False)
    reset_run()
    yield
    reset_run()
    torch.set_num_threads(threads)


# --- profiles -------------------------------------------------------------------------------

def test_profiles_are_smoke_cpu_gpu():
    assert gu.PROFILES == ("smoke", "cpu", "gpu")


def test_unknown_profile_from_env_is_rejected_by_resolve_and_setup(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "fast")
    for call in (gu.resolve_profile, lambda: gu.setup(seed=0)):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        for name in ("smoke", "cpu", "gpu", "'fast'", "GEN_UTILS_PROFILE"):
            assert name in msg
    assert runtime._RUN is None  # a rejected setup stores nothing


def test_unknown_profile_argument_is_rejected_and_blamed_on_the_argument(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "cpu")
    with pytest.raises(ValueError, match="smoke, cpu, gpu") as info:
        gu.setup(seed=0, profile="turbo")
    assert "'turbo'" in str(info.value)
    assert "GEN_UTILS_PROFILE" not in str(info.value)


@pytest.mark.parametrize("cuda", [True, False])
def test_default_profile_follows_cuda(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert gu.resolve_profile() == ("gpu" if cuda else "cpu")
    monkeypatch.setenv("GEN_UTILS_PROFILE", "   ")  # blank counts as unset
    assert gu.resolve_profile() == ("gpu" if cuda else "cpu")


def test_default_profile_on_this_machine():
    assert gu.resolve_profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_profile_from_env_is_normalised(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", " SMOKE ")
    assert gu.resolve_profile() == "smoke"


def test_profile_argument_overrides_env(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "cpu")
    assert gu.resolve_profile("smoke") == "smoke"
    assert gu.resolve_profile() == "cpu"


# --- pick -----------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:the gpu profile was asked for")
@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu"])
def test_pick_returns_the_setup_profile(profile, capsys):
    gu.setup(seed=0, profile=profile)
    assert gu.pick(smoke=1, cpu=2, gpu=3) == {"smoke": 1, "cpu": 2, "gpu": 3}[profile]
    assert gu.pick(smoke="s", cpu="c", gpu="g") == profile[0]


def test_pick_without_setup_uses_the_environment(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "smoke")
    assert gu.pick(smoke={"epochs": 1}, cpu={"epochs": 5}, gpu={"epochs": 50}) == {"epochs": 1}
    monkeypatch.setenv("GEN_UTILS_PROFILE", "gpu")
    assert gu.pick(smoke=1, cpu=2, gpu=3) == 3


def test_pick_setup_profile_wins_over_later_env(monkeypatch, capsys):
    gu.setup(seed=0, profile="cpu")
    monkeypatch.setenv("GEN_UTILS_PROFILE", "smoke")
    assert gu.pick(smoke=1, cpu=2, gpu=3) == 2


def test_pick_needs_every_profile():
    with pytest.raises(ValueError) as info:
        gu.pick(smoke=1, cpu=2)
    assert "gpu" in str(info.value) and "missing" in str(info.value)
    with pytest.raises(ValueError, match="unknown: \\['tpu'\\]"):
        gu.pick(smoke=1, cpu=2, gpu=3, tpu=4)


# --- setup / run / seeding ------------------------------------------------------------------

def test_setup_returns_and_stores_the_run(capsys):
    r = gu.setup(seed=7, profile="smoke", threads=1)
    assert gu.run() is r
    assert (r.profile, r.seed, r.threads) == ("smoke", 7, 1)
    assert r.device == runtime.default_device()
    assert torch.get_num_threads() == 1
    assert r.seconds >= 0
    banner = capsys.readouterr().out
    for part in ("gen_utils", "profile smoke", "seed 7", "threads 1", f"torch {torch.__version__}"):
        assert part in banner


def test_setup_default_threads_is_every_usable_core(capsys):
    r = gu.setup(seed=0)
    assert r.threads == runtime.cpu_threads() >= 1
    assert torch.get_num_threads() == r.threads


def test_setup_seeds_python_numpy_and_torch(capsys):
    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    gu.setup(seed=123)
    first = draw()
    gu.setup(seed=123)
    assert draw() == first
    gu.setup(seed=124)
    assert draw() != first


def test_seed_everything_is_reproducible():
    gu.seed_everything(5)
    a = torch.randn(4)
    gu.seed_everything(5)
    assert torch.equal(a, torch.randn(4))


def test_run_before_setup_raises():
    with pytest.raises(RuntimeError, match="setup"):
        gu.run()


def test_device_name():
    assert runtime.device_name(torch.device("cpu")) == "cpu"
    if torch.cuda.is_available():
        assert runtime.device_name(torch.device("cuda")).startswith("cuda (")


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("", False), ("0", False),
                                                 ("false", False), ("False", False), ("no", False),
                                                 ("off", False), ("1", True), ("yes", True)])
def test_headless(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("GEN_UTILS_HEADLESS", raising=False)
    else:
        monkeypatch.setenv("GEN_UTILS_HEADLESS", value)
    assert gu.headless() is expected


# --- finish ---------------------------------------------------------------------------------

@pytest.fixture
def shown(monkeypatch):
    """Record what ``finish`` displays (the results table) instead of printing it."""
    import IPython.display

    out = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: out.extend(objs))
    return out


def test_finish_glues_rounded_metrics_and_run_info(monkeypatch, shown, capsys):
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: calls.append(
        (name, value, display)))
    gu.setup(seed=0, profile="smoke")
    result = gu.finish(x=1.23456789, n=3, t=torch.tensor(0.123456), f=np.float32(2.718281))
    assert result is None  # the table is displayed, not returned (it would show twice)
    assert [c[0] for c in calls] == ["x", "n", "t", "f", "run_profile", "run_device",
                                     "run_seconds"]
    assert all(display is False for _, _, display in calls)
    glued = {name: value for name, value, _ in calls}
    assert glued["x"] == 1.2346
    assert glued["n"] == 3 and isinstance(glued["n"], int)
    assert glued["t"] == 0.1235 and isinstance(glued["t"], float)
    assert glued["f"] == 2.7183 and isinstance(glued["f"], float)
    assert glued["run_profile"] == "smoke"
    assert glued["run_device"] == runtime.device_name(runtime.default_device())
    assert isinstance(glued["run_seconds"], float) and glued["run_seconds"] >= 0
    (table,) = shown
    assert "| `x` | 1.2346 |" in table.data and "| `run_profile` | smoke |" in table.data


def test_finish_with_the_real_glue_outside_a_notebook(monkeypatch, shown, capsys):
    # myst_nb's glue hands a mime bundle to IPython's display; record those bundles.
    import myst_nb.ext.glue

    bundles = []
    monkeypatch.setattr(myst_nb.ext.glue, "ipy_display",
                        lambda bundle, raw=False, metadata=None: bundles.append((bundle, metadata)))
    gu.setup(seed=0, profile="cpu")
    gu.finish(x=1.23456789, label="vae")
    names = [meta["scrapbook"]["name"] for _, meta in bundles]
    assert names == ["x", "label", "run_profile", "run_device", "run_seconds"]
    prefix = myst_nb.ext.glue.GLUE_PREFIX  # the "don't display" prefix
    plain = {meta["scrapbook"]["name"]: bundle[prefix + "text/plain"] for bundle, meta in bundles}
    assert plain["x"] == "1.2346"
    assert plain["label"] == "'vae'" and plain["run_profile"] == "'cpu'"


def test_finish_runs_unpatched_outside_ipython(capsys):
    gu.setup(seed=0, profile="cpu")
    assert gu.finish(x=1.23456789) is None
    assert "Markdown" in capsys.readouterr().out  # plain Python prints the display object


def test_finish_needs_setup():
    with pytest.raises(RuntimeError, match="setup"):
        gu.finish(x=1.0)


def test_pick_refuses_profiles_with_different_keys(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "cpu")
    with pytest.raises(ValueError, match="different keys"):
        gu.pick(smoke={"steps": 1}, cpu={"steps": 2, "lr": 0.1}, gpu={"steps": 3})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only case")
def test_the_gpu_profile_on_a_cpu_warns_once(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "_WARNED", set())
    with pytest.warns(UserWarning, match="gpu profile was asked for, but there is no CUDA GPU"):
        gu.setup(seed=0, profile="gpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gu.setup(seed=0, profile="gpu")  # not a second time


def test_glue_records_rounded_intermediate_values_silently(monkeypatch, shown):
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: calls.append(
        (name, value, display)))
    assert gu.glue(beta_1_rate=np.float64(12.345678), k=5) is None
    assert calls == [("beta_1_rate", 12.3457, False), ("k", 5, False)]
    assert shown == []  # nothing displayed: the prose quotes these numbers


def test_finish_without_myst_nb_still_displays_the_results(monkeypatch, shown):
    # Colab does not install the `book` extra: finish must record results without glue.
    import builtins

    real_import = builtins.__import__

    def no_myst_nb(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst_nb)
    gu.setup(seed=0, profile="smoke")
    gu.finish(x=1.23456789)
    gu.glue(y=2.0)
    (table,) = shown
    assert "| `x` | 1.2346 |" in table.data and "| `run_profile` | smoke |" in table.data
