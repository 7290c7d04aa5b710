"""rbqm.store.snapshots.ingest_snapshot: an ingest as a store user, permitted by role and audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbqm.ingest import IngestError
from rbqm.permissions import PermissionDenied
from rbqm.store import StoreError, audit
from rbqm.store.audit import check_chain
from rbqm.store.snapshots import ingest_snapshot
from tests.store.conftest import ADMIN, MONITOR, VIEWER

DM = "STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,RFSTDTC,ARMCD\nS1,S1-1,1,FRA,2025-01-02,2025-01-09,A\n"


@pytest.fixture
def export(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "dm.csv").write_text(DM)
    return folder


def test_an_ingest_is_recorded_in_the_audit_trail(store, people, export: Path, tmp_path: Path) -> None:
    snapshot = ingest_snapshot(store, MONITOR, export, "S1", root=tmp_path / "studies", reason="first cut")
    assert snapshot.path == tmp_path / "studies" / "S1" / "cuts" / "2025-01-09"
    assert (snapshot.path / "dm.parquet").is_file()
    with store.read() as session:
        (entry,) = audit.list_records(session, ADMIN, object_type="snapshot")
    assert (entry.actor, entry.action, entry.object_id, entry.reason) == (
        MONITOR, "data.ingest", "S1/2025-01-09", "first cut")
    assert entry.new_value["rows"] == {"dm": 1} and entry.new_value["warnings"] == 0
    assert entry.new_value["source"] == str(export.resolve())


def test_a_sponsor_viewer_may_not_ingest_and_nothing_is_written(store, people, export: Path,
                                                                tmp_path: Path) -> None:
    with store.read() as session:
        before = check_chain(session)
    with pytest.raises(PermissionDenied, match=f"{VIEWER} \\(role sponsor_viewer\\) may not data.ingest"):
        ingest_snapshot(store, VIEWER, export, "S1", root=tmp_path / "studies", reason="try")
    assert not (tmp_path / "studies").exists()
    with store.read() as session:
        assert check_chain(session) == before


def test_an_export_with_errors_writes_and_records_nothing(store, people, export: Path,
                                                          tmp_path: Path) -> None:
    (export / "dm.csv").write_text(DM.replace("2025-01-02", "02/01/2025"))
    with store.read() as session:
        before = check_chain(session)
    with pytest.raises(IngestError, match="not ISO 8601 dates"):
        ingest_snapshot(store, ADMIN, export, "S1", root=tmp_path / "studies", reason="bad dates")
    assert not list((tmp_path / "studies").rglob("*.parquet"))
    with store.read() as session:
        assert check_chain(session) == before


def test_without_a_reason_the_snapshot_is_removed_again(store, people, export: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="give a reason"):
        ingest_snapshot(store, ADMIN, export, "S1", root=tmp_path / "studies", reason=" ")
    assert not (tmp_path / "studies" / "S1" / "cuts" / "2025-01-09").exists()
