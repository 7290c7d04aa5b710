"""The "Oversight report" dashboard page through AppTest: one button builds the report, two download buttons."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rbqm.store import DATABASE_URL_ENV

from .conftest import make_store

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGE = "pages/report.py"


@pytest.fixture(scope="module")
def _fresh_cache():
    """One empty ``st.cache_data`` for this module: its tests share the study's cached analysis."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def dashboard(_fresh_cache, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(data_dir))
    monkeypatch.setenv(DATABASE_URL_ENV, make_store(tmp_path / "rbqm.db"))
    return data_dir


def open_page(user: str, role: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.session_state["user"] = user
    at.session_state["role"] = role
    return at.run().switch_page(PAGE).run()


def downloads(at: AppTest) -> list:
    return [e for e in at.get("download_button")]


@pytest.mark.parametrize(("user", "role"), [("ada", "admin"), ("sam", "sponsor_viewer")])
def test_one_click_builds_html_and_pdf(dashboard, analysis, user, role):
    at = open_page(user, role)
    assert not at.exception, at.exception
    assert at.title[0].value == "Oversight report"
    assert at.selectbox(key="report_cut").value == max(analysis.cut_dates)
    assert not downloads(at)  # nothing to download before the click
    at.button(key="report_build").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert len(downloads(at)) == 2
    (study, cut, top), stem, files = at.session_state["report_files"]
    assert (Path(study).name, cut, top) == ("demo", max(analysis.cut_dates), 10)
    assert stem == f"oversight-{analysis.study_id}-{cut.isoformat()}"
    assert files["html"].decode("utf-8").startswith("<!DOCTYPE html>")
    assert files["pdf"].startswith(b"%PDF-")
    assert "not recorded" in files["html"].decode("utf-8")  # the store was read: signals not recorded yet
    assert any("is ready" in s.value for s in at.success)


def test_another_cut_needs_a_new_build(dashboard, analysis):
    at = open_page("ada", "admin")
    at.button(key="report_build").click().run()
    assert len(downloads(at)) == 2
    at.selectbox(key="report_cut").set_value(min(analysis.cut_dates)).run()
    assert not downloads(at) and at.info  # the built report was for the other cut
