"""Fixtures for the dashboard tests: a tiny study in a data directory, or an empty one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from .study_builder import build_study


@pytest.fixture(autouse=True)
def _fresh_streamlit_cache() -> Iterator[None]:
    """Each test starts with an empty ``st.cache_data``: loaders must not see another test's folders."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def study_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory holding the tiny study as ``demo``; ``RBQM_DATA_DIR`` points at it."""
    data = tmp_path / "data"
    build_study(data / "demo")
    monkeypatch.setenv("RBQM_DATA_DIR", str(data))
    return data


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An existing data directory with no study in it; ``RBQM_DATA_DIR`` points at it."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("RBQM_DATA_DIR", str(data))
    return data
