"""Actions linked to signals: what is planned (an action of ``key_risk_indicators/actions.yaml``, or
``other`` with free text), who owns it, by when, its status and outcome note, audited.

:func:`add_action` plans one for a signal and, as the workflow file's ``actions.moves_signal``
says, moves the signal (``new`` or ``under_review`` -> ``action_planned``); :func:`update_action`
changes its status (only along ``actions.statuses``: ``done`` and ``cancelled`` need an outcome
note), owner or due date, and moves the signal along (``in_progress``). An action can be added
to a signal that is not closed (not ``resolved`` or ``closed_no_action``). Changing needs
``signal.update``, reading ``signal.view``; every change is one audit record (object type
``signal_action``, id ``STUDY/SIGNAL#N``) in the same transaction. :func:`action_baselines`
gives the cut at which each signal was first acted on, for ``rbqm.outcomes``.

Each function takes a :class:`~rbqm.store.Store` (and runs its own transaction) or an open session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from rbqm.permissions import Action
from rbqm.signal_workflow import load_workflow
from rbqm.store._auth import authorize
from rbqm.store.audit import record_change
from rbqm.store.engine import Store, check_version, in_session
from rbqm.store.errors import NotFoundError, StoreError
from rbqm.store.models import ACTION_STATUSES, AuditRecord, Signal, SignalAction, User, utc_now
from rbqm.store.signals import find_signal, move_signal

__all__ = ["ACTION_STATUSES", "OTHER", "BASELINE_COLUMNS", "ActionInfo", "add_action", "update_action",
           "list_actions", "open_actions", "insert_action", "action_baselines"]

OTHER = "other"
"""The action id of a free-text action (its description says what)."""

BASELINE_COLUMNS: dict[str, pl.DataType] = {"study_id": pl.String(), "signal_id": pl.String(),
                                            "planned_cut": pl.Date(), "source": pl.String()}


@dataclass(frozen=True)
class ActionInfo:
    """A linked action as the product shows it."""

    id: int
    study_id: str
    signal_id: str
    action: str
    description: str
    owner: str | None
    due_date: date | None
    status: str
    outcome: str | None
    planned_cut: date
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_row(cls, row: SignalAction) -> ActionInfo:
        return cls(row.id, row.study_id, row.signal_id, row.action, row.description, row.owner, row.due_date,
                   row.status, row.outcome, row.planned_cut, row.created_by, row.created_at, row.updated_at,
                   row.version)

    def overdue(self, today: date) -> bool:
        """Open (planned or in progress) with its due date before ``today``."""
        return (self.due_date is not None and self.due_date < today
                and self.status in load_workflow().actions.open)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (dates in ISO 8601)."""
        return {"id": self.id, "study_id": self.study_id, "signal_id": self.signal_id, "action": self.action,
                "description": self.description, "owner": self.owner,
                "due_date": self.due_date.isoformat() if self.due_date else None, "status": self.status,
                "outcome": self.outcome, "planned_cut": self.planned_cut.isoformat(), "created_by": self.created_by,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "version": self.version}


def _name(row: SignalAction) -> str:
    return f"{row.study_id}/{row.signal_id}#{row.id}"


def _audited(row: SignalAction) -> dict[str, Any]:
    return {"action": row.action, "description": row.description, "owner": row.owner,
            "due_date": row.due_date.isoformat() if row.due_date else None, "status": row.status,
            "outcome": row.outcome, "planned_cut": row.planned_cut.isoformat()}


def _check_owner(session: Session, owner: str | None) -> None:
    if owner is not None and session.scalar(select(User).where(User.username == owner,
                                                               User.active.is_(True))) is None:
        raise StoreError(f"owner {owner!r} is not an active account of this store (rbqm user list)")


def _catalogue() -> dict[str, str]:
    from rbqm.actions import load_actions  # the engine's actions file (a heavier import)

    return load_actions().actions


def open_actions(session: Session, signal: Signal) -> list[SignalAction]:
    """The signal's actions that are open (``actions.open`` of the workflow file: planned, in progress)."""
    return list(session.scalars(select(SignalAction).where(
        SignalAction.study_id == signal.study_id, SignalAction.signal_id == signal.signal_id,
        SignalAction.status.in_(load_workflow().actions.open))))


