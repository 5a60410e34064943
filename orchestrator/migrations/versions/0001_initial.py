"""The initial schema: runs, steps, checkpoints, events, playbooks.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Times are ``DateTime(timezone=True)``: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, naive
UTC on SQLite (the models' ``UTCDateTime`` converts). Index names follow SQLAlchemy's
``ix_<table>_<column>`` for ``index=True`` fields, so autogenerate finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, *, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table with its keys, constraints and indexes."""
    _create_runs()
    _create_steps()
    _create_checkpoints()
    _create_events()
    _create_playbooks()


def _create_runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("playbook", sa.String(length=64), nullable=True),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("requester", sa.String(length=128), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=True),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("origin", sa.JSON(), nullable=False),
        sa.Column("parent_run_id", sa.String(length=32), nullable=True),
        sa.Column("parent_step", sa.String(length=64), nullable=True),
        sa.Column("workspace", sa.Text(), nullable=True),
        sa.Column("on_failure", sa.String(length=16), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        _when("created_at", nullable=False),
        _when("updated_at", nullable=False),
        _when("finished_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_status", "runs", ["status"], unique=False)
    op.create_index("ix_runs_parent_run_id", "runs", ["parent_run_id"], unique=False)


def _create_steps() -> None:
    op.create_table(
        "steps",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lost_attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("depends_on", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("gate_passed", sa.Boolean(), nullable=False),
        _when("queued_at"),
        _when("not_before"),
        _when("lease_until"),
        _when("started_at"),
        _when("finished_at"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.create_index("ix_steps_status_lease", "steps", ["status", "lease_until"], unique=False)


def _create_checkpoints() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step_key", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("modifications", sa.JSON(), nullable=False),
        _when("created_at", nullable=False),
        _when("decided_at"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_checkpoints_run_status", "checkpoints", ["run_id", "status"], unique=False)


def _create_events() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=48), nullable=False),
        sa.Column("step_key", sa.String(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        _when("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "seq", name="uq_events_run_seq"),
    )
    op.create_index("ix_events_run_id", "events", ["run_id"], unique=False)


def _create_playbooks() -> None:
    op.create_table(
        "playbooks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        _when("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in ("playbooks", "events", "checkpoints", "steps", "runs"):
        op.drop_table(table)
