"""The study's own risk register, and the quality lead's decisions on re-scoring proposals.

:func:`import_template` starts a study's register from the library (``rbqm.risk.load_risk_register``);
:func:`add_risk` and :func:`update_risk` add and change risks (``risk.edit``: quality lead or admin);
:func:`decide_proposal` accepts (the likelihood changes) or rejects a proposal of
``rbqm.risk.review_proposals`` with a reason (``risk.review``); :func:`study_register` gives the stored
register back as an ``rbqm.risk.RiskRegister`` for scoring and linking. Reading needs ``risk.view``.

Every change checks ``rbqm.permissions`` and is recorded with ``record_change`` in the same transaction;
``expected_version`` works as for accounts and signals. Each function takes a
:class:`~rbqm.store.Store` (its own transaction) or an open session (the caller's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from rbqm.errors import DefinitionError
from rbqm.permissions import Action
from rbqm.risk import RiskDefinition, RiskRegister, check_risk, known_indicators, load_risk_register
from rbqm.store._auth import authorize
from rbqm.store.audit import record_change
from rbqm.store.engine import Store, check_version, in_session
from rbqm.store.errors import ConflictError, NotFoundError, StoreError
from rbqm.store.models import Risk, RiskReview, utc_now

__all__ = ["DECISION_COLUMNS", "EDITABLE", "StoredRisk", "import_template", "add_risk", "update_risk", "list_risks",
           "study_register", "decide_proposal", "list_decisions"]

#: The fields :func:`update_risk` may change.
EDITABLE = ("name", "category", "description", "impact", "likelihood", "detectability", "rationale", "controls",
            "indicators", "owner")

#: The columns of :func:`list_decisions`.
DECISION_COLUMNS = {"study_id": pl.String, "risk_id": pl.String, "cut_date": pl.Date, "likelihood": pl.Int64,
                    "proposed_likelihood": pl.Int64, "decision": pl.String, "reason": pl.String,
                    "evidence": pl.String, "decided_by": pl.String, "decided_at": pl.Datetime("us", "UTC")}


@dataclass(frozen=True)
class StoredRisk:
    """A risk of a study's register as stored: the definition, its version and last change."""

    study_id: str
    risk: RiskDefinition
    updated_at: datetime
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"study_id": self.study_id, **self.risk.model_dump(mode="json"),
                "updated_at": self.updated_at.isoformat(), "version": self.version}


def _definition(row: Risk) -> RiskDefinition:
    return RiskDefinition(id=row.risk_id, name=row.name, category=row.category, description=row.description,
                          impact=row.impact, likelihood=row.likelihood, detectability=row.detectability,
                          rationale=row.rationale, controls=tuple(json.loads(row.controls)),
                          indicators=tuple(json.loads(row.indicators)), owner=row.owner)


def _stored(row: Risk) -> StoredRisk:
    return StoredRisk(row.study_id, _definition(row), row.updated_at, row.version)


def _audited(row: Risk) -> dict[str, Any]:
    return _definition(row).model_dump(mode="json")


def _require_reason(reason: str) -> None:
    if not reason or not reason.strip():
        raise StoreError("a reason is required: it is recorded in the audit trail")


def _validate(risk: RiskDefinition, study_id: str, library: Path | None) -> None:
    """The category and indicators must exist in the library (a StoreError otherwise)."""
    try:
        check_risk(risk, load_risk_register(library).categories, known_indicators(library),
                   where=f"risk {study_id}/{risk.id}")
    except DefinitionError as exc:
        raise StoreError(str(exc)) from exc


def _find(session: Session, study_id: str, risk_id: str, *, lock: bool = False) -> Risk:
    query = select(Risk).where(Risk.study_id == study_id, Risk.risk_id == risk_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"no risk {risk_id!r} in study {study_id}'s register (rbqm risk show --db)")
    return row


