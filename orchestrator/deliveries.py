"""What was delivered where: messages posted for a run (so they are edited, never posted
twice) and deliveries received from outside (so a retry starts nothing twice).

Delivery is at least once: a message is recorded right after it is posted, so a worker
that dies between the two posts it again on the next pass. Nothing here changes a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from orchestrator.models import Delivery, Inbound, Run, utcnow
from orchestrator.store import Store


@dataclass(frozen=True)
class Posted:
    """One message posted for a run."""

    key: str
    ref: str
    thread: str | None
    digest: str
    seq: int
    age_s: float


@dataclass(frozen=True)
class Destination:
    """Where a run reports, and who asked for it."""

    run_id: str
    reply_to: str | None
    origin: dict[str, Any]
    requester: str | None
    playbook: str | None
    request: str | None
    event_seq: int
    approvers: list[str]
    parent_run_id: str | None = None


def destination(store: Store, run_id: str) -> Destination | None:
    with store.reading() as s:
        run = s.get(Run, run_id)
        if run is None:
            return None
        return Destination(
            run.id,
            run.reply_to,
            dict(run.origin),
            run.requester,
            run.playbook,
            run.request,
            run.event_seq,
            list((run.plan or {}).get("approvers") or []),
            run.parent_run_id,
        )


def posted(store: Store, run_id: str, target: str) -> dict[str, Posted]:
    """The messages posted for the run on ``target``, by key."""
    now = utcnow()
    with store.reading() as s:
        rows = s.exec(
            select(Delivery).where(col(Delivery.run_id) == run_id, col(Delivery.target) == target)
        ).all()
        return {
            r.key: Posted(
                r.key, r.ref, r.thread, r.digest, r.seq, (now - r.updated_at).total_seconds()
            )
            for r in rows
        }


def record(
    store: Store,
    run_id: str,
    target: str,
    key: str,
    *,
    ref: str,
    digest: str,
    seq: int,
    thread: str | None = None,
) -> None:
    """Remember a message as posted (or as edited to show ``digest``)."""
    with store.session() as s:
        row = s.get(Delivery, (run_id, target, key))
        if row is None:
            row = Delivery(run_id=run_id, target=target, key=key, ref=ref)
        row.ref, row.digest, row.seq, row.updated_at = ref, digest, seq, utcnow()
        if thread is not None:
            row.thread = thread
        s.add(row)


def run_in_thread(store: Store, target: str, thread: str) -> str | None:
    """The run whose card lives in ``thread`` (e.g. a Slack ``channel:ts``); child runs
    post their cards in their parent's thread, and the thread belongs to the parent."""
    with store.reading() as s:
        query = (
            select(Delivery.run_id)
            .join(Run, col(Run.id) == col(Delivery.run_id))
            .where(col(Delivery.target) == target, col(Delivery.thread) == thread)
            .where(col(Run.parent_run_id).is_(None))
            .order_by(col(Run.created_at).desc())  # a later run in the same thread wins
        )
        return s.exec(query.limit(1)).first()


def runs_in_channel(store: Store, target: str, channel: str, *, limit: int = 10) -> list[str]:
    """The runs with a card in ``channel`` (threads ``channel:ts``), newest first."""
    query = (
        select(Delivery.run_id)
        .where(col(Delivery.target) == target, col(Delivery.key) == "card")
        .where(col(Delivery.thread).startswith(f"{channel}:", autoescape=True))
        .order_by(col(Delivery.updated_at).desc())
        .limit(limit)
    )
    with store.reading() as s:
        return list(s.exec(query).all())


def behind(store: Store, *, limit: int = 100, within: timedelta = timedelta(days=1)) -> list[str]:
    """Runs that report somewhere and have events their card has not shown yet (among
    those that changed ``within`` the last day: older ones are given up)."""
    shown = (
        select(Delivery.run_id, func.max(Delivery.seq).label("seq"))
        .group_by(col(Delivery.run_id))
        .subquery()
    )
    query = (
        select(Run.id)
        .outerjoin(shown, shown.c.run_id == col(Run.id))
        .where(col(Run.reply_to).is_not(None), col(Run.updated_at) > utcnow() - within)
        .where(func.coalesce(shown.c.seq, 0) < col(Run.event_seq))
        .limit(limit)
    )
    with store.reading() as s:
        return list(s.exec(query).all())


def first_time(store: Store, key: str, run_id: str | None = None) -> bool:
    """Record an inbound delivery; False when ``key`` was seen before."""
    try:
        with store.session() as s:
            s.add(Inbound(key=key, run_id=run_id))
    except IntegrityError:
        return False
    return True
