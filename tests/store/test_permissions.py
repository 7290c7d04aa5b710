"""Permissions: the one table in code matches docs/store.md, and every forbidden action of every
role is refused by the service function itself, with nothing written."""

from __future__ import annotations

import re
import tempfile
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from rbqm.qtl import QTL_RESULT_COLUMNS
from rbqm.permissions import PERMISSIONS, Action, PermissionDenied, Role, allowed, parse_role, require
from rbqm.store import StoreError, audit, users
from rbqm.signals import SIGNAL_COLUMNS
from rbqm.store import qtl as store_qtl
from rbqm.store import risks as store_risks
from rbqm.store import signals as store_signals
from rbqm.store import snapshots as store_snapshots
from rbqm.store.audit import check_chain
from tests.store.conftest import ADMIN, LEAD, MONITOR, PEOPLE, VIEWER, password_of

DOCS = Path(__file__).parents[2] / "docs" / "store.md"

# One call per action, as `actor` on the account of the monitor "monty" (or a new account).
CALLS = {
    Action.USER_VIEW: lambda s, actor: users.list_users(s, actor),
    Action.USER_ADD: lambda s, actor: users.add_user(s, actor, "newbie", role="sponsor_viewer",
                                                     password=password_of("newbie"), reason="test"),
    Action.USER_DISABLE: lambda s, actor: users.disable_user(s, actor, MONITOR, reason="test"),
    Action.USER_ENABLE: lambda s, actor: users.enable_user(s, actor, MONITOR, reason="test"),
    Action.USER_SET_ROLE: lambda s, actor: users.set_role(s, actor, MONITOR, "quality_lead", reason="test"),
    Action.USER_SET_PASSWORD: lambda s, actor: users.set_password(s, actor, MONITOR,
                                                                  password=password_of("x"), reason="test"),
    Action.AUDIT_VIEW: lambda s, actor: audit.verify_chain(s, actor),
    Action.SIGNAL_VIEW: lambda s, actor: store_signals.list_signals(s, actor),
    Action.SIGNAL_UPDATE: lambda s, actor: store_signals.sync_signals(s, actor, pl.DataFrame(schema=SIGNAL_COLUMNS)),
    Action.SIGNAL_CLOSE: lambda s, actor: _close_signal(s, actor),
    Action.QTL_VIEW: lambda s, actor: store_qtl.list_breaches(s, actor, "S1"),
    Action.QTL_SET_LIMIT: lambda s, actor: store_qtl.set_limit(s, actor, "S1", "qtl0001", limit=0.3,
                                                               secondary_limit=0.22, rationale="test"),
    Action.QTL_EVALUATE: lambda s, actor: store_qtl.sync_breaches(s, actor, "S1", pl.DataFrame(
        schema=QTL_RESULT_COLUMNS)),
    Action.QTL_SIGN_OFF: lambda s, actor: _sign_off(s, actor),
    Action.RISK_VIEW: lambda s, actor: store_risks.list_risks(s, actor, "S1"),
    Action.RISK_EDIT: lambda s, actor: store_risks.import_template(s, actor, "S1"),
    Action.RISK_REVIEW: lambda s, actor: _decide_risk(s, actor),
    Action.DATA_INGEST: lambda s, actor: _ingest(s, actor),
}


def _sign_off(session, actor):
    """The admin opens and evaluates a breach; ``actor`` signs it off (all in the caller's transaction)."""
    breach = pl.DataFrame([{"study_id": "S1", "cut_date": date(2025, 1, 1), "qtl_id": "qtl0002", "numerator": 9.0,
                            "denominator": 100.0, "estimate": 0.09, "lower": 0.04, "upper": 0.16, "limit": 0.06,
                            "secondary_limit": 0.03, "status": "tolerance limit breached",
                            "probability_exceed": 0.9, "method": "one_sided_proportion", "note": None}],
                          schema=QTL_RESULT_COLUMNS)
    (breach_id,) = store_qtl.sync_breaches(session, ADMIN, "S1", breach)
    store_qtl.evaluate_breach(session, ADMIN, breach_id, systemic=False, root_cause="test", capa="test",
                              reason="test")
    return store_qtl.sign_off_breach(session, actor, breach_id, reason="test")


def _ingest(session, actor):
    """``actor`` ingests a one-subject export into a data directory of its own (caller's transaction)."""
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export"
        export.mkdir()
        (export / "dm.csv").write_text("STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,RFSTDTC,ARMCD\n"
                                       "S1,S1-1,1,FRA,2025-01-02,2025-01-09,A\n")
        return store_snapshots.ingest_snapshot(session, actor, export, "S1", root=Path(tmp) / "data", reason="test")


def _close_signal(session, actor):
    """The admin records a signal; ``actor`` closes it without action (all in the caller's transaction)."""
    store_signals.sync_signals(session, ADMIN, pl.DataFrame([{
        "signal_id": "kri0010@1003", "study_id": "S1", "cut_date": date(2025, 1, 1), "kind": "kri",
        "indicator": "kri0010", "site_id": "1003", "severity": "amber", "state": "new",
        "first_cut": date(2025, 1, 1), "consecutive_cuts": 1, "summary": "test."}], schema=SIGNAL_COLUMNS))
    return store_signals.update_signal(session, actor, "kri0010@1003", status="closed_no_action",
                                       justification="test", reason="test")


