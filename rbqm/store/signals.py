"""The signal workflow: each signal's status, owner, due date, justification and comments.

:func:`sync_signals` records the signals of a fresh analysis (``rbqm.signals.derive_signals``):
new ones are added with status ``new``; a ``resolved`` signal that is flagged again ("new" at a
later cut) is reopened with the reason "reappeared at cut X" (``signal.reappearance`` of the
workflow file). :func:`update_signal` changes the status, owner or due date, or adds a comment.
Which status may follow which, and what a change needs (a justification, a comment), is
``key_risk_indicators/signal_workflow.yaml`` (``rbqm.signal_workflow``); entering
``action_planned`` or ``in_progress`` without an open linked action creates one
(``rbqm.store.actions``). Every change checks ``rbqm.permissions`` (``signal.update``, or the
permission the target status names, e.g. ``signal.close``; reading needs ``signal.view``) and
is recorded with ``record_change`` in the same transaction. ``expected_version`` works as for
accounts: if the signal changed since the caller read it, a ``ConflictError`` and nothing written.

Each function takes a :class:`~rbqm.store.Store` (and runs its own transaction) or an open
session (``store.write()`` / ``store.read()``: the caller's transaction, as in ``users``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from rbqm.permissions import Action
from rbqm.signal_workflow import load_workflow
from rbqm.store._auth import authorize
from rbqm.store.audit import record_change
from rbqm.store.engine import Store, check_version, in_session
from rbqm.store.errors import ConflictError, NotFoundError, StoreError
from rbqm.store.models import SIGNAL_STATUSES, Signal, User, utc_now

__all__ = ["SIGNAL_STATUSES", "SignalInfo", "SyncReport", "sync_signals", "update_signal", "list_signals",
           "get_signal", "find_signal", "move_signal"]


@dataclass(frozen=True)
class SignalInfo:
    """A signal's workflow as the product shows it."""

    study_id: str
    signal_id: str
    kind: str
    indicator: str
    site_id: str
    severity: str
    status: str
    owner: str | None
    due_date: date | None
    justification: str | None
    comments: tuple[dict[str, str], ...]
    first_cut: date
    last_cut: date
    updated_at: datetime
    version: int

    @classmethod
    def from_row(cls, row: Signal) -> SignalInfo:
        return cls(row.study_id, row.signal_id, row.kind, row.indicator, row.site_id, row.severity, row.status,
                   row.owner, row.due_date, row.justification, tuple(json.loads(row.comments)), row.first_cut,
                   row.last_cut, row.updated_at, row.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (dates in ISO 8601)."""
        return {"study_id": self.study_id, "signal_id": self.signal_id, "kind": self.kind,
                "indicator": self.indicator, "site_id": self.site_id, "severity": self.severity,
                "status": self.status, "owner": self.owner,
                "due_date": self.due_date.isoformat() if self.due_date else None,
                "justification": self.justification, "comments": list(self.comments),
                "first_cut": self.first_cut.isoformat(), "last_cut": self.last_cut.isoformat(),
                "updated_at": self.updated_at.isoformat(), "version": self.version}


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync_signals` did: signal ids added, reopened and refreshed (seen at a later cut)."""

    added: tuple[str, ...]
    reopened: tuple[str, ...]
    refreshed: tuple[str, ...]


def _audited(row: Signal) -> dict[str, Any]:
    return {"status": row.status, "owner": row.owner, "due_date": row.due_date.isoformat() if row.due_date else None,
            "justification": row.justification, "severity": row.severity, "last_cut": row.last_cut.isoformat()}


def sync_signals(store: Store | Session, actor: str, derived: pl.DataFrame) -> SyncReport:
    """Record the signals flagged at each study's latest cut of ``derived`` (``derive_signals``).

    Adds signals not in the store yet (status ``new``); reopens a ``resolved`` signal flagged
    again at a later cut (status back to ``new``, reason "reappeared at cut X"); refreshes the
    severity and last cut of the others. Signals closed without action stay closed. Needs
    ``signal.update``; one transaction, one audit record per change.
    """
    latest = derived.filter(pl.col("cut_date") == pl.col("cut_date").max().over("study_id"),
                            pl.col("state") != "resolved")
    reappearance = load_workflow().signal.reappearance
    added, reopened, refreshed = [], [], []
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.SIGNAL_UPDATE)
        now = utc_now()
        for row in latest.iter_rows(named=True):  # one ORM object per signal: a few dozen
            cut: date = row["cut_date"]
            where = (Signal.study_id == row["study_id"], Signal.signal_id == row["signal_id"])
            stored = session.scalar(select(Signal).where(*where).with_for_update())
            if stored is None:
                stored = Signal(study_id=row["study_id"], signal_id=row["signal_id"], kind=row["kind"],
                                indicator=row["indicator"], site_id=row["site_id"], severity=row["severity"],
                                status="new", comments="[]", first_cut=row["first_cut"], last_cut=cut,
                                created_at=now, updated_at=now)
                session.add(stored)
                session.flush()
                record_change(session, actor=actor, action="signal.add", object_type="signal",
                              object_id=f"{row['study_id']}/{row['signal_id']}", old=None, new=_audited(stored),
                              reason=f"flagged at cut {cut.isoformat()}: {row['summary']}")
                added.append(row["signal_id"])
                continue
            if cut <= stored.last_cut:
                continue  # this cut was recorded already
            old = _audited(stored)
            reason = f"seen at cut {cut.isoformat()} ({row['state']})"
            if stored.status in reappearance.from_ and row["state"] == "new":
                stored.status, reason = reappearance.to, f"reappeared at cut {cut.isoformat()}"
                reopened.append(row["signal_id"])
            else:
                refreshed.append(row["signal_id"])
            stored.severity, stored.last_cut, stored.updated_at = row["severity"], cut, now
            session.flush()
            record_change(session, actor=actor, action="signal.reopen" if reason.startswith("reappeared")
                          else "signal.refresh", object_type="signal",
                          object_id=f"{stored.study_id}/{stored.signal_id}", old=old, new=_audited(stored),
                          reason=reason)
    return SyncReport(tuple(added), tuple(reopened), tuple(refreshed))


