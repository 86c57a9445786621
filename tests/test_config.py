"""gen_utils.config: one setting per line, three profile values each, read by attribute."""

from __future__ import annotations

import pytest
from _helpers import reset_run

import gen_utils as gu


@pytest.fixture(autouse=True)
def _fresh_run():
    reset_run()
    yield
    reset_run()


@pytest.mark.parametrize(("profile", "expected"), [("smoke", 40), ("cpu", 3_000), ("gpu", 12_000)])
def test_each_profile_gets_its_column(monkeypatch, profile, expected):
    monkeypatch.setenv("GEN_UTILS_PROFILE", profile)
    cfg = gu.config(steps=(40, 3_000, 12_000), lr=2e-4, betas=[0.5, 0.999])
    assert cfg.steps == expected
    assert cfg.lr == 2e-4  # one value: shared by every profile
    assert cfg.betas == [0.5, 0.999]  # a list is one shared value
    assert cfg.profile == profile


def test_the_profile_of_setup_wins(monkeypatch, capsys):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "gpu")
    gu.setup(seed=0, profile="smoke")
    assert gu.config(n=(1, 2, 3)).n == 1


def test_a_tuple_of_the_wrong_length_is_refused(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "cpu")
    with pytest.raises(ValueError, match="'betas' is a tuple of 2 values"):
        gu.config(betas=(0.5, 0.999))


def test_attribute_access_only_for_known_settings_and_read_only(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "cpu")
    cfg = gu.config(steps=(1, 2, 3), width=32)
    with pytest.raises(AttributeError, match="no setting 'stpes'.*steps, width"):
        cfg.stpes  # noqa: B018 - the attribute access is the test
    with pytest.raises(AttributeError, match="read-only"):
        cfg.steps = 5
    assert dict(cfg) == {"steps": 2, "width": 32} and len(cfg) == 2 and "width" in cfg


def test_repr_lists_one_setting_per_line(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "smoke")
    text = repr(gu.config(steps=(40, 3_000, 12_000), lr=2e-4))
    assert text.splitlines() == ["Config for the smoke profile:", "  steps = 40", "  lr    = 0.0002"]


def test_names_the_configuration_itself_uses_are_refused(monkeypatch):
    monkeypatch.setenv("GEN_UTILS_PROFILE", "cpu")
    with pytest.raises(ValueError, match=r"\['profile', 'values'\] are taken"):
        gu.config(values=3, profile=(1, 2, 3))


def test_a_dry_run_replaces_only_the_amounts_of_work(monkeypatch):
    # catches a dry run that shrinks the model too (it would no longer test the gpu configuration)
    monkeypatch.setenv("GEN_UTILS_DRY_RUN", "1")
    gu.setup(seed=0, profile="gpu")
    settings = dict(width=(16, 32, 64), steps=(40, 3_000, 12_000), lr=2e-4, batch=(16, 32, 128))
    cfg = gu.config(**settings, dry_run=dict(steps=2, batch=4))
    assert (cfg.width, cfg.steps, cfg.lr, cfg.batch) == (64, 2, 2e-4, 4)
    assert "dry run" in cfg.profile
    monkeypatch.setenv("GEN_UTILS_DRY_RUN", "0")
    cfg = gu.config(**settings, dry_run=dict(steps=2, batch=4))
    assert (cfg.width, cfg.steps, cfg.batch) == (64, 12_000, 128)


def test_dry_run_names_must_be_settings():
    with pytest.raises(ValueError, match="stpes"):
        gu.config(steps=(1, 2, 3), dry_run=dict(stpes=2))
