"""The audit trail: every change to the store's state, append-only and hash-chained.

Each record says who (the acting username), when (UTC), what (action, object type and id),
the old and the new value (canonical JSON) and why (the reason). Record ``n`` stores
``prev_hash`` (the hash of record ``n - 1``, or 64 zeros for the first) and ``hash``:

    hash = sha256(canonical JSON of {id, at, actor, action, object_type, object_id,
                                     old_value, new_value, reason, prev_hash})

where canonical JSON has sorted keys, no spaces, UTF-8, and ``at`` is ISO 8601 UTC to the
microsecond. The ``audit_head`` row holds the last id and hash, so removing records at the end
is detected too. :func:`record_change` is the only writer; the product has no way to edit or
delete a record, and the database's triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rbqm.permissions import Action
from rbqm.store._auth import authorize
from rbqm.store.errors import AuditChainError, StoreError
from rbqm.store.models import GENESIS_HASH, AuditHead, AuditRecord, utc_now

__all__ = ["AuditEntry", "ChainStatus", "record_change", "list_records", "verify_chain", "export_records",
           "canonical_json", "record_hash", "EXPORT_FORMATS"]

EXPORT_FORMATS = ("csv", "json")
_FIELDS = ("id", "at", "actor", "action", "object_type", "object_id", "old_value", "new_value", "reason",
           "prev_hash", "hash")


def canonical_json(value: Any) -> str | None:
    """``value`` as canonical JSON (sorted keys, no spaces, UTF-8); ``None`` stays ``None``.

    Examples
    --------
    >>> canonical_json({"role": "admin", "active": True})
    '{"active":true,"role":"admin"}'
    """
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _timestamp(value)
    raise TypeError(f"cannot record {type(value).__name__} in the audit trail: {value!r}")


def _timestamp(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def record_hash(*, id: int, at: datetime, actor: str, action: str, object_type: str, object_id: str,
                old_value: str | None, new_value: str | None, reason: str, prev_hash: str) -> str:
    """The SHA-256 (hex) of one record's fields and the previous record's hash.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> digest = record_hash(id=1, at=datetime(2026, 1, 5, tzinfo=UTC), actor="alice", action="user.add",
    ...                      object_type="user", object_id="bob", old_value=None,
    ...                      new_value='{"role":"central_monitor"}', reason="new monitor",
    ...                      prev_hash="0" * 64)
    >>> len(digest)
    64
    """
    fields = {"id": id, "at": _timestamp(at), "actor": actor, "action": action, "object_type": object_type,
              "object_id": object_id, "old_value": old_value, "new_value": new_value, "reason": reason,
              "prev_hash": prev_hash}
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One audit record as read back; ``old_value`` and ``new_value`` are decoded from JSON."""

    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    old_value: Any
    new_value: Any
    reason: str
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: AuditRecord) -> AuditEntry:
        return cls(row.id, row.at, row.actor, row.action, row.object_type, row.object_id,
                   _decode(row.old_value), _decode(row.new_value), row.reason, row.prev_hash, row.hash)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (``at`` in ISO 8601 UTC)."""
        return {**asdict(self), "at": _timestamp(self.at)}


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class ChainStatus:
    """An intact audit trail: how many records, and the last one's id and hash."""

    records: int
    head_id: int
    head_hash: str


def record_change(session: Session, *, actor: str, action: Action | str, object_type: str, object_id: str,
                  old: Any, new: Any, reason: str) -> AuditEntry:
    """Append one record to the audit trail, in the caller's transaction.

    Every service function that changes state calls this once per change, in the same
    transaction (:meth:`rbqm.store.Store.write`) as the change itself: both are committed or
    neither is. ``old`` and ``new`` are JSON-able values (``None`` when there is none).

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     entry = record_change(session, actor="alice", action="qtl.set", object_type="qtl",
    ...                           object_id="SCREEN_FAIL", old=None, new={"limit": 0.3}, reason="protocol v2")
    >>> entry.id, entry.prev_hash == "0" * 64
    (1, True)
    """
    if not session.info.get("rbqm_write"):
        raise RuntimeError("a change must happen inside Store.write()")
    reason = (reason or "").strip()
    if not reason:
        raise StoreError(f"{action} on {object_type} {object_id!r}: give a reason for the change")
    head = session.get(AuditHead, 1, with_for_update=True)
    if head is None:
        raise StoreError("the store has no audit chain head: is the schema migrated?")
    fields = dict(id=head.last_id + 1, at=utc_now(), actor=actor, action=str(action), object_type=object_type,
                  object_id=str(object_id), old_value=canonical_json(old), new_value=canonical_json(new),
                  reason=reason, prev_hash=head.last_hash)
    row = AuditRecord(**fields, hash=record_hash(**fields))
    session.add(row)
    head.last_id, head.last_hash = row.id, row.hash
    session.flush()
    return AuditEntry.from_row(row)


