"""Concurrent sessions (threads) changing the same objects: a clear conflict, nothing lost silently."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, update

from rbqm.store import ConflictError, audit, users
from rbqm.store.audit import check_chain
from rbqm.store.models import AuditRecord, User
from tests.store.conftest import ADMIN, MONITOR, VIEWER, password_of

THREADS = 8
ROLES = ["quality_lead", "sponsor_viewer", "admin"]  # each differs from the monitor's role


def run_together(count, work):
    """Run ``work(i)`` in ``count`` threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(count)

    def one(i):
        barrier.wait()
        try:
            return work(i)
        except ConflictError as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_same_version_edits_one_wins_others_conflict(store, people):
    with store.read() as session:
        seen = users.get_user(session, ADMIN, MONITOR).version

    def change(i):
        with store.write() as session:
            return users.set_role(session, ADMIN, MONITOR, ROLES[i % 3], reason=f"thread {i}",
                                  expected_version=seen)

    results = run_together(THREADS, change)
    winners = [r for r in results if isinstance(r, users.UserInfo)]
    losers = [r for r in results if isinstance(r, ConflictError)]
    assert len(winners) == 1 and len(losers) == THREADS - 1
    for loser in losers:
        assert f"user 'monty' was changed by someone else: you read version {seen}, the store has version " \
               f"{seen + 1}" in str(loser)
    with store.read() as session:
        final = users.get_user(session, ADMIN, MONITOR)
        changes = audit.list_records(session, ADMIN, object_type="user", object_id=MONITOR)[1:]
        check_chain(session)
    assert (final.role, final.version) == (winners[0].role, seen + 1)
    assert len(changes) == 1 and changes[0].new_value["role"] == str(winners[0].role)


def test_unversioned_edits_are_serialised_and_each_is_audited(store, people):
    """Without expected_version the last writer wins, but every change is recorded with the true old value."""
    def change(i):
        for step in range(3):
            with store.write() as session:
                users.set_role(session, ADMIN, MONITOR, ROLES[(i + step) % 3],
                               reason=f"thread {i} step {step}")
        return i

    assert run_together(THREADS, change) == list(range(THREADS))
    with store.read() as session:
        final = users.get_user(session, ADMIN, MONITOR)
        records = audit.list_records(session, ADMIN, object_type="user", object_id=MONITOR)
        assert check_chain(session).records == 4 + len(records) - 1
    state = records[0].new_value
    for record in records[1:]:
        assert record.old_value == state  # no change was made on a stale read
        state = record.new_value
    assert state["role"] == str(final.role)
    assert final.version == len(records)  # version 1 at creation, +1 per recorded change


def test_concurrent_additions_all_land_in_one_unforked_chain(store, people):
    def add(i):
        with store.write() as session:
            return users.add_user(session, ADMIN, f"user{i}", role=ROLES[i % 3],
                                  password=password_of(f"u{i}"), reason=f"thread {i}").username

    assert sorted(run_together(THREADS, add)) == sorted(f"user{i}" for i in range(THREADS))
    with store.read() as session:
        assert len(users.list_users(session, ADMIN)) == 4 + THREADS
        status = audit.verify_chain(session, ADMIN)
        ids = session.scalars(select(AuditRecord.id).order_by(AuditRecord.id)).all()
    assert status.records == 4 + THREADS and ids == list(range(1, 5 + THREADS))


def test_same_username_twice_at_once_one_conflicts(store, people):
    def add(i):
        with store.write() as session:
            return users.add_user(session, ADMIN, "twin", role="sponsor_viewer",
                                  password=password_of(f"t{i}"), reason=f"thread {i}")

    results = run_together(4, add)
    assert sum(isinstance(r, users.UserInfo) for r in results) == 1
    assert all("user 'twin' already exists" in str(r) for r in results if isinstance(r, ConflictError))
    with store.read() as session:
        assert len(audit.list_records(session, ADMIN, object_id="twin")) == 1


def test_stale_object_is_never_written(store, people):
    """The version column guards every UPDATE: a change computed from a stale copy is refused."""
    expected = "user 'monty' was changed by someone else after version 1 was read"
    with pytest.raises(ConflictError, match=expected), store.write() as session:
        stale = session.scalar(select(User).where(User.username == MONITOR))
        users_table = User.__table__  # another writer, behind this session's back
        session.connection().execute(update(users_table).where(users_table.c.id == stale.id)
                                     .values(version=users_table.c.version + 1))
        users.set_role(session, ADMIN, MONITOR, "quality_lead", reason="based on a stale copy")
    with store.read() as session:
        assert users.get_user(session, ADMIN, MONITOR).role == "central_monitor"
        assert check_chain(session).records == 4


def test_verification_while_writers_append_sees_a_consistent_snapshot(store, people):
    stop = threading.Event()

    def write():
        for i in range(30):
            with store.write() as session:
                users.set_role(session, ADMIN, MONITOR, ROLES[i % 3], reason=f"change {i}")
        stop.set()

    def verify():
        checks = 0
        while not stop.is_set() or checks == 0:
            with store.read() as session:
                audit.verify_chain(session, VIEWER)
            checks += 1
        return checks

    with ThreadPoolExecutor(3) as pool:
        writer = pool.submit(write)
        readers = [pool.submit(verify) for _ in range(2)]
        writer.result()
        assert all(reader.result() >= 1 for reader in readers)
    with store.read() as session:
        assert audit.verify_chain(session, ADMIN).records == 4 + 30
