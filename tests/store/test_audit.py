"""The audit trail: hash chain, verification of every kind of tampering, export, append-only."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from rbqm.store import AuditChainError, StoreError, audit, users
from rbqm.store.audit import canonical_json, check_chain, record_change
from rbqm.store.models import GENESIS_HASH
from tests.store.conftest import ADMIN, LEAD, MONITOR, VIEWER, tamper

FIELDS = ["id", "at", "actor", "action", "object_type", "object_id", "old_value", "new_value", "reason",
          "prev_hash", "hash"]


@pytest.fixture
def trail(store, people):
    """Four account additions and four changes: records 1 to 8."""
    with store.write() as session:
        users.set_role(session, ADMIN, MONITOR, "quality_lead", reason="promoted")
        users.disable_user(session, ADMIN, VIEWER, reason="left")
        users.enable_user(session, ADMIN, VIEWER, reason="back")
        users.set_role(session, ADMIN, LEAD, "central_monitor", reason="swap")
    with store.read() as session:
        assert check_chain(session).records == 8
    return store


def entries(store):
    with store.read() as session:
        return audit.list_records(session, ADMIN)


def test_chain_links_and_hashes_are_recomputable_by_hand(trail):
    previous = GENESIS_HASH
    for entry in entries(trail):
        assert entry.prev_hash == previous
        fields = {name: getattr(entry, name) for name in FIELDS[:-1]}
        fields["at"] = entry.at.isoformat(timespec="microseconds")
        fields["old_value"] = canonical_json(entry.old_value)
        fields["new_value"] = canonical_json(entry.new_value)
        payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert entry.hash == hashlib.sha256(payload.encode()).hexdigest()
        assert entry.at.utcoffset().total_seconds() == 0
        previous = entry.hash


def test_verify_reports_count_and_head(trail):
    with trail.read() as session:
        status = audit.verify_chain(session, VIEWER)
    assert (status.records, status.head_id, status.head_hash) == (8, 8, entries(trail)[-1].hash)


def _swap(store, a: int, b: int) -> list[str]:
    """Statements that swap the contents (all but the id) of records a and b."""
    rows = {e.id: e for e in entries(store)}
    columns = [name for name in FIELDS if name != "id"]

    def assign(source):
        entry = rows[source]
        values = {name: getattr(entry, name) for name in columns}
        values["old_value"] = canonical_json(entry.old_value)
        values["new_value"] = canonical_json(entry.new_value)
        zone = "" if store.backend == "sqlite" else "+00"
        values["at"] = entry.at.strftime("%Y-%m-%d %H:%M:%S.%f") + zone
        return ", ".join(f"{name} = {'NULL' if v is None else repr(str(v))}" for name, v in values.items())

    return [f"UPDATE audit_records SET hash = 'swapping' WHERE id = {a}",
            f"UPDATE audit_records SET {assign(a)} WHERE id = {b}",
            f"UPDATE audit_records SET {assign(b)} WHERE id = {a}"]


TAMPERING = {
    "reason altered": (["UPDATE audit_records SET reason = 'nothing to see' WHERE id = 5"], 5,
                       "content was altered"),
    "new value altered": (["UPDATE audit_records SET new_value = '{\"role\":\"admin\"}' WHERE id = 6"], 6,
                          "content was altered"),
    "actor altered": (["UPDATE audit_records SET actor = 'quinn' WHERE id = 2"], 2, "content was altered"),
    "middle removed": (["DELETE FROM audit_records WHERE id = 4"], 4,
                       "missing: the trail jumps from #3 to #5"),
    "first removed": (["DELETE FROM audit_records WHERE id = 1"], 1,
                      "missing: the trail jumps from the start to #2"),
    "last removed": (["DELETE FROM audit_records WHERE id = 8"], 8,
                     "missing: the trail ends at #7 but #8 was the last record written"),
    "last two removed, head rolled back": (
        ["DELETE FROM audit_records WHERE id >= 7", "UPDATE audit_head SET last_id = 6"], 6,
        "differs from the last record written"),
    "row added beyond head": (
        ["INSERT INTO audit_records (id, at, actor, action, object_type, object_id, reason, prev_hash, hash) "
         "SELECT 9, at, actor, action, object_type, object_id, reason, hash, 'f00' "
         "FROM audit_records WHERE id = 8"], 9, "not written through the product"),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_verify_names_first_broken_record(trail, case):
    statements, record_id, problem = TAMPERING[case]
    tamper(trail, *statements)
    with pytest.raises(AuditChainError, match=problem) as caught, trail.read() as session:
        audit.verify_chain(session, ADMIN)
    assert caught.value.record_id == record_id
    assert str(caught.value).startswith(f"audit trail broken at record #{record_id}: ")


def test_rewritten_record_with_recomputed_hash_breaks_the_next_link(trail):
    entry = entries(trail)[2]  # record 3
    fields = {name: getattr(entry, name) for name in FIELDS[:-1]}
    fields.update(reason="forged", old_value=canonical_json(entry.old_value),
                  new_value=canonical_json(entry.new_value))
    forged = audit.record_hash(**fields)
    tamper(trail, f"UPDATE audit_records SET reason = 'forged', hash = '{forged}' WHERE id = 3")
    with pytest.raises(AuditChainError, match="does not follow #3") as caught, trail.read() as session:
        audit.verify_chain(session, ADMIN)
    assert caught.value.record_id == 4


@pytest.mark.parametrize("a, b", [(2, 3), (5, 8)])
def test_reordered_records_are_detected(trail, a, b):
    tamper(trail, *_swap(trail, a, b))
    expected = f"record #{a}: does not follow #{a - 1}"
    with pytest.raises(AuditChainError, match=expected), trail.read() as session:
        audit.verify_chain(session, ADMIN)


@pytest.mark.parametrize("statement", ["UPDATE audit_records SET reason = 'x' WHERE id = 1",
                                       "DELETE FROM audit_records WHERE id = 8",
                                       "DELETE FROM audit_records"])
def test_database_refuses_to_change_records(trail, statement):
    with pytest.raises(DBAPIError, match="append-only"), trail.engine.begin() as connection:
        connection.execute(text(statement))
    with trail.read() as session:
        assert audit.verify_chain(session, ADMIN).records == 8


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite has no TRUNCATE
def test_postgres_refuses_truncate(trail):
    with pytest.raises(DBAPIError, match="append-only"), trail.engine.begin() as connection:
        connection.execute(text("TRUNCATE audit_records"))


def test_product_has_no_way_to_edit_or_delete_records():
    verbs = ("update", "delete", "edit", "remove")
    assert not [name for name in audit.__all__ if any(verb in name for verb in verbs)]


def test_export_json_and_csv_hold_every_record(trail):
    with trail.read() as session:
        as_json = json.loads(audit.export_records(session, VIEWER, fmt="json"))
        as_csv = list(csv.DictReader(io.StringIO(audit.export_records(session, VIEWER, fmt="csv"))))
    expected = [entry.to_dict() for entry in entries(trail)]
    assert as_json == expected
    assert [row["hash"] for row in as_csv] == [row["hash"] for row in expected]
    assert list(as_csv[0]) == FIELDS
    assert as_csv[5]["old_value"] == canonical_json(expected[5]["old_value"])
    assert as_csv[0]["old_value"] == ""
    with pytest.raises(StoreError, match="unknown export format 'xml'"), trail.read() as session:
        audit.export_records(session, VIEWER, fmt="xml")


def test_record_change_is_generic_and_chains(store, people):
    """Later workflows (tolerance limits, signals) record their changes through the same helper."""
    with store.write() as session:
        entry = record_change(session, actor=LEAD, action="qtl.set", object_type="qtl",
                              object_id="SCREEN_FAIL", old={"limit": 0.3}, new={"limit": 0.25},
                              reason="protocol amendment 2")
    assert entry.id == 5 and entry.prev_hash == entries(store)[3].hash
    with store.read() as session:
        assert audit.verify_chain(session, ADMIN).head_hash == entry.hash


def test_unjsonable_value_is_refused(store, people):
    with pytest.raises(TypeError, match="cannot record set"), store.write() as session:
        record_change(session, actor=LEAD, action="x.y", object_type="x", object_id="1", old=None, new={1, 2},
                      reason="r")