def _decide_risk(session, actor):
    """The admin starts the register from the template; ``actor`` accepts a proposal (caller's transaction)."""
    store_risks.import_template(session, ADMIN, "S1")
    return store_risks.decide_proposal(session, actor, "S1", "risk0001", cut_date=date(2025, 1, 1),
                                       proposed_likelihood=3, evidence="test", accept=True, reason="test")


FORBIDDEN = [(role, action) for role in Role for action in Action if action not in PERMISSIONS[role]]
PERMITTED = [(role, action) for role in Role for action in Action if action in PERMISSIONS[role]]


def test_every_action_has_a_call_here():
    assert set(CALLS) == set(Action)


def test_roles_are_the_four_of_the_issue():
    assert [str(role) for role in Role] == ["admin", "quality_lead", "central_monitor", "sponsor_viewer"]


def test_sponsor_viewer_is_read_only():
    assert {str(action).rsplit(".", 1)[1] for action in PERMISSIONS[Role.SPONSOR_VIEWER]} <= {"view"}


def test_docs_table_is_the_code_table():
    """docs/store.md's permission table lists exactly the actions and roles of rbqm.permissions."""
    rows = [line for line in DOCS.read_text().splitlines() if re.match(r"\| `[a-z_]+\.[a-z_]+` \|", line)]
    header = next(line for line in DOCS.read_text().splitlines() if line.startswith("| Action |"))
    roles = [cell.strip() for cell in header.strip("|").split("|")][2:]
    assert roles == [str(role) for role in Role]
    documented = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        action = Action(cells[0].strip("`"))
        marks = zip(roles, cells[2:], strict=True)
        documented[action] = {Role(role) for role, mark in marks if mark == "yes"}
    assert documented == {action: {role for role in Role if allowed(role, action)} for action in Action}


@pytest.mark.parametrize("role, action", FORBIDDEN, ids=[f"{r}-{a}" for r, a in FORBIDDEN])
def test_forbidden_action_is_refused_and_writes_nothing(store, people, role, action):
    actor = people[role]
    with store.read() as session:
        before = check_chain(session)
        accounts = {user.username: user for user in users.list_users(session, ADMIN)}
    with pytest.raises(PermissionDenied) as caught, store.write() as session:
        CALLS[action](session, actor)
    assert str(caught.value) == (f"{actor} (role {role}) may not {action}: only "
                                 f"{', '.join(r for r in Role if allowed(r, action))} may")
    with store.read() as session:
        assert check_chain(session) == before
        assert {user.username: user for user in users.list_users(session, ADMIN)} == accounts


@pytest.mark.parametrize("role, action", PERMITTED, ids=[f"{r}-{a}" for r, a in PERMITTED])
def test_permitted_action_succeeds(store, people, role, action):
    if action is Action.USER_ENABLE:
        with store.write() as session:
            users.disable_user(session, ADMIN, MONITOR, reason="to enable again")
    with store.write() as session:
        CALLS[action](session, people[role])


@pytest.mark.parametrize("action", list(Action))
def test_disabled_and_unknown_actors_may_do_nothing(store, people, action):
    with store.write() as session:
        users.disable_user(session, ADMIN, LEAD, reason="left")
    with pytest.raises(PermissionDenied, match=f"{LEAD} is disabled and may not {action}"), \
            store.write() as session:
        CALLS[action](session, LEAD)
    with pytest.raises(PermissionDenied, match="'mallory' is not a user of this store"), \
            store.write() as session:
        CALLS[action](session, "mallory")


def test_first_account_must_be_admin_and_later_ones_need_an_admin(store):
    with pytest.raises(StoreError, match="the first account must be an admin"), store.write() as session:
        users.add_user(session, "root", VIEWER, role="sponsor_viewer", password=password_of(VIEWER))
    with store.write() as session:
        users.add_user(session, "root", ADMIN, role="admin", password=password_of(ADMIN))
    with pytest.raises(PermissionDenied, match="'root' is not a user"), store.write() as session:
        users.add_user(session, "root", "eve", role="admin", password=password_of("eve"))


def test_parse_role_accepts_spoken_forms():
    assert parse_role("Central monitor") is Role.CENTRAL_MONITOR
    assert parse_role("sponsor-viewer") is Role.SPONSOR_VIEWER
    with pytest.raises(ValueError, match="choose one of admin, quality_lead"):
        parse_role("superuser")


def test_require_names_role_and_action():
    expected = r"vera \(role sponsor_viewer\) may not user.add: only admin may"
    with pytest.raises(PermissionDenied, match=expected):
        require("vera", "sponsor_viewer", Action.USER_ADD)
    assert PEOPLE[Role.SPONSOR_VIEWER] == VIEWER
