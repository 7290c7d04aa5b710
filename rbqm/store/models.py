"""The store's tables as SQLAlchemy 2 models.

The schema itself is created and changed only by the migrations in ``rbqm/store/migrations``;
``tests/store/test_migrations.py`` checks these models match what the migrations build.
"""

from __future__ import annotations

from datetime import UTC, datetime

from datetime import date

from sqlalchemy import (Boolean, CheckConstraint, Date, DateTime, Float, ForeignKeyConstraint, Index, Integer,
                        MetaData, String, Text, TypeDecorator, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rbqm.permissions import Role

__all__ = ["Base", "User", "AuditRecord", "AuditHead", "Signal", "SIGNAL_STATUSES", "SignalAction",
           "ACTION_STATUSES", "QtlLimit", "QtlBreach",
           "BREACH_STATUSES", "UTCDateTime", "GENESIS_HASH", "utc_now", "Risk", "RiskReview", "RISK_DECISIONS"]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first audit record."""

_NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
           "ck": "ck_%(table_name)s_%(constraint_name)s", "pk": "pk_%(table_name)s"}


def utc_now() -> datetime:
    """The current time in UTC, to the microsecond (what every timestamp in the store holds)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone, so it is stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps UTC timestamps only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


_ROLES = ", ".join(f"'{role}'" for role in Role)


class User(Base):
    """A local account. ``version`` increases with every change (optimistic concurrency)."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN ({_ROLES})", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class AuditRecord(Base):
    """One change to the store's state. Append-only: the database refuses UPDATE and DELETE.

    ``hash`` is the SHA-256 of the record's fields and ``prev_hash`` (see ``rbqm.store.audit``);
    ids run 1, 2, 3, ... with no gaps.
    """

    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(128))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row: the last audit record's id and hash, so removing records at the end is detected.

    Write transactions lock this row first (PostgreSQL), which serialises appends to the chain.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


SIGNAL_STATUSES = ("new", "under_review", "action_planned", "in_progress", "resolved", "closed_no_action")
"""The workflow statuses of a signal (docs/signals.md)."""
_STATUSES = ", ".join(f"'{status}'" for status in SIGNAL_STATUSES)


class Signal(Base):
    """A signal's workflow: status, owner, due date, justification and comments (JSON list).

    One row per study and ``signal_id`` (``rbqm.signals``); ``version`` increases with every change.
    """

    __tablename__ = "signals"
    __table_args__ = (CheckConstraint(f"status IN ({_STATUSES})", name="status"),
                      UniqueConstraint("study_id", "signal_id", name="uq_signals_study_id_signal_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(64))
    signal_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))
    indicator: Mapped[str] = mapped_column(String(96))
    site_id: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str | None] = mapped_column(String(64))
    due_date: Mapped[date | None] = mapped_column(Date)
    justification: Mapped[str | None] = mapped_column(Text)
    comments: Mapped[str] = mapped_column(Text)
    first_cut: Mapped[date] = mapped_column(Date)
    last_cut: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


ACTION_STATUSES = ("planned", "in_progress", "done", "cancelled")
"""The statuses of an action linked to a signal (docs/signals.md)."""
_ACTION_STATUSES = ", ".join(f"'{status}'" for status in ACTION_STATUSES)


class SignalAction(Base):
    """An action planned for a signal: what (a catalogue id of actions.yaml, or ``other``), who, by when,
    its status and outcome note, and ``planned_cut`` (the signal's last cut when it was planned, the
    baseline of outcome tracking). ``version`` increases with every change."""

    __tablename__ = "signal_actions"
    __table_args__ = (CheckConstraint(f"status IN ({_ACTION_STATUSES})", name="status"),
                      ForeignKeyConstraint(["study_id", "signal_id"], ["signals.study_id", "signals.signal_id"],
                                           name="fk_signal_actions_signal"),
                      Index("ix_signal_actions_signal", "study_id", "signal_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(64))
    signal_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(64))
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(Text)
    planned_cut: Mapped[date] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class QtlLimit(Base):
    """A study's own limits for one QTL, overriding the library's (``rbqm.store.qtl.set_limit``).

    One row per study and ``qtl_id``; ``version`` increases with every change. The history of the
    limits is the audit trail (``qtl.set_limit`` records, old and new values and the rationale).
    """

    __tablename__ = "qtl_limits"
    __table_args__ = (UniqueConstraint("study_id", "qtl_id", name="uq_qtl_limits_study_id_qtl_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(64))
    qtl_id: Mapped[str] = mapped_column(String(16))
    expected_rate: Mapped[float | None] = mapped_column(Float)
    secondary_limit: Mapped[float] = mapped_column(Float)
    limit: Mapped[float] = mapped_column(Float)
    method: Mapped[str | None] = mapped_column(String(32))
    rationale: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


BREACH_STATUSES = ("open", "evaluated", "signed_off")
"""The workflow statuses of a QTL breach evaluation (docs/qtl.md)."""
_BREACH_STATUSES = ", ".join(f"'{status}'" for status in BREACH_STATUSES)


class QtlBreach(Base):
    """The evaluation of one QTL breach: opened at ``first_cut``, assessed, signed off.

    The evidence at detection (estimate, interval, limits, probability of exceeding) is kept with it.
    One row per study, ``qtl_id`` and ``first_cut``; ``version`` increases with every change.
    """

    __tablename__ = "qtl_breaches"
    __table_args__ = (CheckConstraint(f"status IN ({_BREACH_STATUSES})", name="status"),
                      UniqueConstraint("study_id", "qtl_id", "first_cut", name="uq_qtl_breaches_study_id_qtl_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(64))
    qtl_id: Mapped[str] = mapped_column(String(16))
    first_cut: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(32))
    estimate: Mapped[float] = mapped_column(Float)
    lower: Mapped[float | None] = mapped_column(Float)
    upper: Mapped[float | None] = mapped_column(Float)
    limit: Mapped[float] = mapped_column(Float)
    secondary_limit: Mapped[float | None] = mapped_column(Float)
    probability_exceed: Mapped[float | None] = mapped_column(Float)
    systemic: Mapped[bool | None] = mapped_column(Boolean)
    root_cause: Mapped[str | None] = mapped_column(Text)
    capa: Mapped[str | None] = mapped_column(Text)
    assessed_by: Mapped[str | None] = mapped_column(String(64))
    assessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_off_by: Mapped[str | None] = mapped_column(String(64))
    signed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_by: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


_RISK_RATINGS = "impact BETWEEN 1 AND 3 AND likelihood BETWEEN 1 AND 3 AND detectability BETWEEN 1 AND 3"
RISK_DECISIONS = ("accepted", "rejected")
"""The decisions on a risk review proposal (rbqm.store.risks; docs/risk.md)."""


class Risk(Base):
    """One risk of a study's own register (``rbqm.risk.RiskDefinition``; controls and indicators as
    JSON lists). One row per study and ``risk_id``; ``version`` increases with every change."""

    __tablename__ = "risks"
    __table_args__ = (CheckConstraint(_RISK_RATINGS, name="ratings"),
                      UniqueConstraint("study_id", "risk_id", name="uq_risks_study_id_risk_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(64))
    risk_id: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    impact: Mapped[int] = mapped_column(Integer)
    likelihood: Mapped[int] = mapped_column(Integer)
    detectability: Mapped[int] = mapped_column(Integer)
    rationale: Mapped[str] = mapped_column(Text)
    controls: Mapped[str] = mapped_column(Text)
    indicators: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class RiskReview(Base):
    """The quality lead's decision on one re-scoring proposal: one row per study, risk and cut."""

    __tablename__ = "risk_reviews"
    __table_args__ = (CheckConstraint("decision IN ('accepted', 'rejected')", name="decision"),
                      UniqueConstraint("study_id", "risk_id", "cut_date", name="uq_risk_reviews_study_id_risk_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(64))
    risk_id: Mapped[str] = mapped_column(String(16))
    cut_date: Mapped[date] = mapped_column(Date)
    likelihood: Mapped[int] = mapped_column(Integer)
    proposed_likelihood: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
