"""The outgoing webhooks' delivery log: which run event was POSTed to which
subscription, how many times, and what the receiver answered.

One row per (run, subscription URL, event); the deliverer writes it after every attempt,
operators and the API read it (:func:`webhook_log`). Nothing here changes a run.

    pending ──► delivered | failed | gone        (pending → pending on each retry)
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from orchestrator.models import WebhookDelivery, utcnow
from orchestrator.store import Store


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # the last attempt failed and another will follow
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # given up: refused (4xx), or too many attempts
    GONE = "gone"  # the receiver answered 404, 409 or 410: it wants no more


FINAL = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.GONE})
_ERROR_CHARS = 500  # a receiver's error page is not worth keeping whole


class WebhookLogEntry(BaseModel):
    """One event's delivery to one subscription."""

    id: int
    run_id: str
    url: str
    event_seq: int
    event_type: str
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def final(self) -> bool:
        return self.status in FINAL


def entries(store: Store, run_id: str) -> dict[tuple[str, int], WebhookLogEntry]:
    """The run's log, by (URL, event sequence number)."""
    with store.session() as s:
        rows = s.exec(select(WebhookDelivery).where(col(WebhookDelivery.run_id) == run_id))
        return {(r.url, r.event_seq): _entry(r) for r in rows}


def record_attempt(
    store: Store,
    run_id: str,
    url: str,
    event_seq: int,
    event_type: str,
    *,
    status: DeliveryStatus,
    response_status: int | None,
    error: str | None = None,
) -> WebhookLogEntry:
    """Count one more attempt at delivering the event to ``url``, and its outcome."""
    try:
        return _record(store, run_id, url, event_seq, event_type, status, response_status, error)
    except IntegrityError:  # a concurrent first attempt inserted the row: count on it
        return _record(store, run_id, url, event_seq, event_type, status, response_status, error)


def webhook_log(
    store: Store, run_id: str | None = None, *, limit: int = 100
) -> list[WebhookLogEntry]:
    """The newest deliveries first (of one run, or of every run)."""
    query = select(WebhookDelivery)
    if run_id is not None:
        query = query.where(col(WebhookDelivery.run_id) == run_id)
    query = query.order_by(col(WebhookDelivery.updated_at).desc(), col(WebhookDelivery.id).desc())
    with store.session() as s:
        return [_entry(r) for r in s.exec(query.limit(limit))]


def _record(
    store: Store,
    run_id: str,
    url: str,
    event_seq: int,
    event_type: str,
    status: DeliveryStatus,
    response_status: int | None,
    error: str | None,
) -> WebhookLogEntry:
    with store.session() as s:
        row = s.exec(
            select(WebhookDelivery).where(
                col(WebhookDelivery.run_id) == run_id,
                col(WebhookDelivery.url) == url,
                col(WebhookDelivery.event_seq) == event_seq,
            )
        ).first()
        if row is None:
            row = WebhookDelivery(
                run_id=run_id, url=url, event_seq=event_seq, event_type=event_type, status=status
            )
        row.status = status
        row.attempts += 1
        row.response_status = response_status
        row.last_error = error[:_ERROR_CHARS] if error else None
        row.updated_at = utcnow()
        s.add(row)
        s.flush()
        return _entry(row)


def _entry(row: WebhookDelivery) -> WebhookLogEntry:
    assert row.id is not None  # read back from the database
    return WebhookLogEntry(
        id=row.id,
        run_id=row.run_id,
        url=row.url,
        event_seq=row.event_seq,
        event_type=row.event_type,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        response_status=row.response_status,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