def insert_action(session: Session, actor: str, signal: Signal, *, action: str, description: str,
                  owner: str | None, due_date: date | None, status: str, reason: str) -> SignalAction:
    """Store one action for ``signal`` (planned at its last cut) with its audit record; the caller
    checked permission and values."""
    now = utc_now()
    row = SignalAction(study_id=signal.study_id, signal_id=signal.signal_id, action=action,
                       description=description, owner=owner, due_date=due_date, status=status,
                       planned_cut=signal.last_cut, created_by=actor, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    record_change(session, actor=actor, action="signal_action.add", object_type="signal_action",
                  object_id=_name(row), old=None, new=_audited(row), reason=reason)
    return row


def _follow(session: Session, actor: str, row: SignalAction, *, reason: str) -> None:
    """Move the action's signal as the workflow's ``moves_signal`` says for the action's status."""
    signal = find_signal(session, row.signal_id, row.study_id, lock=True)
    if target := load_workflow().signal_move(row.status, signal.status):
        move_signal(session, actor, signal, target, reason=f"action #{row.id} is {row.status}: {reason}")


def add_action(store: Store | Session, actor: str, signal_id: str, *, reason: str, study_id: str | None = None,
               action: str = OTHER, description: str | None = None, owner: str | None = None,
               due_date: date | None = None) -> ActionInfo:
    """Plan an action for a signal (needs ``signal.update``); the signal moves to ``action_planned``
    when it was ``new`` or ``under_review``.

    Parameters
    ----------
    action
        An action id of ``key_risk_indicators/actions.yaml`` (e.g. ``remote_review``), or ``other``.
    description
        What exactly (which subjects, pages); required for ``other``, else the catalogue's label.
    owner, due_date
        An active account, and the date it is due (overdue after it while open).
    reason
        Recorded in the audit trail.

    Raises
    ------
    PermissionDenied, NotFoundError, StoreError (unknown action, inactive owner, closed signal).

    Examples
    --------
    >>> from datetime import date
    >>> import polars as pl
    >>> from rbqm.signals import SIGNAL_COLUMNS
    >>> from rbqm.store import open_store, users
    >>> from rbqm.store.signals import get_signal, sync_signals
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = users.add_user(session, "root", "ada", role="admin", password="a long passphrase")
    >>> derived = pl.DataFrame([{"signal_id": "kri0010@1003", "study_id": "S", "cut_date": date(2025, 3, 1),
    ...     "kind": "kri", "indicator": "kri0010", "site_id": "1003", "severity": "red", "state": "new",
    ...     "first_cut": date(2025, 3, 1), "consecutive_cuts": 1, "summary": "Late entry."}], schema=SIGNAL_COLUMNS)
    >>> _ = sync_signals(store, "ada", derived)
    >>> planned = add_action(store, "ada", "kri0010@1003", action="remote_review", owner="ada",
    ...                      due_date=date(2025, 4, 1), reason="late entry at 1003")
    >>> planned.status, planned.planned_cut, get_signal(store, "ada", "kri0010@1003").status
    ('planned', datetime.date(2025, 3, 1), 'action_planned')
    """
    if not reason or not reason.strip():
        raise StoreError("a reason is required: it is recorded in the audit trail")
    catalogue = _catalogue()
    if action != OTHER and action not in catalogue:
        raise StoreError(f"unknown action {action!r}: choose one of {', '.join(catalogue)} or {OTHER} "
                         "(with a description)")
    description = (description or "").strip() or catalogue.get(action)
    if not description:
        raise StoreError(f"an action '{OTHER}' needs a description of what is to be done (--description)")
    flow = load_workflow()
    accepting = {s for move in flow.actions.moves_signal for s in move.from_}
    accepting |= {name for name, rule in flow.signal.statuses.items() if rule.open_action}
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.SIGNAL_UPDATE)
        signal = find_signal(session, signal_id, study_id, lock=True)
        if signal.status not in accepting:
            raise StoreError(f"signal {signal.study_id}/{signal.signal_id} is {signal.status}: reopen it "
                             f"(status under_review, with a comment) before planning an action")
        _check_owner(session, owner)
        status = flow.actions.open[0]
        row = insert_action(session, actor, signal, action=action, description=description, owner=owner,
                            due_date=due_date, status=status, reason=reason)
        _follow(session, actor, row, reason=reason)
        return ActionInfo.from_row(row)


