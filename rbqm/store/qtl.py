"""The QTL workflow: each study's own limits, and the evaluation and sign-off of every breach.

:func:`set_limit` sets or changes a study's limit, secondary limit, expected rate and method of one
QTL with a written rationale (``qtl.set_limit``: quality lead or admin); :func:`limit_history` reads
every change back from the audit trail and :func:`effective_definitions` applies the stored limits
to the library. :func:`sync_breaches` opens a breach evaluation for every run of cuts at "tolerance
limit breached" (unless one is still open for that QTL); :func:`evaluate_breach` records the
assessment (systemic or not, root cause, CAPA) and :func:`sign_off_breach` closes it (quality lead or
admin). :func:`breach_log` is the study's breaches as a frame (``rbqm.qtl.report`` renders it).

Every change checks ``rbqm.permissions`` and is recorded with ``record_change`` in the same
transaction; ``expected_version`` works as for accounts and signals. Each function takes a
:class:`~rbqm.store.Store` (its own transaction) or an open session (the caller's).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from rbqm.errors import DefinitionError
from rbqm.permissions import Action
from rbqm.qtl.compute import QTL_STATUSES, with_limits
from rbqm.qtl.definition import QTL_METHODS, QtlDefinition, load_qtl_definitions
from rbqm.store._auth import authorize
from rbqm.store.audit import AuditEntry, list_records
from rbqm.store.audit import record_change
from rbqm.store.engine import Store, check_version, in_session
from rbqm.store.errors import ConflictError, NotFoundError, StoreError
from rbqm.store.models import BREACH_STATUSES, QtlBreach, QtlLimit, utc_now

__all__ = ["BREACH_LOG_COLUMNS", "BREACH_STATUSES", "set_limit", "limit_history", "stored_limits",
           "effective_definitions", "sync_breaches", "pending_breaches", "evaluate_breach", "sign_off_breach",
           "list_breaches", "breach_log"]

_BREACHED = QTL_STATUSES[2]

BREACH_LOG_COLUMNS = {
    "breach_id": pl.Int64, "study_id": pl.String, "qtl_id": pl.String, "first_cut": pl.Date,
    "status": pl.String, "method": pl.String, "estimate": pl.Float64, "lower": pl.Float64,
    "upper": pl.Float64, "limit": pl.Float64, "secondary_limit": pl.Float64, "probability_exceed": pl.Float64,
    "systemic": pl.Boolean, "root_cause": pl.String, "capa": pl.String, "assessed_by": pl.String,
    "assessed_at": pl.Datetime("us", "UTC"), "signed_off_by": pl.String,
    "signed_off_at": pl.Datetime("us", "UTC"), "opened_at": pl.Datetime("us", "UTC"), "version": pl.Int64,
}
"""The columns of :func:`breach_log`: one row per breach evaluation."""


def _required(text: str | None, what: str) -> str:
    if not text or not text.strip():
        raise StoreError(f"{what} is required: it is recorded in the audit trail")
    return text.strip()


def _limits_of(row: QtlLimit | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"limit": row.limit, "secondary_limit": row.secondary_limit, "expected_rate": row.expected_rate,
            "method": row.method}


def set_limit(store: Store | Session, actor: str, study_id: str, qtl_id: str, *, limit: float,
              secondary_limit: float, expected_rate: float | None = None, method: str | None = None,
              rationale: str, expected_version: int | None = None) -> dict[str, Any]:
    """Set or change a study's limits of one QTL of the shipped library (needs ``qtl.set_limit``).

    ``expected_rate`` and ``method`` left ``None`` keep the library's. The result must be a valid
    definition: limits increase (expected < secondary < limit), a binary QTL's are proportions, and
    one_sided_proportion (which derives its own limits) needs another ``method`` for fixed limits.
    ``rationale`` is required and recorded in the audit trail with the old and new limits.
    ``expected_version`` (0 for "not set yet") guards against a change made meanwhile.

    Returns the stored limits with ``version``.

    Raises
    ------
    PermissionDenied, ConflictError (``expected_version`` differs), StoreError (invalid limits or QTL).

    Examples
    --------
    >>> from rbqm.store import open_store, users
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = users.add_user(session, "quinn", "quinn", role="admin", password="a long passphrase",
    ...                        reason="first administrator")
    >>> set_limit(store, "quinn", "S1", "qtl0001", limit=0.3, secondary_limit=0.22,
    ...           rationale="historical rate 17% in phase II")["version"]
    1
    """
    rationale = _required(rationale, "a rationale")
    if method is not None and method not in QTL_METHODS:
        raise StoreError(f"unknown method {method!r}: choose one of {', '.join(QTL_METHODS)}")
    library = {d.id: d for d in load_qtl_definitions()}
    if qtl_id not in library:
        raise StoreError(f"unknown QTL {qtl_id!r}: choose one of {', '.join(library)}")
    new = {"limit": float(limit), "secondary_limit": float(secondary_limit),
           "expected_rate": None if expected_rate is None else float(expected_rate), "method": method}
    try:
        with_limits([library[qtl_id]], {qtl_id: new})
    except DefinitionError as exc:
        hint = (" (give --method proportion_exact or beta_binomial for fixed limits)"
                if (method or library[qtl_id].method) == "one_sided_proportion" else "")
        raise StoreError(f"{study_id}/{qtl_id}: {exc}{hint}") from exc
    name = f"{study_id}/{qtl_id}"
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.QTL_SET_LIMIT)
        row = session.scalar(select(QtlLimit).where(QtlLimit.study_id == study_id, QtlLimit.qtl_id == qtl_id)
                             .with_for_update())
        current = 0 if row is None else row.version
        if expected_version is not None and expected_version != current:
            raise ConflictError(f"the limits of {name} were changed by someone else: you read version "
                                f"{expected_version}, the store has version {current}. Nothing was written; "
                                "read them again (rbqm qtl history).")
        old = _limits_of(row)
        now = utc_now()
        if row is None:
            row = QtlLimit(study_id=study_id, qtl_id=qtl_id, rationale=rationale, set_by=actor, set_at=now, **new)
            session.add(row)
        else:
            for key, value in new.items():
                setattr(row, key, value)
            row.rationale, row.set_by, row.set_at = rationale, actor, now
        try:
            session.flush()
        except StaleDataError as exc:
            raise ConflictError(f"the limits of {name} were changed by someone else meanwhile; "
                                "nothing was written") from exc
        record_change(session, actor=actor, action=Action.QTL_SET_LIMIT, object_type="qtl_limit", object_id=name,
                      old=old, new=_limits_of(row), reason=rationale)
        return {"study_id": study_id, "qtl_id": qtl_id, **_limits_of(row), "rationale": rationale,
                "set_by": actor, "set_at": now, "version": row.version}


def limit_history(store: Store | Session, actor: str, study_id: str, qtl_id: str) -> list[AuditEntry]:
    """Every change of a study's limits of one QTL, oldest first, from the audit trail (needs ``qtl.view``).

    Each entry has ``old_value`` and ``new_value`` (the limits before and after; ``None`` before the
    first), ``actor``, ``at`` and the rationale in ``reason``.
    """
    with in_session(store, write=False) as session:
        authorize(session, actor, Action.QTL_VIEW)
        return list_records(session, actor, object_type="qtl_limit", object_id=f"{study_id}/{qtl_id}")


def stored_limits(store: Store | Session, study_id: str) -> dict[str, dict[str, Any]]:
    """The study's stored limits: ``{qtl_id: {limit, secondary_limit, expected_rate, method}}``
    (the ``limits`` argument of ``rbqm.qtl.compute_qtls``)."""
    with in_session(store, write=False) as session:
        rows = session.scalars(select(QtlLimit).where(QtlLimit.study_id == study_id)).all()
        return {row.qtl_id: _limits_of(row) for row in rows}  # type: ignore[misc]


def effective_definitions(store: Store | Session, study_id: str,
                          definitions: list[QtlDefinition]) -> list[QtlDefinition]:
    """``definitions`` (the library's defaults) with the study's stored limits applied.

    Limits stored for a QTL that is not among ``definitions`` are ignored.
    """
    ids = {d.id for d in definitions}
    limits = {k: v for k, v in stored_limits(store, study_id).items() if k in ids}
    return with_limits(definitions, limits)


def _runs(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The first cut of every run of consecutive breached cuts, per QTL, with its evidence (oldest first)."""
    ordered = frame.sort("qtl_id", "cut_date")
    breached = pl.col("status").fill_null("") == _BREACHED
    starts = ordered.filter(breached & ~breached.shift(1, fill_value=False).over("qtl_id"))
    return starts.sort("cut_date", "qtl_id").to_dicts()


def _evidence(row: QtlBreach) -> dict[str, Any]:
    return {"status": row.status, "first_cut": row.first_cut.isoformat(), "estimate": row.estimate,
            "limit": row.limit, "systemic": row.systemic, "root_cause": row.root_cause, "capa": row.capa,
            "assessed_by": row.assessed_by, "signed_off_by": row.signed_off_by}


def _new_runs(session: Session, study_id: str, qtl_frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The runs of :func:`_runs` that :func:`sync_breaches` opens: not recorded yet, and no earlier
    evaluation of the QTL (recorded, or opened by an earlier run here) is still open or evaluated."""
    known: dict[str, list[tuple[Any, str]]] = {}
    for b in session.scalars(select(QtlBreach).where(QtlBreach.study_id == study_id)):
        known.setdefault(b.qtl_id, []).append((b.first_cut, b.status))
    new = []
    for run in _runs(qtl_frame.filter(pl.col("study_id") == study_id)):
        cut, seen = run["cut_date"], known.setdefault(run["qtl_id"], [])
        if not any(first == cut or (status != "signed_off" and first < cut) for first, status in seen):
            seen.append((cut, "open"))
            new.append(run)
    return new


def pending_breaches(store: Store | Session, study_id: str, qtl_frame: pl.DataFrame) -> pl.DataFrame:
    """The breaches :func:`sync_breaches` would open now, as rows of ``qtl_frame`` (the first cut of each
    new run at "tolerance limit breached"); empty when the breach log is up to date. Writes nothing."""
    with in_session(store, write=False) as session:
        return pl.DataFrame(_new_runs(session, study_id, qtl_frame), schema=qtl_frame.schema)


def sync_breaches(store: Store | Session, actor: str, study_id: str, qtl_frame: pl.DataFrame) -> list[int]:
    """Open a breach evaluation for each run of cuts at "tolerance limit breached" in ``qtl_frame``.

    ``qtl_frame`` is ``compute_qtls``' result over one or more cuts (``Analysis.qtl``); rows of
    other studies are ignored. A run of consecutive breached cuts opens one evaluation, at its first
    cut, with the evidence of that cut, unless it is already recorded or an evaluation of that QTL is
    still open or evaluated (not signed off). Needs ``qtl.evaluate``. Returns the new breach ids.
    """
    opened = []
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.QTL_EVALUATE)
        for run in _new_runs(session, study_id, qtl_frame):
            qtl_id, cut = run["qtl_id"], run["cut_date"]
            row = QtlBreach(study_id=study_id, qtl_id=qtl_id, first_cut=cut, status="open", method=run["method"],
                            estimate=run["estimate"], lower=run["lower"], upper=run["upper"], limit=run["limit"],
                            secondary_limit=run["secondary_limit"], probability_exceed=run["probability_exceed"],
                            opened_by=actor, opened_at=utc_now())
            session.add(row)
            session.flush()
            record_change(session, actor=actor, action="qtl.breach_open", object_type="qtl_breach",
                          object_id=str(row.id), old=None, new={"study_id": study_id, "qtl_id": qtl_id,
                                                                 **_evidence(row)},
                          reason=f"tolerance limit breached at cut {cut.isoformat()}: estimate "
                                 f"{run['estimate']:.4g} >= limit {run['limit']:.4g}")
            opened.append(row.id)
    return opened


def _breach(session: Session, breach_id: int) -> QtlBreach:
    row = session.scalar(select(QtlBreach).where(QtlBreach.id == breach_id).with_for_update())
    if row is None:
        raise NotFoundError(f"no QTL breach #{breach_id} in the store (rbqm qtl breaches STUDY_DIR)")
    return row


def _change(session: Session, row: QtlBreach, actor: str, action: Action, reason: str,
            expected_version: int | None, changes: dict[str, Any]) -> dict[str, Any]:
    check_version(f"QTL breach #{row.id}", row.version, expected_version)
    old = _evidence(row)
    for key, value in changes.items():
        setattr(row, key, value)
    try:
        session.flush()
    except StaleDataError as exc:
        raise ConflictError(f"QTL breach #{row.id} was changed by someone else meanwhile; nothing was written") from exc
    record_change(session, actor=actor, action=action, object_type="qtl_breach", object_id=str(row.id), old=old,
                  new=_evidence(row), reason=reason)
    return _info(row)


def evaluate_breach(store: Store | Session, actor: str, breach_id: int, *, systemic: bool, root_cause: str,
                    capa: str, reason: str, expected_version: int | None = None) -> dict[str, Any]:
    """Record the documented assessment of a breach: systemic or not, root cause, corrective and
    preventive action (needs ``qtl.evaluate``). An open or evaluated breach becomes ``evaluated``
    (a new assessment replaces the previous one; both stay in the audit trail); a signed-off one is
    refused."""
    reason = _required(reason, "a reason")
    root_cause, capa = _required(root_cause, "a root cause"), _required(capa, "a corrective and preventive action")
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.QTL_EVALUATE)
        row = _breach(session, breach_id)
        if row.status == "signed_off":
            raise StoreError(f"QTL breach #{breach_id} is signed off: its evaluation can no longer change")
        return _change(session, row, actor, Action.QTL_EVALUATE, reason, expected_version,
                       {"status": "evaluated", "systemic": bool(systemic), "root_cause": root_cause, "capa": capa,
                        "assessed_by": actor, "assessed_at": utc_now()})


def sign_off_breach(store: Store | Session, actor: str, breach_id: int, *, reason: str,
                    expected_version: int | None = None) -> dict[str, Any]:
    """Sign off an evaluated breach (needs ``qtl.sign_off``: quality lead or admin).

    Refused while the breach has no evaluation, and once it is signed off."""
    reason = _required(reason, "a reason")
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.QTL_SIGN_OFF)
        row = _breach(session, breach_id)
        if row.status != "evaluated":
            raise StoreError(f"QTL breach #{breach_id} is {row.status}: only an evaluated breach can be signed off "
                             "(record its evaluation first: rbqm qtl evaluate, or the QTL page)"
                             if row.status == "open" else f"QTL breach #{breach_id} is already signed off")
        return _change(session, row, actor, Action.QTL_SIGN_OFF, reason, expected_version,
                       {"status": "signed_off", "signed_off_by": actor, "signed_off_at": utc_now()})


def _info(row: QtlBreach) -> dict[str, Any]:
    return {"breach_id": row.id, **{c: getattr(row, c) for c in list(BREACH_LOG_COLUMNS)[1:]}}


def list_breaches(store: Store | Session, actor: str, study_id: str) -> pl.DataFrame:
    """:func:`breach_log` for an acting user (needs ``qtl.view``)."""
    with in_session(store, write=False) as session:
        authorize(session, actor, Action.QTL_VIEW)
        return breach_log(session, study_id)


def breach_log(store: Store | Session, study_id: str) -> pl.DataFrame:
    """The study's breach evaluations, oldest first: the columns of ``BREACH_LOG_COLUMNS``.

    Each row holds the evidence at detection (``first_cut``, ``estimate`` with ``lower``-``upper``,
    ``limit``, ``secondary_limit``, ``probability_exceed``, ``method``), the assessment (``systemic``,
    ``root_cause``, ``capa``, ``assessed_by``/``at``) and the sign-off.
    """
    with in_session(store, write=False) as session:
        rows = session.scalars(select(QtlBreach).where(QtlBreach.study_id == study_id)
                               .order_by(QtlBreach.first_cut, QtlBreach.qtl_id)).all()
        return pl.DataFrame([_info(row) for row in rows], schema=BREACH_LOG_COLUMNS)
