"""rbqm.store.actions on SQLite and PostgreSQL: linked actions move their signal, follow the workflow,
are audited and permitted by role; the baselines of outcome tracking."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from rbqm.permissions import PermissionDenied
from rbqm.store import ConflictError, NotFoundError, StoreError, audit
from rbqm.store.actions import action_baselines, add_action, list_actions, update_action
from rbqm.store.audit import check_chain
from rbqm.store.signals import get_signal, sync_signals, update_signal
from tests.signals.conftest import derived_signals
from tests.store.conftest import ADMIN, LEAD, MONITOR, VIEWER

SIGNAL = "kri0010@1003"
C1, C2, C3 = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)


def _changes(store, since: int = 0) -> list[tuple[str, str, str, dict | None, dict | None]]:
    with store.read() as session:
        return [(r.action, r.actor, r.object_id, r.old_value, r.new_value)
                for r in audit.list_records(session, ADMIN)[since:]]


def _count(store) -> int:
    with store.read() as session:
        return check_chain(session).records


@pytest.fixture
def synced(store, people):
    sync_signals(store, MONITOR, derived_signals([(SIGNAL, C1, "amber", "new"), ("kri0001@1001", C1, "red", "new")]))
    return store


def test_adding_an_action_plans_the_signal_with_audit(synced):
    before = _count(synced)
    info = add_action(synced, MONITOR, SIGNAL, action="remote_review", owner=LEAD, due_date=date(2025, 2, 15),
                      reason="oldest pages unentered")
    assert (info.id, info.action, info.description, info.owner, info.status, info.planned_cut, info.created_by) == (
        1, "remote_review", "Remote data review of the named subjects and forms", LEAD, "planned", C1, MONITOR)
    assert get_signal(synced, VIEWER, SIGNAL).status == "action_planned"
    changes = _changes(synced, before)
    assert [(c[0], c[1], c[2]) for c in changes] == [("signal_action.add", MONITOR, f"S/{SIGNAL}#1"),
                                                      ("signal.update", MONITOR, f"S/{SIGNAL}")]
    assert changes[0][3] is None and changes[0][4]["due_date"] == "2025-02-15"
    assert (changes[1][3]["status"], changes[1][4]["status"]) == ("new", "action_planned")
    with synced.read() as session:
        reason = audit.list_records(session, ADMIN)[-1].reason
    assert reason == "action #1 is planned: oldest pages unentered"
    # a second action leaves an action_planned signal where it is
    second = add_action(synced, LEAD, SIGNAL, description="call the site coordinator", reason="backlog")
    assert (second.id, second.action) == (2, "other")
    assert [a.id for a in list_actions(synced, VIEWER, signal_id=SIGNAL)] == [1, 2]
    assert get_signal(synced, VIEWER, SIGNAL).version == 2


def test_an_action_moves_its_signal_along_and_needs_an_outcome_to_finish(synced):
    add_action(synced, MONITOR, SIGNAL, action="remote_review", reason="plan")
    started = update_action(synced, MONITOR, 1, status="in_progress", reason="call booked", expected_version=1)
    assert started.status == "in_progress" and get_signal(synced, VIEWER, SIGNAL).status == "in_progress"
    with pytest.raises(StoreError, match="in_progress -> done needs an outcome note"):
        update_action(synced, MONITOR, 1, status="done", reason="done")
    with pytest.raises(ConflictError, match="you read version 1, the store has version 2"):
        update_action(synced, MONITOR, 1, status="done", outcome="x", reason="done", expected_version=1)
    done = update_action(synced, MONITOR, 1, status="done", outcome="38 pages entered", reason="done")
    assert (done.status, done.outcome, done.version) == ("done", "38 pages entered", 3)
    assert get_signal(synced, VIEWER, SIGNAL).status == "in_progress"  # resolving the signal is a decision
    with pytest.raises(StoreError) as caught:
        update_action(synced, MONITOR, 1, status="cancelled", outcome="x", reason="x")
    assert str(caught.value) == f"action S/{SIGNAL}#1: it is done: it may go to in_progress, not cancelled"
    last = _changes(synced)[-1]
    assert (last[0], last[3]["status"], last[4]["status"], last[4]["outcome"]) == (
        "signal_action.update", "in_progress", "done", "38 pages entered")


def test_invalid_actions_are_refused_with_a_message(synced):
    before = _count(synced)
    with pytest.raises(StoreError, match="unknown action 'audit_everything': choose one of remote_review, "):
        add_action(synced, MONITOR, SIGNAL, action="audit_everything", reason="x")
    with pytest.raises(StoreError, match="an action 'other' needs a description"):
        add_action(synced, MONITOR, SIGNAL, reason="x")
    with pytest.raises(StoreError, match="owner 'nobody' is not an active account"):
        add_action(synced, MONITOR, SIGNAL, action="capa", owner="nobody", reason="x")
    with pytest.raises(StoreError, match="a reason is required"):
        add_action(synced, MONITOR, SIGNAL, action="capa", reason=" ")
    with pytest.raises(NotFoundError, match="no signal 'kri0099@1'"):
        add_action(synced, MONITOR, "kri0099@1", action="capa", reason="x")
    with pytest.raises(NotFoundError, match="no action #7"):
        update_action(synced, MONITOR, 7, status="done", outcome="x", reason="x")
    update_signal(synced, LEAD, SIGNAL, status="closed_no_action", justification="EDC outage", reason="x")
    with pytest.raises(StoreError, match=f"signal S/{SIGNAL} is closed_no_action: reopen it"):
        add_action(synced, MONITOR, SIGNAL, action="capa", reason="x")
    assert _count(synced) == before + 1  # only the closing


@pytest.mark.parametrize("change", ["add", "update"])
def test_sponsor_viewer_may_read_but_not_plan(synced, change):
    add_action(synced, MONITOR, SIGNAL, action="remote_review", reason="plan")
    before = _count(synced)
    calls = {"add": lambda: add_action(synced, VIEWER, SIGNAL, action="capa", reason="x"),
             "update": lambda: update_action(synced, VIEWER, 1, status="cancelled", outcome="x", reason="x")}
    with pytest.raises(PermissionDenied, match=f"{VIEWER} \\(role sponsor_viewer\\) may not signal.update"):
        calls[change]()
    assert _count(synced) == before
    assert [(a.id, a.status) for a in list_actions(synced, VIEWER)] == [(1, "planned")]


def test_overdue_means_open_and_past_due(synced):
    today = date(2025, 6, 1)
    add_action(synced, MONITOR, SIGNAL, action="capa", due_date=today - timedelta(days=1), reason="x")
    add_action(synced, MONITOR, "kri0001@1001", action="capa", due_date=today, reason="x")
    late, on_time = list_actions(synced, VIEWER)[::-1]
    assert late.signal_id == SIGNAL and late.overdue(today) and not on_time.overdue(today)
    done = update_action(synced, MONITOR, late.id, status="done", outcome="ok", reason="x")
    assert not done.overdue(today)


def test_baselines_come_from_actions_and_from_the_status_history(synced):
    add_action(synced, MONITOR, SIGNAL, action="remote_review", reason="plan")             # planned at C1
    sync_signals(synced, MONITOR, derived_signals([(SIGNAL, C2, "red", "persisting"),
                                                   ("kri0001@1001", C2, "red", "persisting")]))
    add_action(synced, MONITOR, SIGNAL, action="capa", reason="second")                     # at C2: not earlier
    # a signal set to action_planned whose (created) action is then cancelled still counts, from its status
    update_signal(synced, MONITOR, "kri0001@1001", status="action_planned", reason="plan")
    (created,) = list_actions(synced, VIEWER, signal_id="kri0001@1001")
    update_action(synced, MONITOR, created.id, status="cancelled", outcome="merged into the CAPA", reason="x")
    sync_signals(synced, MONITOR, derived_signals([("kri0005@1002", C3, "amber", "new")]))  # never acted on
    baselines = action_baselines(synced, VIEWER, study_id="S")
    assert baselines.rows() == [("S", "kri0001@1001", C2, "status"), ("S", SIGNAL, C1, "linked action")]
    assert action_baselines(synced, VIEWER, study_id="T").is_empty()
