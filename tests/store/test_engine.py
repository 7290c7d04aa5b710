"""Opening the store: which database, creation and migration on first use, transactions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from rbqm.store import StoreError, default_url, open_store, resolve_url, users
from rbqm.store.migrate import current_revision, head_revision
from rbqm.store.models import User
from tests.store.conftest import ADMIN, password_of


def test_default_is_sqlite_file_in_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("RBQM_DATABASE_URL", raising=False)
    monkeypatch.setenv("RBQM_DATA_DIR", str(tmp_path / "somewhere"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'somewhere' / 'rbqm.db'}"
    store = open_store()
    try:
        assert (tmp_path / "somewhere" / "rbqm.db").is_file()  # created on first use, folder included
        assert store.backend == "sqlite"
    finally:
        store.close()


def test_default_data_dir_is_dot_data(monkeypatch, tmp_path):
    monkeypatch.delenv("RBQM_DATABASE_URL", raising=False)
    monkeypatch.delenv("RBQM_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_url() == f"sqlite:///{tmp_path / 'data' / 'rbqm.db'}"


def test_url_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("RBQM_DATABASE_URL", "postgresql://team@db/rbqm")
    assert resolve_url() == "postgresql+psycopg://team@db/rbqm"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    assert resolve_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"


@pytest.mark.parametrize("url, message", [
    ("mysql://u@h/d", "unsupported database 'mysql'"),
    ("not a url", "invalid database URL"),
])
def test_bad_url_is_a_user_error(url, message):
    with pytest.raises(StoreError, match=message):
        open_store(url)


def test_unreachable_postgres_is_a_user_error_without_password():
    with pytest.raises(StoreError, match="database error on postgresql") as caught:
        open_store("postgresql://rbqm:s3cret-pw@127.0.0.1:1/rbqm")
    assert "s3cret-pw" not in str(caught.value)


def test_first_use_migrates_to_head(store):
    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert {"users", "audit_records", "audit_head"} <= set(inspect(connection).get_table_names())


def test_many_first_opens_at_once_migrate_once(store_url):
    """Several processes (here threads) opening a new store together: no race, one schema."""
    barrier = threading.Barrier(4)

    def open_one(_):
        barrier.wait()
        return open_store(store_url)

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(open_one, range(4)))
    for opened in stores:
        with opened.engine.connect() as connection:
            assert current_revision(connection) == head_revision()
        opened.close()


def test_write_rolls_back_on_error(store):
    with pytest.raises(RuntimeError, match="boom"), store.write() as session:
        users.add_user(session, ADMIN, ADMIN, role="admin", password=password_of(ADMIN), reason="bootstrap")
        raise RuntimeError("boom")
    with store.read() as session:
        assert session.scalars(select(User)).all() == []
        assert not users.has_users(session)


def test_read_session_cannot_record_changes(store):
    with pytest.raises(RuntimeError, match="inside Store.write"), store.read() as session:
        users.add_user(session, ADMIN, ADMIN, role="admin", password=password_of(ADMIN), reason="bootstrap")


def test_sqlite_store_uses_wal(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'rbqm.db'}")
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()
    assert Path(tmp_path / "rbqm.db").is_file()
