"""Alembic's entry point, configured in code by ``rbqm.store.migrate`` (no alembic.ini).

``rbqm.store.migrate`` passes an open connection, already inside a transaction, in
``config.attributes["connection"]``: the migration commits or rolls back with it.
"""

from alembic import context

from rbqm.store.models import Base


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run the store's migrations with rbqm.store.migrate.upgrade_schema, "
                           "not alembic's command line")
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if hasattr(context, "config"):  # False when merely imported (e.g. by pytest's doctest collection)
    run_migrations_online()
