"""Migrations: the models match what the migrations build; down and up again work."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from rbqm.store.migrate import alembic_config, current_revision, head_revision, upgrade_schema
from rbqm.store.models import Base


def test_models_match_migrated_schema(store):
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_empty_and_upgrade_again(store):
    writer = store.engine.execution_options(rbqm_write=True)
    with writer.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    with store.engine.connect() as connection:
        assert current_revision(connection) is None
        assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    assert upgrade_schema(writer) is True
    assert upgrade_schema(writer) is False
    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
