"""Recording events: one per state change, in the same transaction, ordered per run.

``emit`` buffers the event on the session; just before the transaction commits, the
buffered events of each run get consecutive sequence numbers from ``runs.event_seq``
(one ``UPDATE … RETURNING`` per run) and are inserted in one statement. The update
holds SQLite's write lock (PostgreSQL's row lock) until commit, so two writers never
take the same numbers, and the events commit with the changes they describe, or not
at all. The same update says whether the run reports somewhere (``runs.reply_to``):
those runs are noted on the session (``to_notify``) for the engine to hand to the
``notify`` queue after commit.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, event, insert, update
from sqlmodel import Session, col

from orchestrator.models import Event, Run, utcnow

_BUFFER = "firstmate.events"
_NOTIFY = "firstmate.notify"
# Built once: constructing statements costs more than running them on this hot path.
_RESERVE = (
    update(Run)
    .where(col(Run.id) == bindparam("run"))
    .values(event_seq=col(Run.event_seq) + bindparam("n"), updated_at=bindparam("now"))
    .returning(col(Run.event_seq), col(Run.reply_to))
)
_INSERT = insert(Event)


def emit(
    session: Session,
    run_id: str,
    type_: str,
    *,
    step: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event to the run's history, written when the transaction commits."""
    buffered = session.info.setdefault(_BUFFER, [])
    buffered.append((run_id, type_, step, data or {}, utcnow()))


def flush_events(session: Session) -> None:
    """Write the buffered events (called before every commit; safe to call any time)."""
    buffered = session.info.pop(_BUFFER, None)
    if not buffered:
        return
    by_run: dict[str, list[tuple[str, str, str | None, dict[str, Any], Any]]] = defaultdict(list)
    for item in buffered:
        by_run[item[0]].append(item)
    connection = session.connection()
    rows = []
    notify = session.info.setdefault(_NOTIFY, set())
    for run_id, items in by_run.items():
        last, reply_to = connection.execute(
            _RESERVE, {"run": run_id, "n": len(items), "now": utcnow()}
        ).one()
        if reply_to:
            notify.add(run_id)
        first = int(last) - len(items) + 1
        rows += [
            {
                "run_id": run_id,
                "seq": first + i,
                "type": type_,
                "step_key": step,
                "data": data,
                "created_at": at,
            }
            for i, (_, type_, step, data, at) in enumerate(items)
        ]
    connection.execute(_INSERT, rows)


def to_notify(session: Session) -> set[str]:
    """The runs that reported somewhere and got events in this session (taken once)."""
    runs: set[str] = session.info.pop(_NOTIFY, set())
    return runs


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    flush_events(session)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_BUFFER, None)
    session.info.pop(_NOTIFY, None)
