"""Fixtures for the unit tests (the nbval time limit lives in the root conftest.py)."""

import pytest
from _helpers import clear_data_caches


@pytest.fixture(autouse=True)
def _clean_data_caches():
    """Each test starts and ends with empty loader caches, so data roots never leak between tests."""
    clear_data_caches()
    yield
    clear_data_caches()
