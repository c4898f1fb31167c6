"""The first state store: revisions, resources, audit log, locks.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(63), nullable=False, index=True),
        sa.Column("commit", sa.String(64)),
        sa.Column("author", sa.String(255)),
        sa.Column("applied_by", sa.String(255), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("manifest_hash", sa.String(16), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
    )
    op.create_table(
        "resources",
        sa.Column("environment", sa.String(63), primary_key=True),
        sa.Column("id", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False, index=True),
        sa.Column("project", sa.String(63), index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("hash", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("revision_id", sa.Integer(), sa.ForeignKey("revisions.id")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(63)),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("locks", "audit_log", "resources", "revisions"):
        op.drop_table(table)
