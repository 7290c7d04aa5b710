"""Fixtures for the dashboard tests: a tiny study in a data directory, or an empty one, and a store
with one account per role (every test runs signed in unless it signs out; see :func:`sign_in`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rbqm.store import DATABASE_URL_ENV, open_store, users
from synthetic import SynthConfig, generate_study

from .study_builder import build_study

PASSWORD = "a long test passphrase"
"""The password of every test account."""
ACCOUNTS = {"ada": "admin", "quinn": "quality_lead", "cleo": "central_monitor", "sam": "sponsor_viewer"}
"""The test accounts: username -> role."""
USER_OF = {role: name for name, role in ACCOUNTS.items()}


def make_store(path: Path) -> str:
    """An SQLite store at ``path`` with the :data:`ACCOUNTS`; returns its URL."""
    url = f"sqlite:///{path}"
    store = open_store(url)
    with store.write() as session:
        for name, role in ACCOUNTS.items():
            users.add_user(session, "ada", name, role=role, password=PASSWORD, reason="test account")
    store.close()
    return url


@pytest.fixture(scope="session")
def _accounts_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_store(tmp_path_factory.mktemp("store") / "rbqm.db")


@pytest.fixture(autouse=True)
def store_url(_accounts_store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test's dashboard uses the shared accounts store (``RBQM_DATABASE_URL``)."""
    monkeypatch.setenv(DATABASE_URL_ENV, _accounts_store)
    return _accounts_store


@pytest.fixture
def fresh_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store of this test's own (for tests that write to it), with the :data:`ACCOUNTS`."""
    url = make_store(tmp_path / "own.db")
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    return url


def sign_in(at: AppTest, role: str = "admin") -> AppTest:
    """Mark ``at``'s session as signed in with the test account of ``role`` (as the sign-in form does)."""
    at.session_state["user"] = USER_OF[role]
    at.session_state["role"] = role
    return at


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


@pytest.fixture(scope="session")
def generated_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a 12-site, 3-country study with 2 data cuts as ``demo``."""
    data = tmp_path_factory.mktemp("pages") / "data"
    generate_study(SynthConfig(sites=12, subjects=240, countries=3, seed=3, months=12, cuts=2), data / "demo")
    return data