def _insert(session: Session, actor: str, study_id: str, risk: RiskDefinition, reason: str) -> Risk:
    if session.scalar(select(Risk).where(Risk.study_id == study_id, Risk.risk_id == risk.id)) is not None:
        raise ConflictError(f"risk {study_id}/{risk.id} is already in the register: change it with update_risk")
    now = utc_now()
    row = Risk(study_id=study_id, risk_id=risk.id, name=risk.name, category=risk.category,
               description=risk.description, impact=risk.impact, likelihood=risk.likelihood,
               detectability=risk.detectability, rationale=risk.rationale, controls=json.dumps(list(risk.controls)),
               indicators=json.dumps(list(risk.indicators)), owner=risk.owner, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    record_change(session, actor=actor, action="risk.add", object_type="risk", object_id=f"{study_id}/{risk.id}",
                  old=None, new=_audited(row), reason=reason)
    return row


def import_template(store: Store | Session, actor: str, study_id: str, register: RiskRegister | None = None, *,
                    reason: str = "started from the library template") -> tuple[str, ...]:
    """Add the risks of ``register`` (default: the shipped library) that the study's register lacks.

    Needs ``risk.edit``; one audit record per risk added. Returns the ids added.
    """
    _require_reason(reason)
    register = register or load_risk_register()
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.RISK_EDIT)
        present = set(session.scalars(select(Risk.risk_id).where(Risk.study_id == study_id)))
        added = [risk.id for risk in register.risks if risk.id not in present]
        for risk in register.risks:
            if risk.id in added:
                _insert(session, actor, study_id, risk, reason)
    return tuple(added)


def add_risk(store: Store | Session, actor: str, study_id: str, risk: RiskDefinition, *, reason: str,
             library: Path | None = None) -> StoredRisk:
    """Add one risk to a study's register (needs ``risk.edit``); its category and indicators must
    exist in ``library`` (default: the shipped one).

    Raises
    ------
    PermissionDenied, ConflictError (already there), StoreError (unknown category or indicator, no reason).
    """
    _require_reason(reason)
    _validate(risk, study_id, library)
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.RISK_EDIT)
        return _stored(_insert(session, actor, study_id, risk, reason))


def update_risk(store: Store | Session, actor: str, study_id: str, risk_id: str, *, reason: str,
                expected_version: int | None = None, library: Path | None = None, **changes: Any) -> StoredRisk:
    """Change fields of one risk (``EDITABLE``: ratings 1-3, owner, rationale, controls, indicators, ...).

    Needs ``risk.edit``; ``reason`` goes to the audit trail. A change to nothing new writes nothing.

    Raises
    ------
    PermissionDenied, NotFoundError, ConflictError (``expected_version`` differs), StoreError (invalid value).
    """
    _require_reason(reason)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise StoreError(f"cannot change {', '.join(unknown)}: editable fields are {', '.join(EDITABLE)}")
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.RISK_EDIT)
        row = _find(session, study_id, risk_id, lock=True)
        name = f"{study_id}/{risk_id}"
        check_version(f"risk {name}", row.version, expected_version)
        old = _audited(row)
        try:
            new = RiskDefinition.model_validate({**old, **changes})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise StoreError(f"risk {name}: {problems}") from exc
        _validate(new, study_id, library)
        new_values = new.model_dump(mode="json")
        if new_values == old:
            return _stored(row)
        for key in EDITABLE:
            value = getattr(new, key)
            setattr(row, key, json.dumps(list(value)) if key in ("controls", "indicators") else value)
        row.updated_at = utc_now()
        try:
            session.flush()
        except StaleDataError as exc:
            raise ConflictError(f"risk {name} was changed by someone else meanwhile; nothing was written") from exc
        record_change(session, actor=actor, action=Action.RISK_EDIT, object_type="risk", object_id=name, old=old,
                      new=new_values, reason=reason)
        return _stored(row)


