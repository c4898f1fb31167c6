"""Alembic environment: the connection comes from `store.migrate()` (config.attributes)."""

from __future__ import annotations

from alembic import context

from nebula_compile.state.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
