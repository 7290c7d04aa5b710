"""Opening the store: which database, the engine, migrations on first use, and transactions.

A store is an SQLite file by default (``DATA_DIR/rbqm.db``, created on first use) or a
PostgreSQL database. Every change happens inside :meth:`Store.write`, one transaction that
commits on success and rolls back on any error, so a crash never leaves half a change.
Write transactions are serialised: ``BEGIN IMMEDIATE`` on SQLite, a row lock on the audit
chain's head on PostgreSQL; reads (:meth:`Store.read`) never wait for writers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.pool import StaticPool

from rbqm.store.errors import ConflictError, StoreError
from rbqm.store.models import AuditHead

__all__ = ["Store", "open_store", "resolve_url", "default_url", "DATABASE_URL_ENV"]

DATABASE_URL_ENV = "RBQM_DATABASE_URL"
_LOCK_TIMEOUT_S = 30  # a writer waits this long for another one, then fails with a StoreError


def default_url(environ: dict[str, str] | None = None) -> str:
    """The SQLite file in the data directory: ``$RBQM_DATA_DIR/rbqm.db``, else ``./data/rbqm.db``.

    Examples
    --------
    >>> default_url({"RBQM_DATA_DIR": "/srv/rbqm"})
    'sqlite:////srv/rbqm/rbqm.db'
    """
    environ = os.environ if environ is None else environ
    return f"sqlite:///{Path(environ.get('RBQM_DATA_DIR') or 'data').absolute() / 'rbqm.db'}"


def resolve_url(url: str | None = None, environ: dict[str, str] | None = None) -> str:
    """The database URL to use: ``url``, else ``$RBQM_DATABASE_URL``, else :func:`default_url`.

    ``postgresql://`` and ``postgres://`` URLs are given the psycopg 3 driver.

    Examples
    --------
    >>> resolve_url("postgresql://rbqm@db.example.org/rbqm")
    'postgresql+psycopg://rbqm@db.example.org/rbqm'
    >>> resolve_url(None, {"RBQM_DATABASE_URL": "sqlite:///team.db"})
    'sqlite:///team.db'
    """
    environ = os.environ if environ is None else environ
    url = url or environ.get(DATABASE_URL_ENV) or default_url(environ)
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass(frozen=True)
class Store:
    """An open store: the engine and its transactions. Make one with :func:`open_store`."""

    url: str
    engine: Engine
    _sessions: sessionmaker[Session]
    _write_sessions: sessionmaker[Session]

    def __repr__(self) -> str:
        return f"Store({_redacted(self.url)!r})"  # never the password

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: commits when the block ends, rolls back on any error.

        A lost race (an object changed or created meanwhile) becomes a ``ConflictError``.
        """
        with self._write_sessions() as session, _store_errors(self.url):
            session.info["rbqm_write"] = True
            with session.begin():
                if self.backend == "postgresql":  # serialise writers, as BEGIN IMMEDIATE does on SQLite
                    session.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT_S}s'"))
                    session.execute(select(AuditHead.id).where(AuditHead.id == 1).with_for_update())
                yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction on one snapshot (rolled back at the end); changes need :meth:`write`."""
        with self._sessions() as session, _store_errors(self.url):
            try:
                yield session
            finally:
                session.rollback()

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextmanager
def in_session(target: Store | Session, *, write: bool) -> Iterator[Session]:
    """The caller's open session (so several changes share one transaction), or a new transaction
    of the store: a write transaction when ``write``, else a read snapshot."""
    if isinstance(target, Session):
        yield target
        return
    with (target.write() if write else target.read()) as session:
        yield session


def check_version(name: str, stored: int, expected: int | None) -> None:
    """Optimistic versioning: refuse a change made from a stale read of ``name``."""
    if expected is not None and stored != expected:
        raise ConflictError(f"{name} was changed by someone else: you read version {expected}, "
                            f"the store has version {stored}. Nothing was written; read it again.")


@contextmanager
def _store_errors(url: str) -> Iterator[None]:
    try:
        yield
    except StaleDataError as exc:
        raise ConflictError("the object was changed by someone else meanwhile; nothing was written "
                            f"({exc})") from exc
    except IntegrityError as exc:
        raise ConflictError(f"the change conflicts with what is in the store; nothing was written "
                            f"({exc.orig})") from exc
    except OperationalError as exc:
        raise StoreError(f"database error on {_redacted(url)}: {exc.orig}") from exc


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    memory = parsed.database in (None, "", ":memory:")
    if not memory:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": _LOCK_TIMEOUT_S, "check_same_thread": False},
                           poolclass=StaticPool if memory else None)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        write = connection.get_execution_options().get("rbqm_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def open_store(url: str | None = None, *, upgrade: bool = True) -> Store:
    """Open the store at ``url`` (see :func:`resolve_url`), creating and migrating it on first use.

    Parameters
    ----------
    url
        An SQLAlchemy URL: ``sqlite:///path/rbqm.db`` or ``postgresql://user@host/db``.
        ``None`` means ``$RBQM_DATABASE_URL``, else ``DATA_DIR/rbqm.db``.
    upgrade
        Bring the schema to the newest migration (default). Safe to run from several
        processes at once.

    Examples
    --------
    >>> store = open_store("sqlite://")  # in memory
    >>> store.backend
    'sqlite'
    >>> store.close()
    """
    from rbqm.store.migrate import upgrade_schema

    resolved = resolve_url(url)
    try:
        dialect = make_url(resolved).get_backend_name()
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {resolved!r}: use sqlite:///PATH or "
                         "postgresql://USER@HOST/DATABASE") from exc
    if dialect == "sqlite":
        engine = _sqlite_engine(resolved)
    elif dialect == "postgresql":
        engine = create_engine(resolved, pool_pre_ping=True)
    else:
        raise StoreError(f"unsupported database {dialect!r} in {_redacted(resolved)}: "
                         "use sqlite or postgresql")
    # Reads see one snapshot (SQLite's WAL gives that already), even while writers append.
    reader = engine
    if dialect == "postgresql":
        reader = engine.execution_options(isolation_level="REPEATABLE READ")
    sessions = sessionmaker(reader, expire_on_commit=False)
    write_sessions = sessionmaker(engine.execution_options(rbqm_write=True), expire_on_commit=False)
    store = Store(resolved, engine, sessions, write_sessions)
    if upgrade:
        try:
            with _store_errors(resolved):
                upgrade_schema(store.engine.execution_options(rbqm_write=True))
        except BaseException:
            engine.dispose()
            raise
    return store
