"""The signals page's linked actions and outcomes through AppTest: planning an action from a suggestion,
moving it along the workflow, overdue actions marked, outcomes equal to the engine's, read-only roles."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rbqm.analysis import analyze_study
from rbqm.outcomes import signal_outcomes, summarize_outcomes
from rbqm.signals import derive_signals
from rbqm.store import DATABASE_URL_ENV, open_store
from rbqm.store.actions import action_baselines, add_action, list_actions
from rbqm.store.signals import get_signal, sync_signals
from tests.dashboard.conftest import make_store, sign_in

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
SIGNAL = "kri0010@1003"


@pytest.fixture(scope="module")
def data_dir(cli_study, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("page") / "data"
    shutil.copytree(cli_study, data / "demo")
    return data


@pytest.fixture(scope="module")
def engine(data_dir):
    analysis = analyze_study(data_dir / "demo")
    return analysis, derive_signals(analysis)


@pytest.fixture
def url(data_dir, tmp_path, monkeypatch) -> str:
    url = make_store(tmp_path / "rbqm.db")
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    monkeypatch.setenv("RBQM_DATA_DIR", str(data_dir))
    st.cache_data.clear()
    return url


def _table(at: AppTest, column: str):
    """The page's dataframe with ``column`` (AppTest finds dataframes by position, not by key)."""
    (frame,) = [d.value for d in at.dataframe if column in d.value.columns]
    return frame


def _open(role: str) -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=180), role).run()
    return at.switch_page("pages/signals.py").run()


def test_plan_and_follow_an_action_on_the_page(url, engine):
    at = _open("central_monitor")
    assert not at.exception, at.exception
    assert any("No action is linked" in info.value for info in at.info)
    at.selectbox(key="act_signal").set_value(SIGNAL).run()
    assert at.selectbox(key="act_action").options[0] != "other"  # the suggestions come first
    at.selectbox(key="act_action").set_value("remote_review")
    at.text_input(key="act_owner").input("cleo")
    at.date_input(key="act_due").set_value(date.today() - timedelta(days=2))
    at.text_input(key="act_reason").input("late entry")
    at.button(key="FormSubmitter:act_add-Plan the action").click().run()
    assert not at.exception and not at.error, at.error
    assert at.success[0].value == f"Planned action #1 for {SIGNAL}."
    store = open_store(url)
    (action,) = list_actions(store, "sam")
    assert (action.action, action.owner) == ("remote_review", "cleo")
    assert action.description.startswith("Oldest unentered pages")  # where the suggestion said to look
    assert get_signal(store, "sam", SIGNAL).status == "action_planned"
    shown = _table(at, "description")
    assert shown.iloc[0]["overdue"] == "⚠ overdue" and shown.iloc[0]["status"] == "planned"
    assert any("1 action is overdue" in warning.value for warning in at.warning)

    at.selectbox(key="act_status").set_value("done")
    at.text_input(key="act_update_reason").input("done")
    at.button(key="FormSubmitter:act_update-Save the action").click().run()
    assert "planned -> done needs an outcome note" in at.error[0].value
    at.selectbox(key="act_status").set_value("in_progress")
    at.button(key="FormSubmitter:act_update-Save the action").click().run()
    assert at.success[0].value == "Saved action #1." and not at.error
    assert get_signal(store, "sam", SIGNAL).status == "in_progress"
    store.close()


def test_outcomes_equal_the_engine(url, engine):
    analysis, derived = engine
    store = open_store(url)
    first = derived.filter(pl.col("cut_date") == analysis.cut_dates[0])
    sync_signals(store, "ada", first)
    add_action(store, "ada", SIGNAL, action="remote_review", reason="first cut")  # actioned at cut 1
    at = _open("sponsor_viewer")
    assert not at.exception, at.exception
    expected = signal_outcomes(analysis, action_baselines(store, "sam", study_id=analysis.study_id))
    store.close()
    summary = summarize_outcomes(expected)
    assert summary.assessed == 1
    shown = _table(at, "compared_cut")
    assert shown["outcome"].tolist() == expected["outcome"].to_list()
    assert shown["note"].tolist() == expected["note"].to_list()
    metrics = {m.label: m for m in at.metric}
    assert metrics["Improved after action"].value == f"{summary.share_improved:.0%}"
    assert metrics["Assessed"].value == "1" and metrics["Too early"].value == "0"
    assert "vs 83% benchmark" in metrics["Improved after action"].delta
    with pytest.raises(KeyError):  # read only: no form to plan or update actions
        at.selectbox(key="act_signal")
