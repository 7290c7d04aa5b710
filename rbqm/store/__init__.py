"""The store: users, roles and an append-only, hash-chained audit trail (SQLAlchemy 2 + Alembic).

SQLite by default (``DATA_DIR/rbqm.db``, created and migrated on first use), PostgreSQL for a
team (``RBQM_DATABASE_URL`` or ``--db``). SQLAlchemy is used only inside this package.

>>> from rbqm.store import open_store, users
>>> store = open_store("sqlite://")
>>> with store.write() as session:
...     _ = users.add_user(session, "root", "alice", role="admin", password="a long passphrase",
...                        reason="first administrator")
>>> with store.read() as session:
...     [user.username for user in users.list_users(session, "alice")]
['alice']

See docs/store.md for the roles, the audit chain and how to run on PostgreSQL.
"""

from rbqm.store import audit, users
from rbqm.store.audit import (
           AuditEntry,
           ChainStatus,
           export_records,
           list_records,
           record_change,
           verify_chain,
)
from rbqm.store.engine import DATABASE_URL_ENV, Store, default_url, open_store, resolve_url
from rbqm.store.errors import AuditChainError, ConflictError, NotFoundError, PermissionDenied, StoreError
from rbqm.store.users import AuthenticationError, UserInfo

__all__ = ["Store", "open_store", "resolve_url", "default_url", "DATABASE_URL_ENV", "audit", "users",
           "AuditEntry", "ChainStatus", "record_change", "list_records", "verify_chain", "export_records",
           "UserInfo", "StoreError", "NotFoundError", "ConflictError", "AuditChainError", "PermissionDenied",
           "AuthenticationError"]