def list_risks(store: Store | Session, actor: str, study_id: str) -> list[StoredRisk]:
    """The study's register as stored, in risk id order (needs ``risk.view``)."""
    with in_session(store, write=False) as session:
        authorize(session, actor, Action.RISK_VIEW)
        rows = session.scalars(select(Risk).where(Risk.study_id == study_id).order_by(Risk.risk_id))
        return [_stored(row) for row in rows]


def study_register(store: Store | Session, actor: str, study_id: str, *,
                   library: Path | None = None) -> RiskRegister | None:
    """The study's stored register with the categories of ``library`` (None when nothing is stored)."""
    risks = list_risks(store, actor, study_id)
    if not risks:
        return None
    return RiskRegister(categories=load_risk_register(library).categories, risks=tuple(r.risk for r in risks))


def decide_proposal(store: Store | Session, actor: str, study_id: str, risk_id: str, *, cut_date: date,
                    proposed_likelihood: int, evidence: str, accept: bool, reason: str,
                    expected_version: int | None = None) -> StoredRisk:
    """Accept or reject a re-scoring proposal (``rbqm.risk.review_proposals``) of one cut, with a reason.

    Accepting sets the risk's likelihood to ``proposed_likelihood``; both decisions are kept (one per
    study, risk and cut) and audited as ``risk.review``. Needs ``risk.review``.

    Raises
    ------
    PermissionDenied, NotFoundError, ConflictError (decided already, or ``expected_version`` differs),
    StoreError (no reason, likelihood outside 1-3).
    """
    _require_reason(reason)
    if proposed_likelihood not in (1, 2, 3):
        raise StoreError(f"proposed likelihood must be 1, 2 or 3; got {proposed_likelihood!r}")
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.RISK_REVIEW)
        row = _find(session, study_id, risk_id, lock=True)
        name = f"{study_id}/{risk_id}"
        check_version(f"risk {name}", row.version, expected_version)
        done = session.scalar(select(RiskReview).where(RiskReview.study_id == study_id, RiskReview.risk_id == risk_id,
                                                       RiskReview.cut_date == cut_date))
        if done is not None:
            raise ConflictError(f"the proposal for {name} at cut {cut_date.isoformat()} was {done.decision} "
                                f"by {done.decided_by} already")
        old = _audited(row)
        decision = "accepted" if accept else "rejected"
        now = utc_now()
        session.add(RiskReview(study_id=study_id, risk_id=risk_id, cut_date=cut_date, likelihood=row.likelihood,
                               proposed_likelihood=proposed_likelihood, evidence=evidence, decision=decision,
                               reason=reason, decided_by=actor, decided_at=now))
        if accept and row.likelihood != proposed_likelihood:
            row.likelihood, row.updated_at = proposed_likelihood, now
        try:
            session.flush()
        except StaleDataError as exc:
            raise ConflictError(f"risk {name} was changed by someone else meanwhile; nothing was written") from exc
        record_change(session, actor=actor, action=Action.RISK_REVIEW, object_type="risk", object_id=name, old=old,
                      new={**_audited(row), "decision": decision, "cut_date": cut_date.isoformat(),
                           "proposed_likelihood": proposed_likelihood, "evidence": evidence}, reason=reason)
        return _stored(row)


def list_decisions(store: Store | Session, actor: str, study_id: str) -> pl.DataFrame:
    """Every decision on a proposal of the study (``DECISION_COLUMNS``), by cut and risk (needs ``risk.view``)."""
    with in_session(store, write=False) as session:
        authorize(session, actor, Action.RISK_VIEW)
        rows = session.scalars(select(RiskReview).where(RiskReview.study_id == study_id)
                               .order_by(RiskReview.cut_date, RiskReview.risk_id))
        data = [{k: getattr(r, k) for k in DECISION_COLUMNS} for r in rows]
    return pl.DataFrame(data, schema=DECISION_COLUMNS)
