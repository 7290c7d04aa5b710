"""Alembic migrations of the store; applied by ``rbqm.store.migrate.upgrade_schema``."""
