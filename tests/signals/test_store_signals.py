"""rbqm.store.signals on SQLite and PostgreSQL: sync, the workflow and its transitions, audit records,
permissions."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rbqm.permissions import PERMISSIONS, Action, PermissionDenied, Role
from rbqm.signals import SIGNAL_COLUMNS
from rbqm.store import ConflictError, StoreError, audit
from rbqm.store.audit import check_chain
from rbqm.store.actions import list_actions
from rbqm.store.signals import get_signal, list_signals, sync_signals, update_signal
from tests.store.conftest import ADMIN, LEAD, MONITOR, VIEWER

SIGNAL = "kri0010@1003"


def _signals(rows: list[tuple[str, date, str, str]]) -> pl.DataFrame:
    """Derived signals: (signal_id, cut, severity, state) of study S, kind kri, site from the id."""
    return pl.DataFrame([{"signal_id": sid, "study_id": "S", "cut_date": cut, "kind": "kri",
                          "indicator": sid.split("@")[0], "site_id": sid.split("@")[1], "severity": sev,
                          "state": state, "first_cut": date(2025, 1, 1),
                          "consecutive_cuts": 0 if state == "resolved" else 1, "summary": f"{sid} {state}."}
                         for sid, cut, sev, state in rows], schema=SIGNAL_COLUMNS)


def _records(store, signal_id: str, study: str) -> list:
    with store.read() as session:
        return [r for r in audit.list_records(session, ADMIN) if r.object_id == f"{study}/{signal_id}"]


def test_workflow_new_planned_resolved_with_audit(store, people, late_signals, late_analysis):
    first_cut = late_signals.filter(pl.col("cut_date") == late_analysis.cut_dates[0])
    report = sync_signals(store, MONITOR, first_cut)
    assert SIGNAL in report.added and not report.reopened
    info = get_signal(store, VIEWER, SIGNAL)
    assert (info.status, info.first_cut, info.version) == ("new", late_analysis.cut_dates[0], 1)
    report = sync_signals(store, MONITOR, late_signals)  # all four cuts: the latest counts
    assert SIGNAL in report.refreshed
    assert get_signal(store, VIEWER, SIGNAL).last_cut == late_analysis.cut_dates[-1]
    planned = update_signal(store, MONITOR, SIGNAL, status="action_planned", owner=LEAD, due_date=date(2025, 8, 1),
                            comment="remote review of the oldest unentered pages", reason="site entry backlog",
                            expected_version=2)
    assert (planned.status, planned.owner, planned.due_date) == ("action_planned", LEAD, date(2025, 8, 1))
    assert planned.comments[0]["by"] == MONITOR
    done = update_signal(store, LEAD, SIGNAL, status="resolved", reason="backlog entered")
    assert done.status == "resolved"
    records = _records(store, SIGNAL, late_analysis.study_id)
    # setting action_planned without an action created one (audited under its own id)
    (action,) = list_actions(store, VIEWER, signal_id=SIGNAL)
    assert (action.action, action.description, action.owner, action.status, action.planned_cut) == (
        "other", "remote review of the oldest unentered pages", LEAD, "planned", late_analysis.cut_dates[-1])
    assert [r.action for r in records] == ["signal.add", "signal.refresh", "signal.update", "signal.update"]
    assert records[2].old_value["status"] == "new" and records[2].new_value["status"] == "action_planned"
    assert records[3].actor == LEAD and records[3].reason == "backlog entered"
    with store.read() as session:
        assert check_chain(session).records == len(audit.list_records(session, ADMIN))


def test_stale_version_conflicts(store, people):
    sync_signals(store, MONITOR, _signals([(SIGNAL, date(2025, 1, 1), "amber", "new")]))
    update_signal(store, MONITOR, SIGNAL, status="under_review", reason="looking")
    with pytest.raises(ConflictError, match="version 1"):
        update_signal(store, LEAD, SIGNAL, status="in_progress", reason="late", expected_version=1)


def test_closing_without_action_needs_a_justification(store, people):
    sync_signals(store, MONITOR, _signals([(SIGNAL, date(2025, 1, 1), "amber", "new")]))
    with pytest.raises(StoreError, match="new -> closed_no_action needs a justification"):
        update_signal(store, LEAD, SIGNAL, status="closed_no_action", reason="noise")
    assert get_signal(store, LEAD, SIGNAL).status == "new"
    info = update_signal(store, LEAD, SIGNAL, status="closed_no_action", reason="noise",
                         justification="the site's EDC outage is documented and over")
    assert (info.status, info.justification) == ("closed_no_action", "the site's EDC outage is documented and over")


def test_resolved_signal_that_reappears_is_reopened(store, people):
    c1, c2, c3 = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)
    sync_signals(store, MONITOR, _signals([(SIGNAL, c1, "amber", "new")]))
    update_signal(store, MONITOR, SIGNAL, status="under_review", reason="looking")
    update_signal(store, MONITOR, SIGNAL, status="resolved", comment="entered at the site", reason="fixed")
    sync_signals(store, MONITOR, _signals([(SIGNAL, c1, "amber", "new"), (SIGNAL, c2, "amber", "resolved")]))
    assert get_signal(store, MONITOR, SIGNAL).status == "resolved"
    derived = _signals([(SIGNAL, c1, "amber", "new"), (SIGNAL, c2, "amber", "resolved"), (SIGNAL, c3, "red", "new")])
    report = sync_signals(store, MONITOR, derived)
    assert report.reopened == (SIGNAL,)
    info = get_signal(store, MONITOR, SIGNAL)
    assert (info.status, info.severity, info.last_cut) == ("new", "red", c3)
    assert _records(store, SIGNAL, "S")[-1].reason == "reappeared at cut 2025-03-01"
    assert sync_signals(store, MONITOR, derived) == type(report)((), (), ())  # idempotent


def test_permission_table_for_signals():
    assert Action.SIGNAL_VIEW in PERMISSIONS[Role.SPONSOR_VIEWER]
    assert {r for r in Role if Action.SIGNAL_UPDATE in PERMISSIONS[r]} == {
        Role.ADMIN, Role.QUALITY_LEAD, Role.CENTRAL_MONITOR}


@pytest.mark.parametrize("change", ["sync", "status", "owner", "comment", "close"])
def test_sponsor_viewer_may_change_nothing(store, people, change):
    derived = _signals([(SIGNAL, date(2025, 1, 1), "amber", "new")])
    sync_signals(store, MONITOR, derived)
    with store.read() as session:
        before = check_chain(session)
    calls = {
        "sync": lambda: sync_signals(store, VIEWER, _signals([("kri0001@1001", date(2025, 1, 1), "red", "new")])),
        "status": lambda: update_signal(store, VIEWER, SIGNAL, status="resolved", reason="x"),
        "owner": lambda: update_signal(store, VIEWER, SIGNAL, owner=VIEWER, reason="x"),
        "comment": lambda: update_signal(store, VIEWER, SIGNAL, comment="hello", reason="x"),
        "close": lambda: update_signal(store, VIEWER, SIGNAL, status="closed_no_action", justification="j",
                                       reason="x"),
    }
    needed = "signal.close" if change == "close" else "signal.update"
    with pytest.raises(PermissionDenied, match=f"{VIEWER} \\(role sponsor_viewer\\) may not {needed}"):
        calls[change]()
    with store.read() as session:
        assert check_chain(session) == before
    assert [s.signal_id for s in list_signals(store, VIEWER)] == [SIGNAL]
    assert get_signal(store, VIEWER, SIGNAL).version == 1


@pytest.mark.parametrize("old, new, allowed", [
    ("new", "resolved", "under_review, action_planned or closed_no_action"),
    ("new", "in_progress", "under_review, action_planned or closed_no_action"),
    ("under_review", "new", "action_planned, resolved or closed_no_action"),
    ("resolved", "in_progress", "under_review"),
])
def test_a_transition_the_workflow_forbids_names_the_allowed_ones(store, people, old, new, allowed):
    sync_signals(store, MONITOR, _signals([(SIGNAL, date(2025, 1, 1), "amber", "new")]))
    path = {"new": [], "under_review": ["under_review"], "resolved": ["under_review", "resolved"]}[old]
    for status in path:
        update_signal(store, LEAD, SIGNAL, status=status, comment="step", reason="step")
    with store.read() as session:
        before = check_chain(session)
    with pytest.raises(StoreError) as caught:
        update_signal(store, LEAD, SIGNAL, status=new, comment="try", reason="try")
    assert str(caught.value) == f"signal S/{SIGNAL}: it is {old}: it may go to {allowed}, not {new}"
    assert get_signal(store, LEAD, SIGNAL).status == old
    with store.read() as session:
        assert check_chain(session) == before


def test_leaving_a_closed_status_needs_a_comment(store, people):
    sync_signals(store, MONITOR, _signals([(SIGNAL, date(2025, 1, 1), "amber", "new")]))
    update_signal(store, LEAD, SIGNAL, status="closed_no_action", justification="known EDC outage", reason="x")
    with pytest.raises(StoreError, match="closed_no_action -> under_review needs a comment"):
        update_signal(store, LEAD, SIGNAL, status="under_review", reason="reopen")
    info = update_signal(store, LEAD, SIGNAL, status="under_review", comment="the outage explains only May",
                         reason="reopen")
    assert info.status == "under_review" and info.comments[-1]["text"] == "the outage explains only May"


def test_only_admin_and_quality_lead_close_without_action(store, people):
    sync_signals(store, MONITOR, _signals([(SIGNAL, date(2025, 1, 1), "amber", "new")]))
    with pytest.raises(PermissionDenied, match=f"{MONITOR} \\(role central_monitor\\) may not signal.close: "
                                               "only admin, quality_lead may"):
        update_signal(store, MONITOR, SIGNAL, status="closed_no_action", justification="j", reason="x")
    records = _records(store, SIGNAL, "S")
    assert update_signal(store, ADMIN, SIGNAL, status="closed_no_action", justification="j",
                         reason="x").status == "closed_no_action"
    new = _records(store, SIGNAL, "S")[len(records):]
    assert [(r.action, r.actor, r.new_value["status"], r.new_value["justification"]) for r in new] == [
        ("signal.close", ADMIN, "closed_no_action", "j")]


def test_an_open_action_is_not_duplicated(store, people):
    sync_signals(store, MONITOR, _signals([(SIGNAL, date(2025, 1, 1), "amber", "new")]))
    update_signal(store, MONITOR, SIGNAL, status="action_planned", reason="plan")
    update_signal(store, MONITOR, SIGNAL, status="in_progress", reason="started")
    (action,) = list_actions(store, MONITOR, signal_id=SIGNAL)
    assert (action.description, action.status) == ("plan", "planned")
