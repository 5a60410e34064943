"""Outgoing webhooks: run events POSTed to the URLs in ``FIRSTMATE_WEBHOOKS``.

``FIRSTMATE_WEBHOOKS`` is a comma-separated list of ``[playbook=]url``: with a playbook,
the URL hears of that playbook's runs; without, of every run. Each subscription gets
one POST per event in :data:`EVENTS` (a run's end, a checkpoint opened), in order, as
JSON (:class:`WebhookEvent`), signed like the result callback
(:func:`workers.notify.callback.signed_headers`; ``X-Firstmate-Delivery`` is
``<run_id>:<seq>``). Every attempt is written to the delivery log
(:mod:`orchestrator.webhooklog`). A subscriber that fails (5xx, 408, 429, no answer)
stops its own deliveries for this pass and the pass raises ``Deferred``: the notifier
backs off and comes back; the others are delivered meanwhile. 404, 409 and 410 are
``gone``, other answers and too many attempts ``failed``: given up, never sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from orchestrator import deliveries, webhooklog
from orchestrator.deliveries import Destination
from orchestrator.errors import ConfigError
from orchestrator.queries import EventReport, RunResult, events_after, run_report, run_result
from orchestrator.store import Store
from orchestrator.webhooklog import DeliveryStatus, WebhookLogEntry
from workers.notify.callback import Answer, Verdict, http_client, post_signed
from workers.notify.notifier import Deferred

log = logging.getLogger(__name__)
# The reply_to of runs that report nowhere but to the subscriptions.
TARGET = "webhooks"
SEEN = "seen"
RUN_ENDED = frozenset({"run.succeeded", "run.failed", "run.aborted"})
EVENTS = RUN_ENDED | {"checkpoint.opened"}
MAX_ATTEMPTS = 20  # with the notifier's backoff (up to 5 min apart): about 75 minutes


@dataclass(frozen=True)
class Subscription:
    """A URL that hears of the runs of one playbook (``playbook`` None: of every run)."""

    url: str
    playbook: str | None = None

    def matches(self, playbook: str | None) -> bool:
        return self.playbook is None or self.playbook == playbook


def parse_subscriptions(spec: str) -> list[Subscription]:
    """From ``FIRSTMATE_WEBHOOKS``: ``[playbook=]url``, comma-separated."""
    found = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        playbook: str | None = None
        if not entry.lower().startswith(("http://", "https://")):
            playbook, _, entry = (part.strip() for part in entry.partition("="))
        parts = urlsplit(entry)
        if parts.scheme not in ("http", "https") or not parts.netloc or playbook == "":
            raise ConfigError(
                f"FIRSTMATE_WEBHOOKS entry {raw.strip()!r} is not [playbook=]http(s)://…"
                " (e.g. deploy=https://hooks.example.com/firstmate)"
            )
        found.append(Subscription(entry, playbook))
    return found


class WebhookEvent(BaseModel):
    """The body of an outgoing webhook: one run event (with the result when it ended)."""

    type: str
    run_id: str
    playbook: str | None
    parent_run_id: str | None
    seq: int
    step: str | None
    at: datetime
    data: dict[str, Any]
    result: RunResult | None = None


class Subscriptions:
    """Delivers run events to the subscriptions that match each run's playbook."""

    def __init__(
        self,
        store: Store,
        subscriptions: Sequence[Subscription],
        secret: str | None,
        client: httpx.Client | None = None,
        *,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.subscriptions = list(subscriptions)
        self.secret = secret
        self.client = client or http_client()
        self.max_attempts = max_attempts

    def deliver(self, run_id: str) -> None:
        """Send the run's events that a matching subscription has not had yet (safe to
        run twice); raise ``Deferred`` when some must be tried again later."""
        destination = deliveries.destination(self.store, run_id)
        if destination is None:
            return
        urls = [s.url for s in self.subscriptions if s.matches(destination.playbook)]
        if urls:
            events = [e for e in events_after(self.store, run_id, 0) if e.type in EVENTS]
            done = webhooklog.entries(self.store, run_id)
            waits = [w for url in urls if (w := self._deliver_to(url, destination, events, done))]
            if waits:  # 0 (back off) unless every failing receiver said when to come back
                after = min(w for w, _ in waits) or None
                failed = ", ".join(why for _, why in waits)
                raise Deferred(after, f"webhooks of run {run_id} wait: {failed}")
        self._seen(destination)

    def _deliver_to(
        self,
        url: str,
        destination: Destination,
        events: list[EventReport],
        done: dict[tuple[str, int], WebhookLogEntry],
    ) -> tuple[float, str] | None:
        """Deliver the events ``url`` has not had, in order; stop at the first that fails
        and can be tried again, and return when to (0: back off) and why, else None."""
        for event in events:
            before = done.get((url, event.seq))
            if before is not None and before.final:
                continue
            answer = self._post(url, destination, event)
            entry = self._record(url, destination.run_id, event, answer, before)
            if entry.status is DeliveryStatus.PENDING:
                return answer.retry_after_s or 0.0, answer.detail
        return None

    def _post(self, url: str, destination: Destination, event: EventReport) -> Answer:
        result = None
        if event.type in RUN_ENDED:
            result = run_result(run_report(self.store, destination.run_id))
        body = WebhookEvent(
            type=event.type,
            run_id=destination.run_id,
            playbook=destination.playbook,
            parent_run_id=destination.parent_run_id,
            seq=event.seq,
            step=event.step,
            at=event.at,
            data=event.data,
            result=result,
        ).model_dump_json()
        delivery = f"{destination.run_id}:{event.seq}"
        return post_signed(self.client, url, body.encode(), secret=self.secret, delivery=delivery)

    def _record(
        self,
        url: str,
        run_id: str,
        event: EventReport,
        answer: Answer,
        before: WebhookLogEntry | None,
    ) -> WebhookLogEntry:
        attempts = (before.attempts if before else 0) + 1
        status = _status(answer.verdict, exhausted=attempts >= self.max_attempts)
        if status is DeliveryStatus.GONE or status is DeliveryStatus.FAILED:
            log.warning("webhook %s of run %s given up: %s", event.type, run_id, answer.detail)
        elif status is DeliveryStatus.PENDING:
            log.info("webhook %s of run %s failed: %s", event.type, run_id, answer.detail)
        error = None if status is DeliveryStatus.DELIVERED else answer.detail
        return webhooklog.record_attempt(
            self.store,
            run_id,
            url,
            event.seq,
            event.type,
            status=status,
            response_status=answer.status,
            error=error,
        )

    def _seen(self, destination: Destination) -> None:
        """For a run that reports only here: note that it is delivered up to its last
        event, so the reconciler (which redelivers runs that are behind) leaves it."""
        if destination.reply_to != TARGET:
            return
        seen = deliveries.posted(self.store, destination.run_id, TARGET).get(SEEN)
        if seen is None or seen.seq < destination.event_seq:
            deliveries.record(
                self.store,
                destination.run_id,
                TARGET,
                SEEN,
                ref="-",
                digest="",
                seq=destination.event_seq,
            )


def _status(verdict: Verdict, *, exhausted: bool) -> DeliveryStatus:
    if verdict is Verdict.DELIVERED:
        return DeliveryStatus.DELIVERED
    if verdict is Verdict.GONE:
        return DeliveryStatus.GONE
    if verdict is Verdict.RETRY and not exhausted:
        return DeliveryStatus.PENDING
    return DeliveryStatus.FAILED
