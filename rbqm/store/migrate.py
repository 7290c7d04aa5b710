"""Schema migrations with Alembic, configured in code (the scripts live in ``rbqm/store/migrations``).

:func:`upgrade_schema` runs on every :func:`rbqm.store.open_store`: a store at the newest
revision costs one query; an empty or older one is migrated in one transaction, under a lock
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so two processes opening a new
store at once do not race and a crash mid-migration leaves the previous schema.

A maintainer adds a revision after changing ``rbqm/store/models.py`` with::

    python -m rbqm.store.migrate revision "what changed"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

__all__ = ["MIGRATIONS", "alembic_config", "head_revision", "current_revision", "upgrade_schema"]

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 7_262_010  # pg_advisory_xact_lock key held while migrating


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for the store's migrations, bound to ``connection`` (no ini file).

    Examples
    --------
    >>> alembic_config().get_main_option("script_location").endswith("migrations")
    True
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision of the store's schema.

    Examples
    --------
    >>> head_revision()
    '0005'
    """
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at (``None`` when empty).

    Examples
    --------
    >>> from sqlalchemy import create_engine
    >>> with create_engine("sqlite://").connect() as connection:
    ...     print(current_revision(connection))
    None
    """
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine, revision: str = "head") -> bool:
    """Bring the database behind ``engine`` to ``revision``; True when anything was migrated.

    ``engine`` must open write transactions (on SQLite, ``BEGIN IMMEDIATE``), as the store's do.

    Examples
    --------
    >>> from rbqm.store import open_store
    >>> store = open_store("sqlite://", upgrade=False)
    >>> upgrade_schema(store.engine.execution_options(rbqm_write=True))
    True
    >>> upgrade_schema(store.engine.execution_options(rbqm_write=True))
    False
    """
    target = head_revision() if revision == "head" else revision
    with engine.connect() as connection:
        if current_revision(connection) == target:
            return False
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        if current_revision(connection) == target:  # another process migrated meanwhile
            return False
        command.upgrade(alembic_config(connection), revision)
    return True


def _new_revision(message: str) -> None:
    """Autogenerate a revision from the models' difference with the newest schema."""
    from rbqm.store.engine import _sqlite_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = _sqlite_engine(f"sqlite:///{tmp}/rbqm.db")
        upgrade_schema(engine.execution_options(rbqm_write=True))
        with engine.begin() as connection:
            command.revision(alembic_config(connection), message=message, autogenerate=True)
        engine.dispose()


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit("usage: python -m rbqm.store.migrate revision MESSAGE")
    _new_revision(sys.argv[2])
