"""The ``notify`` job: deliver a run's progress to where the run reports.

The engine calls ``Dispatcher.notify(run)`` after every commit that gave the run events;
the dispatcher queues at most one delivery per run at a time (a mark in Redis), so a
burst of events becomes one delivery. A delivery renders the run's current state from
the database, so it can never show a stale or lost event: it only has to run once more
after the last change. When it cannot deliver now (rate limited, the service down, a
message edited less than a second ago), it queues itself again for later, and the
events that arrive meanwhile wait for that delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Protocol

import redis

from orchestrator import deliveries
from orchestrator.deliveries import Destination
from orchestrator.store import Store
from workers.queue import NOTIFY_PENDING_S, RQDispatcher, notify_key

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 300.0
UNCONFIGURED_RETRY_S = 60.0
SUBSCRIBED = "webhooks"  # reply_to of runs that report only to outgoing subscriptions
DELIVERY_LOCK_S = 120  # longer than any delivery (each Slack call times out in 10 s)


class Deferred(Exception):
    """Delivery must wait: ``after_s`` seconds, or None to back off (the service is
    failing: each consecutive failure waits twice as long, up to five minutes)."""

    def __init__(self, after_s: float | None, why: str) -> None:
        super().__init__(why)
        self.after_s = after_s
        self.why = why


class Channel(Protocol):
    """Delivers runs that report to one kind of place (``Run.reply_to``)."""

    def deliver(self, destination: Destination) -> None: ...


class Subscribers(Protocol):
    """Outgoing webhook subscriptions: every run's events, whatever its destination."""

    def deliver(self, run_id: str) -> None: ...


class Notifier:
    """Runs one delivery of one run, and queues the next when it must wait."""

    def __init__(
        self,
        store: Store,
        connection: redis.Redis,
        dispatcher: RQDispatcher,
        channels: Mapping[str, Channel],
        *,
        subscriptions: Subscribers | None = None,
    ) -> None:
        self.store = store
        self.redis = connection
        self.dispatcher = dispatcher
        self.channels = dict(channels)
        self.subscriptions = subscriptions

    def deliver(self, run_id: str) -> None:
        """Bring what the run's destination shows up to date (safe to run twice)."""
        # A delivery that must wait (backoff, Retry-After) holds back any other that was
        # queued meanwhile: one chain of retries per run, at the pace it was told.
        wait = self._not_before(run_id) - time.time()
        if wait > 0:
            self._again(run_id, wait)
            return
        # One delivery per run at a time (two workers would both edit the card at once).
        lock = self.redis.lock(f"firstmate:delivering:{run_id}", timeout=DELIVERY_LOCK_S)
        if not lock.acquire(blocking=False):
            self._again(run_id, 1.0)
            return
        try:
            self._deliver(run_id)
        finally:
            lock.release()

    def _deliver(self, run_id: str) -> None:
        # From here on, a new event queues another delivery: this one may miss it.
        self.redis.delete(notify_key(run_id))
        destination = deliveries.destination(self.store, run_id)
        if destination is None or destination.reply_to is None:
            return
        # Each part delivers on its own: a failing subscriber does not hold up the card.
        waits = [w for w in (self._subscribers(run_id), self._channel(destination)) if w]
        if not waits:
            self.redis.delete(_failures_key(run_id))
            return
        for wait in waits:
            log.warning("delivery of run %s waits: %s", run_id, wait.why)
        timed = [w.after_s for w in waits if w.after_s is not None]
        backoff = len(timed) < len(waits)
        self._later(run_id, self._backoff(run_id) if backoff else min(timed))

    def _subscribers(self, run_id: str) -> Deferred | None:
        if self.subscriptions is None:
            return None
        try:
            self.subscriptions.deliver(run_id)
        except Deferred as wait:
            return wait
        return None

    def _channel(self, destination: Destination) -> Deferred | None:
        if destination.reply_to == SUBSCRIBED:
            return None
        channel = self.channels.get(destination.reply_to or "")
        if channel is None:
            log.error(
                "run %s reports to %s, which this worker is not configured for",
                destination.run_id,
                destination.reply_to,
            )
            return Deferred(UNCONFIGURED_RETRY_S, "destination not configured here")
        try:
            channel.deliver(destination)
        except Deferred as wait:
            return wait
        return None

    def _backoff(self, run_id: str) -> float:
        failures = int(self.redis.incr(_failures_key(run_id)))
        self.redis.expire(_failures_key(run_id), 24 * 3600)
        return float(min(MAX_BACKOFF_S, 2.0 ** min(failures, 16)))

    def _later(self, run_id: str, after_s: float) -> None:
        """This delivery failed: nothing for the run before ``after_s``. A delivery
        already queued (an event during this one) will find that out and wait; else
        one is queued for then."""
        expires = NOTIFY_PENDING_S + int(after_s)
        self.redis.set(_not_before_key(run_id), time.time() + after_s, ex=expires)
        if self.redis.set(notify_key(run_id), 1, nx=True, ex=expires):
            self.dispatcher.schedule_notify(run_id, after_s)

    def _again(self, run_id: str, after_s: float) -> None:
        # This job was the queued one: it stays so (the mark set) until it runs again.
        self.redis.set(notify_key(run_id), 1, ex=NOTIFY_PENDING_S + int(after_s))
        self.dispatcher.schedule_notify(run_id, after_s)

    def _not_before(self, run_id: str) -> float:
        value = self.redis.get(_not_before_key(run_id))
        return float(value) if value is not None else 0.0


def _not_before_key(run_id: str) -> str:
    return f"firstmate:notify-not-before:{run_id}"


def _failures_key(run_id: str) -> str:
    return f"firstmate:notify-failures:{run_id}"
