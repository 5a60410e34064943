"""Recording events: one per state change, in the same transaction, ordered per run.

The per-run sequence number comes from ``runs.event_seq``, bumped by the same
transaction that records the event: on SQLite the transaction holds the write lock, on
PostgreSQL the row lock, so two writers never take the same number.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col

from orchestrator.models import Event, Run, utcnow


def emit(
    session: Session,
    run_id: str,
    type_: str,
    *,
    step: str | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Append one event to the run's history; return its sequence number."""
    seq = session.execute(
        update(Run)
        .where(col(Run.id) == run_id)
        .values(event_seq=col(Run.event_seq) + 1, updated_at=utcnow())
        .returning(col(Run.event_seq))
    ).scalar_one()
    session.add(Event(run_id=run_id, seq=seq, type=type_, step_key=step, data=data or {}))
    return int(seq)
