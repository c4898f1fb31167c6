"""Alembic migrations of the state store; `store.migrate()` runs them on open."""