def update_action(store: Store | Session, actor: str, action_id: int, *, reason: str, status: str | None = None,
                  owner: str | None = None, due_date: date | None = None, outcome: str | None = None,
                  expected_version: int | None = None) -> ActionInfo:
    """Change a linked action's status (as the workflow file allows), owner, due date or outcome note
    (needs ``signal.update``); its signal follows (``in_progress``).

    Raises
    ------
    PermissionDenied, NotFoundError, ConflictError (``expected_version`` differs), StoreError (a
    change the workflow does not allow: the message names the allowed next statuses).
    """
    if not reason or not reason.strip():
        raise StoreError("a reason is required: it is recorded in the audit trail")
    flow = load_workflow()
    if status is not None and status not in flow.actions.statuses:
        raise StoreError(f"unknown action status {status!r}: choose one of {', '.join(ACTION_STATUSES)}")
    outcome = (outcome or "").strip() or None
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.SIGNAL_UPDATE)
        row = session.scalar(select(SignalAction).where(SignalAction.id == action_id).with_for_update())
        if row is None:
            raise NotFoundError(f"no action #{action_id} in the store (rbqm actions list)")
        check_version(f"action {_name(row)}", row.version, expected_version)
        _check_owner(session, owner)
        given = {"outcome"} if outcome else set()
        if status not in (None, row.status) and (
                problem := flow.transition_problem("action", row.status, status, given=given)):
            raise StoreError(f"action {_name(row)}: {problem}")
        changes = {"status": status, "owner": owner, "due_date": due_date, "outcome": outcome}
        changes = {k: v for k, v in changes.items() if v is not None and getattr(row, k) != v}
        if not changes:
            return ActionInfo.from_row(row)
        old = _audited(row)
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = utc_now()
        session.flush()
        record_change(session, actor=actor, action="signal_action.update", object_type="signal_action",
                      object_id=_name(row), old=old, new=_audited(row), reason=reason)
        if "status" in changes:
            _follow(session, actor, row, reason=reason)
        return ActionInfo.from_row(row)


def list_actions(store: Store | Session, actor: str, *, study_id: str | None = None,
                 signal_id: str | None = None) -> list[ActionInfo]:
    """The linked actions (of one study and/or signal), by study, signal and id (needs ``signal.view``)."""
    with in_session(store, write=False) as session:
        authorize(session, actor, Action.SIGNAL_VIEW)
        query = select(SignalAction).order_by(SignalAction.study_id, SignalAction.signal_id, SignalAction.id)
        if study_id is not None:
            query = query.where(SignalAction.study_id == study_id)
        if signal_id is not None:
            query = query.where(SignalAction.signal_id == signal_id)
        return [ActionInfo.from_row(row) for row in session.scalars(query)]


def action_baselines(store: Store | Session, actor: str, *, study_id: str) -> pl.DataFrame:
    """The cut at which each signal of a study was first acted on (needs ``signal.view``).

    A signal was acted on when it has a linked action that was not cancelled (``planned_cut``),
    or when its status was ever one that needs an open action (``action_planned``, ``in_progress``;
    the signal's last cut at that change, read from the audit trail, which covers signals set so
    before linked actions existed). The earliest of these is the baseline of ``rbqm.outcomes``.

    Returns
    -------
    polars.DataFrame
        ``BASELINE_COLUMNS``: one row per acted-on signal; ``source`` is "linked action" or "status".
    """
    acting = [name for name, rule in load_workflow().signal.statuses.items() if rule.open_action]
    with in_session(store, write=False) as session:
        authorize(session, actor, Action.SIGNAL_VIEW)
        linked = session.execute(select(SignalAction.signal_id, SignalAction.planned_cut).where(
            SignalAction.study_id == study_id, SignalAction.status != "cancelled")).all()
        changes = session.execute(select(AuditRecord.object_id, AuditRecord.new_value).where(
            AuditRecord.object_type == "signal", AuditRecord.object_id.startswith(f"{study_id}/", autoescape=True),
            AuditRecord.new_value.is_not(None))).all()
    actions = pl.DataFrame(linked, schema={"signal_id": pl.String, "planned_cut": pl.Date}, orient="row")
    status = (pl.DataFrame(changes, schema={"object_id": pl.String, "new_value": pl.String}, orient="row")
              .select(signal_id=pl.col("object_id").str.slice(len(study_id) + 1),
                      status=pl.col("new_value").str.json_path_match("$.status"),
                      planned_cut=pl.col("new_value").str.json_path_match("$.last_cut").str.to_date())
              .filter(pl.col("status").is_in(acting)).drop("status"))
    both = pl.concat([actions.with_columns(source=pl.lit("linked action")),
                      status.with_columns(source=pl.lit("status"))])
    return (both.sort(["signal_id", "planned_cut", "source"])
            .group_by("signal_id", maintain_order=True).first()
            .with_columns(study_id=pl.lit(study_id))
            .select(list(BASELINE_COLUMNS)).cast(BASELINE_COLUMNS))