def list_records(session: Session, actor: str, *, object_type: str | None = None,
                 object_id: str | None = None) -> list[AuditEntry]:
    """The audit records, oldest first, optionally of one object (needs ``audit.view``).

    Examples
    --------
    >>> from rbqm.store import open_store, users
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = users.add_user(session, "alice", "alice", role="admin", password="a long passphrase",
    ...                        reason="first administrator")
    >>> with store.read() as session:
    ...     [(entry.id, entry.action, entry.new_value["role"]) for entry in list_records(session, "alice")]
    [(1, 'user.add', 'admin')]
    """
    authorize(session, actor, Action.AUDIT_VIEW)
    query = select(AuditRecord).order_by(AuditRecord.id)
    if object_type is not None:
        query = query.where(AuditRecord.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditRecord.object_id == object_id)
    return [AuditEntry.from_row(row) for row in session.scalars(query)]


def verify_chain(session: Session, actor: str) -> ChainStatus:
    """Recompute the hash chain in id order; raise ``AuditChainError`` at the first broken record.

    A record is broken when its content no longer matches its hash (altered), when it does not
    follow the record before it (records reordered, removed or rewritten), when ids skip
    (removed), or when the trail ends before the last record written (removed at the end).
    Needs ``audit.view``.

    Examples
    --------
    >>> from rbqm.store import open_store, users
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = users.add_user(session, "alice", "alice", role="admin", password="a long passphrase",
    ...                        reason="first administrator")
    >>> with store.read() as session:
    ...     verify_chain(session, "alice").records
    1
    """
    authorize(session, actor, Action.AUDIT_VIEW)
    return check_chain(session)


def check_chain(session: Session) -> ChainStatus:
    """:func:`verify_chain` without the permission check (for the store's own consistency checks)."""
    head = session.get(AuditHead, 1)  # read first: records appended meanwhile lie beyond it
    if head is None:
        raise StoreError("the store has no audit chain head: is the schema migrated?")
    expected_id, prev_hash = 1, GENESIS_HASH
    rows = session.scalars(select(AuditRecord).where(AuditRecord.id <= head.last_id)
                           .order_by(AuditRecord.id).execution_options(yield_per=1000))
    for row in rows:
        if row.id != expected_id:
            before = f"#{expected_id - 1}" if expected_id > 1 else "the start"
            raise AuditChainError(expected_id, f"missing: the trail jumps from {before} to #{row.id} "
                                               "(records removed)")
        if row.prev_hash != prev_hash:
            before = f"#{row.id - 1}" if row.id > 1 else "the start of the trail"
            raise AuditChainError(row.id, f"does not follow {before}: its prev_hash differs "
                                          "(records reordered, removed or rewritten)")
        fields = {name: getattr(row, name) for name in _FIELDS if name != "hash"}
        if record_hash(**fields) != row.hash:
            raise AuditChainError(row.id, "its content was altered: the hash no longer matches "
                                          f"({row.action} on {row.object_type} {row.object_id!r})")
        expected_id, prev_hash = expected_id + 1, row.hash
    last = expected_id - 1
    if last != head.last_id:
        raise AuditChainError(last + 1, f"missing: the trail ends at #{last} but #{head.last_id} was the "
                                        "last record written (records removed at the end)")
    if prev_hash != head.last_hash:
        raise AuditChainError(last, "differs from the last record written (the chain head's hash)")
    extra = session.scalar(select(func.min(AuditRecord.id)).where(AuditRecord.id > head.last_id))
    if extra is not None:
        raise AuditChainError(extra, "was not written through the product (it lies beyond the chain's head)")
    return ChainStatus(records=last, head_id=last, head_hash=prev_hash)


def export_records(session: Session, actor: str, *, fmt: Literal["csv", "json"] = "csv") -> str:
    """The whole audit trail as CSV or JSON text, oldest first, hashes included (needs ``audit.view``).

    In CSV, ``old_value`` and ``new_value`` are JSON text; in JSON they are values.

    Examples
    --------
    >>> from rbqm.store import open_store, users
    >>> store = open_store("sqlite://")
    >>> with store.write() as session:
    ...     _ = users.add_user(session, "alice", "alice", role="admin", password="a long passphrase",
    ...                        reason="first administrator")
    >>> with store.read() as session:
    ...     print(export_records(session, "alice", fmt="csv").splitlines()[0])
    id,at,actor,action,object_type,object_id,old_value,new_value,reason,prev_hash,hash
    """
    if fmt not in EXPORT_FORMATS:
        raise StoreError(f"unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    entries = list_records(session, actor)
    if fmt == "json":
        return json.dumps([entry.to_dict() for entry in entries], indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_FIELDS)
    for entry in entries:
        row = entry.to_dict()
        row["old_value"], row["new_value"] = canonical_json(entry.old_value), canonical_json(entry.new_value)
        writer.writerow(["" if row[name] is None else row[name] for name in _FIELDS])
    return out.getvalue()
