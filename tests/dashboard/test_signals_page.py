"""The "Signals and actions" page through AppTest: the work list, the roles, the update form and the plan."""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from rbqm.actions import plan_visits, suggest_actions
from rbqm.analysis import analyze_study
from rbqm.signals import derive_signals
from rbqm.store import open_store
from rbqm.store.signals import list_signals, sync_signals, update_signal

from .conftest import ACCOUNTS, sign_in

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGE = "pages/signals.py"


@pytest.fixture(scope="module")
def engine(generated_data: Path):
    """The engine's own analysis, signals and visit plan of the study, to compare the page with."""
    analysis = analyze_study(generated_data / "demo", permutations=int(os.environ["RBQM_PERMUTATIONS"]))
    signals = derive_signals(analysis)
    plan = plan_visits(suggest_actions(analysis, signals, study_dir=generated_data / "demo"))
    return analysis, signals, plan


@pytest.fixture
def demo_dir(generated_data: Path, fresh_store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(generated_data))
    return generated_data


def open_signals(role: str) -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=120), role).run()
    return at.switch_page(PAGE).run()


def stored(url: str, study_id: str):
    store = open_store(url)
    try:
        return {s.signal_id: s for s in list_signals(store, "ada", study_id=study_id)}
    finally:
        store.close()


def latest(signals: pl.DataFrame) -> pl.DataFrame:
    return signals.filter(pl.col("cut_date") == pl.col("cut_date").max())


@pytest.mark.parametrize("role", sorted(set(ACCOUNTS.values())))
def test_renders_for_every_role(demo_dir: Path, engine, role: str) -> None:
    analysis, signals, plan = engine
    at = open_signals(role)
    assert not at.exception, at.exception
    assert not at.error
    assert at.title[0].value == "Signals and actions"
    work = at.dataframe[0].value
    assert sorted(work["signal_id"]) == sorted(latest(signals)["signal_id"].to_list())
    assert list(at.dataframe[1].value["site_id"]) == plan["site_id"].to_list()
    editable = role != "sponsor_viewer"
    assert bool(at.get("form")) is editable
    assert bool([t for t in at.text_input if t.key == "sig_reason"]) is editable


def test_sponsor_viewer_sees_no_form_and_writes_nothing(demo_dir: Path, engine, fresh_store_url: str) -> None:
    analysis, _, _ = engine
    at = open_signals("sponsor_viewer")
    assert not at.get("form") and not [b for b in at.button if b.label == "Save"]
    assert any("may view signals but not change them" in info.value for info in at.info)
    assert stored(fresh_store_url, analysis.study_id) == {}  # no sync for a read-only role
    assert set(at.dataframe[0].value["status"]) == {"new"}


def test_editor_records_new_signals_on_load(demo_dir: Path, engine, fresh_store_url: str) -> None:
    analysis, signals, _ = engine
    open_signals("central_monitor")
    open_now = latest(signals).filter(pl.col("state") != "resolved")["signal_id"].to_list()
    assert sorted(stored(fresh_store_url, analysis.study_id)) == sorted(open_now)


def test_central_monitor_update_is_saved(demo_dir: Path, engine, fresh_store_url: str) -> None:
    analysis, _, _ = engine
    at = open_signals("central_monitor")
    signal_id = at.selectbox(key="sig_id").value
    due = date.today() + timedelta(days=14)
    at.selectbox(key="sig_new_status").set_value("under_review")
    at.text_input(key="sig_owner").input("cleo")
    at.date_input(key="sig_due").set_value(due)
    at.text_area(key="sig_comment").input("Asked the CRA to check the source.")
    at.text_input(key="sig_reason").input("triage")
    at.button(key="FormSubmitter:sig_update-Save").click().run()
    assert not at.exception, at.exception
    assert not at.error
    assert at.success[0].value == f"Saved {signal_id}."
    saved = stored(fresh_store_url, analysis.study_id)[signal_id]
    assert (saved.status, saved.owner, saved.due_date) == ("under_review", "cleo", due)
    assert saved.comments[-1]["text"] == "Asked the CRA to check the source." and saved.comments[-1]["by"] == "cleo"
    work = at.dataframe[0].value
    row = work[work["signal_id"] == signal_id].iloc[0]
    assert (row["status"], row["owner"]) == ("under_review", "cleo")


def test_store_errors_are_messages(demo_dir: Path, engine, fresh_store_url: str) -> None:
    at = open_signals("quality_lead")
    at.selectbox(key="sig_new_status").set_value("closed_no_action")
    at.text_input(key="sig_reason").input("not a real issue")
    at.button(key="FormSubmitter:sig_update-Save").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "justification" in at.error[0].value
    at.text_input(key="sig_owner").input("nobody")
    at.selectbox(key="sig_new_status").set_value("under_review")
    at.button(key="FormSubmitter:sig_update-Save").click().run()
    assert "not an active account" in at.error[0].value


def test_filters(demo_dir: Path, engine) -> None:
    _, signals, _ = engine
    at = open_signals("admin")
    at.multiselect(key="sig_severity").set_value(["red"]).run()
    work = at.dataframe[0].value
    expected = latest(signals).filter(pl.col("severity") == "red").height
    assert len(work) == expected and set(work["severity"]) <= {"▲▲ red"}
    at.multiselect(key="sig_severity").set_value([]).run()
    at.multiselect(key="sig_kind").set_value(["kri"]).run()
    work = at.dataframe[0].value
    assert len(work) == latest(signals).filter(pl.col("kind") == "kri").height
    at.multiselect(key="sig_status").set_value(["resolved"]).run()
    assert len(at.dataframe[0].value) == 0
    assert not at.exception


def test_overdue_signals_come_first_and_are_marked(demo_dir: Path, engine, fresh_store_url: str) -> None:
    analysis, signals, _ = engine
    store = open_store(fresh_store_url)
    sync_signals(store, "ada", signals)
    last = sorted(latest(signals).filter(pl.col("state") != "resolved")["signal_id"].to_list())[-1]
    update_signal(store, "ada", last, study_id=analysis.study_id, reason="plan", owner="cleo",
                  due_date=date.today() - timedelta(days=3), status="action_planned")
    store.close()
    at = open_signals("sponsor_viewer")
    work = at.dataframe[0].value
    assert work.iloc[0]["signal_id"] == last and "overdue" in work.iloc[0]["overdue"]
    assert (work["overdue"] == "").sum() == len(work) - 1
    assert "1 signal is overdue" in at.warning[0].value