def find_signal(session: Session, signal_id: str, study_id: str | None, *, lock: bool = False) -> Signal:
    """The stored signal (locked for update when ``lock``); the caller checked permission.

    Raises ``NotFoundError``, or ``StoreError`` when ``study_id`` is None and several studies have it.
    """
    query = select(Signal).where(Signal.signal_id == signal_id)
    if study_id is not None:
        query = query.where(Signal.study_id == study_id)
    rows = session.scalars(query.with_for_update() if lock else query).all()
    if not rows:
        raise NotFoundError(f"no signal {signal_id!r}{f' in study {study_id}' if study_id else ''} in the store "
                            "(rbqm signals list)")
    if len(rows) > 1:
        raise StoreError(f"signal {signal_id!r} exists in several studies "
                         f"({', '.join(sorted(r.study_id for r in rows))}): give the study")
    return rows[0]


def list_signals(store: Store | Session, actor: str, *, study_id: str | None = None) -> list[SignalInfo]:
    """Every signal's workflow (of one study when given), by study and signal id (needs ``signal.view``)."""
    with in_session(store, write=False) as session:
        authorize(session, actor, Action.SIGNAL_VIEW)
        query = select(Signal).order_by(Signal.study_id, Signal.signal_id)
        if study_id is not None:
            query = query.where(Signal.study_id == study_id)
        return [SignalInfo.from_row(row) for row in session.scalars(query)]


def get_signal(store: Store | Session, actor: str, signal_id: str, *, study_id: str | None = None) -> SignalInfo:
    """One signal's workflow (needs ``signal.view``)."""
    with in_session(store, write=False) as session:
        authorize(session, actor, Action.SIGNAL_VIEW)
        return SignalInfo.from_row(find_signal(session, signal_id, study_id))


