"""Ingesting a data cut as a user of the store: the ``data.ingest`` permission and an audit record.

:func:`ingest_snapshot` checks that the acting user may ingest, runs ``rbqm.ingest.ingest_study`` and
records the new snapshot (study, cut, rows, source files' SHA-256 in its manifest, warnings) in the
audit trail, in one transaction: when the ingest fails nothing is recorded, and when the record cannot
be written the snapshot is removed again. The dashboard's Data page ingests through it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session

from rbqm.ingest import Snapshot, delete_snapshot, ingest_study
from rbqm.permissions import Action
from rbqm.store._auth import authorize
from rbqm.store.audit import record_change
from rbqm.store.engine import Store, in_session

__all__ = ["ingest_snapshot"]


def ingest_snapshot(store: Store | Session, actor: str, folder: Path, study_id: str, *, reason: str,
                    root: Path | None = None, as_of: date | None = None,
                    mapping_file: Path | None = None) -> Snapshot:
    """Validate a study export and store it as a snapshot (``rbqm.ingest.ingest_study``), as ``actor``.

    Parameters
    ----------
    store : Store or Session
        The store, or an open write session (the caller's transaction).
    actor : str
        The acting username; its role must allow ``data.ingest``.
    folder, study_id, root, as_of, mapping_file
        As for ``rbqm.ingest.ingest_study``.
    reason : str
        Why, kept in the audit trail (required).

    Raises
    ------
    PermissionDenied
        When the actor may not ingest (nothing is read or written).
    IngestError, RbqmError
        As ``ingest_study`` raises them (nothing is written or recorded).
    """
    with in_session(store, write=True) as session:
        authorize(session, actor, Action.DATA_INGEST)
        snapshot = ingest_study(Path(folder), study_id, root=root, as_of=as_of, mapping_file=mapping_file)
        try:
            record_change(session, actor=actor, action=Action.DATA_INGEST, object_type="snapshot",
                          object_id=f"{study_id}/{snapshot.cut.isoformat()}", old=None,
                          new={"path": str(snapshot.path), "source": str(Path(folder).resolve()),
                               "rows": snapshot.rows, "warnings": snapshot.report.warnings},
                          reason=reason)
        except BaseException:
            delete_snapshot(snapshot.path.parents[2], study_id, snapshot.cut.isoformat())
            raise
    return snapshot
