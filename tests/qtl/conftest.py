"""QTL fixtures: the store fixtures of tests/store (SQLite and PostgreSQL, one account per role) are reused,
so the QTL workflow runs on both backends (PostgreSQL skipped with the reason where it cannot start)."""

from __future__ import annotations

from tests.store.conftest import (  # noqa: F401  (fixtures)
    _cheap_password_hashing,
    backend,
    people,
    postgres_base_url,
    store,
    store_url,
)