def update_signal(store: Store | Session, actor: str, signal_id: str, *, reason: str, study_id: str | None = None,
                  status: str | None = None, owner: str | None = None, due_date: date | None = None,
                  justification: str | None = None, comment: str | None = None,
                  expected_version: int | None = None) -> SignalInfo:
    """Change a signal's status, owner or due date, and/or add a comment (needs ``signal.update``).

    ``status`` must be one the workflow file allows after the current one, with what it needs
    (``justification`` for ``closed_no_action``, a ``comment`` for some); entering a status with
    its own permission (``closed_no_action``: ``signal.close``) needs that permission instead.
    Entering ``action_planned`` or ``in_progress`` without an open linked action creates one
    (action ``other``, described by the comment, else the reason; owner and due date of the
    signal). ``owner`` must be an active account. ``reason`` is recorded in the audit trail. A
    change to nothing new and no comment writes nothing.

    Raises
    ------
    PermissionDenied, NotFoundError, ConflictError (``expected_version`` differs), StoreError (invalid
    value, or a change the workflow does not allow: the message names the allowed next statuses).
    """
    from rbqm.store.actions import insert_action, open_actions  # actions import this module

    if not reason or not reason.strip():
        raise StoreError("a reason is required: it is recorded in the audit trail")
    flow = load_workflow()
    if status is not None and status not in flow.signal.statuses:
        raise StoreError(f"unknown status {status!r}: choose one of {', '.join(SIGNAL_STATUSES)}")
    permission = flow.signal.statuses[status].permission if status is not None else Action.SIGNAL_UPDATE
    justification = (justification or "").strip() or None
    comment = (comment or "").strip() or None
    with in_session(store, write=True) as session:
        authorize(session, actor, permission)
        row = find_signal(session, signal_id, study_id, lock=True)
        name = f"{row.study_id}/{row.signal_id}"
        check_version(f"signal {name}", row.version, expected_version)
        if owner is not None and session.scalar(select(User).where(User.username == owner,
                                                                   User.active.is_(True))) is None:
            raise StoreError(f"owner {owner!r} is not an active account of this store (rbqm user list)")
        if status is not None and status != row.status:
            given = {k for k, v in (("justification", justification), ("comment", comment)) if v}
            if problem := flow.transition_problem("signal", row.status, status, given=given):
                raise StoreError(f"signal {name}: {problem}")
        changes = {"status": status, "owner": owner, "due_date": due_date, "justification": justification}
        changes = {k: v for k, v in changes.items() if v is not None and getattr(row, k) != v}
        if not changes and not comment:
            return SignalInfo.from_row(row)
        old = _audited(row)
        for key, value in changes.items():
            setattr(row, key, value)
        now = utc_now()
        if comment:
            row.comments = json.dumps([*json.loads(row.comments),
                                       {"at": now.isoformat(), "by": actor, "text": comment}])
        row.updated_at = now
        try:
            session.flush()
        except StaleDataError as exc:
            raise ConflictError(f"signal {name} was changed by someone else meanwhile; nothing was written") from exc
        new = {**_audited(row), **({"comment": comment} if comment else {})}
        record_change(session, actor=actor, action=permission, object_type="signal", object_id=name,
                      old=old, new=new, reason=reason)
        needed = flow.signal.statuses[row.status].open_action
        if "status" in changes and needed and not open_actions(session, row):
            insert_action(session, actor, row, action="other", description=comment or reason, owner=row.owner,
                          due_date=row.due_date, status=needed,
                          reason=f"signal {name} set to {row.status} without an open action: {reason}")
        return SignalInfo.from_row(row)


def move_signal(session: Session, actor: str, row: Signal, status: str, *, reason: str) -> None:
    """Set ``row``'s status as a consequence of its linked actions (the caller checked permission
    and the workflow's ``moves_signal``), with one audit record."""
    old = _audited(row)
    row.status, row.updated_at = status, utc_now()
    session.flush()
    record_change(session, actor=actor, action=Action.SIGNAL_UPDATE, object_type="signal",
                  object_id=f"{row.study_id}/{row.signal_id}", old=old, new=_audited(row), reason=reason)
