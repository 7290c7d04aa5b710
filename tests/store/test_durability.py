"""A process killed (SIGKILL) in the middle of a change leaves the store consistent."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select as sql_select

from rbqm.store import audit, open_store, users
from rbqm.store.models import AuditRecord, User
from tests.store.conftest import ADMIN, MONITOR

ROOT = Path(__file__).parents[2]
CHILD = """
import sys, time
from argon2 import PasswordHasher, profiles
from rbqm.store import open_store, passwords, users
passwords._HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)
store = open_store(sys.argv[1])
if sys.argv[2] == "hold":  # make two changes, then wait to be killed before committing
    with store.write() as session:
        users.set_role(session, "ada", "monty", "quality_lead", reason="never committed")
        users.add_user(session, "ada", "ghost", role="sponsor_viewer", password="never committed pw",
                       reason="never committed")
        session.flush()
        print("changed", flush=True)
        time.sleep(120)
else:  # one transaction after another, each adding an account and changing its role
    for i in range(10_000):
        with store.write() as session:
            users.add_user(session, "ada", f"u{i}", role="sponsor_viewer", password="a long passphrase",
                           reason="loop")
            users.set_role(session, "ada", f"u{i}", "central_monitor", reason="loop")
        print(i, flush=True)
"""


def start(url: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, url, mode], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)


def read_line(child: subprocess.Popen[str], timeout: float = 30) -> str:
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    assert ready, "the child process said nothing"
    line = child.stdout.readline()
    assert line, f"the child process ended (exit {child.wait()})"
    return line.strip()


def kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stdout.close()


def test_killed_mid_transaction_leaves_nothing_and_an_intact_chain(store, store_url, people):
    with store.read() as session:
        before = audit.verify_chain(session, ADMIN)
    child = start(store_url, "hold")
    assert read_line(child) == "changed"
    kill(child)
    store.close()
    after = open_store(store_url)
    try:
        with after.read() as session:
            assert audit.verify_chain(session, ADMIN) == before
            assert users.get_user(session, ADMIN, MONITOR).role == "central_monitor"
            assert "ghost" not in {u.username for u in users.list_users(session, ADMIN)}
        started = time.monotonic()
        with after.write() as session:  # the dead writer's locks are gone
            users.set_role(session, ADMIN, MONITOR, "quality_lead", reason="after the crash")
        assert time.monotonic() - started < 10
        with after.read() as session:
            assert audit.verify_chain(session, ADMIN).records == before.records + 1
    finally:
        after.close()


def test_killed_among_many_transactions_keeps_each_whole(store, store_url, people):
    child = start(store_url, "loop")
    done = [int(read_line(child)) for _ in range(15)]
    kill(child)  # most likely in the middle of transaction 15 or 16
    store.close()
    after = open_store(store_url)
    try:
        with after.read() as session:
            status = audit.verify_chain(session, ADMIN)
            accounts = {u.username: u for u in users.list_users(session, ADMIN)}
            per_object = dict(session.execute(sql_select(AuditRecord.object_id, func.count())
                                              .group_by(AuditRecord.object_id)).all())
            rows = session.scalar(sql_select(func.count()).select_from(User))
        loop_accounts = {name: u for name, u in accounts.items() if name.startswith("u")}
        assert done == list(range(15)) and len(loop_accounts) >= 15
        for name, account in loop_accounts.items():  # both changes of a transaction, or neither
            assert (account.role, account.version, per_object[name]) == ("central_monitor", 2, 2)
        assert set(per_object) == set(accounts) and rows == len(accounts)
        assert status.records == 4 + 2 * len(loop_accounts)
    finally:
        after.close()
