"""Delivering progress: where a run reports to, the messages posted for it, and the
deliveries received from outside (for deduplication).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``runs.reply_to`` and the ``deliveries`` and ``inbound`` tables."""
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("reply_to", sa.String(length=16), nullable=True))
    op.create_table(
        "deliveries",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=False),
        sa.Column("thread", sa.String(length=128), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "target", "key"),
    )
    op.create_index("ix_deliveries_thread", "deliveries", ["target", "thread"], unique=False)
    op.create_table(
        "inbound",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    """Drop what ``upgrade`` added."""
    op.drop_table("inbound")
    op.drop_index("ix_deliveries_thread", table_name="deliveries")
    op.drop_table("deliveries")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("reply_to")
