"""Store fixtures: every store test runs on SQLite and on PostgreSQL (nothing mocked).

PostgreSQL comes from ``$RBQM_TEST_POSTGRES_URL`` or a throwaway cluster this worker starts
(tests/store/postgres.py); where neither is possible the PostgreSQL cases are skipped with
the reason, or fail if ``RBQM_REQUIRE_POSTGRES=1`` (as .ci/run sets).
"""

from __future__ import annotations

import os

import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import text

from rbqm.permissions import Role
from rbqm.store import Store, open_store, passwords, users
from tests.store import postgres

BACKENDS = ("sqlite", "postgresql")
PEOPLE = {Role.ADMIN: "ada", Role.QUALITY_LEAD: "quinn", Role.CENTRAL_MONITOR: "monty",
          Role.SPONSOR_VIEWER: "vera"}
ADMIN, LEAD, MONITOR, VIEWER = PEOPLE.values()


def password_of(username: str) -> str:
    """Each test account's password (distinct, so a leak of any one is caught)."""
    return f"Tr0ub4dor&3-{username}-horse-battery"


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing():
    """Argon2id with minimal cost in these tests (test_users checks the production parameters)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))
        yield


@pytest.fixture(scope="session")
def postgres_base_url():
    """A PostgreSQL database URL for this worker, or a skip (a failure under RBQM_REQUIRE_POSTGRES=1)."""
    if url := os.environ.get(postgres.URL_ENV):
        yield url
        return
    try:
        cluster = postgres.start_cluster(postgres.find_bindir() or postgres.install())
    except postgres.Unavailable as exc:
        if os.environ.get(postgres.REQUIRE_ENV) == "1":
            pytest.fail(f"PostgreSQL is required ({postgres.REQUIRE_ENV}=1) but unavailable: {exc}")
        pytest.skip(f"PostgreSQL store tests skipped: {exc}")
    yield cluster.url
    cluster.stop()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_url(backend, tmp_path, request):
    """A URL of an empty store: an SQLite file, or a fresh schema in the PostgreSQL test database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'rbqm.db'}"
        return
    base = request.getfixturevalue("postgres_base_url")
    name, url = postgres.schema_url(base)
    yield url
    postgres.drop_schema(base, name)


@pytest.fixture
def store(store_url) -> Store:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def people(store) -> dict[Role, str]:
    """One active account per role (ada is the admin who created them all)."""
    with store.write() as session:
        for role, name in PEOPLE.items():
            users.add_user(session, ADMIN, name, role=role, password=password_of(name), reason="test account")
    return PEOPLE


def tamper(store: Store, *statements: str) -> None:
    """Run raw SQL on the audit trail behind the product's back (as a database administrator could)."""
    with store.engine.connect() as connection:
        if store.backend == "sqlite":
            for verb in ("update", "delete"):
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS audit_records_no_{verb}")
        else:
            connection.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        for statement in statements:
            connection.exec_driver_sql(statement)
        if store.backend == "postgresql":
            connection.execute(text("ALTER TABLE audit_records ENABLE TRIGGER USER"))
        connection.commit()
