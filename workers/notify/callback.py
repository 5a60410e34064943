"""Delivering a run's result to the URL its requester gave (an n8n Wait node's
``$execution.resumeUrl``): one signed POST when the run ends.

The body is the object ``firstmate run --json`` prints. It is signed like every webhook
Firstmate sends (:func:`signed_headers`): ``X-Firstmate-Timestamp`` and, with
``FIRSTMATE_WEBHOOK_SECRET``, ``X-Firstmate-Signature: v1=<hex HMAC-SHA256(secret,
"<timestamp>.<body>")>``; ``X-Firstmate-Delivery`` (the run's id) lets the receiver drop
a second copy. A 2xx is recorded in ``deliveries`` and never sent again (at least once:
a worker that dies between the POST and the record sends it once more). A 5xx, a 408,
a 429 or no answer waits (``Deferred``: the notifier backs off and comes back); 404,
409 and 410 mean the receiver wants nothing any more (n8n: the execution is gone or
was resumed already) and any other answer is a refusal: both are recorded as given up.
One exception: n8n also answers 409 while the execution has not reached its Wait node
yet, so a 409 within a minute of the run's end is tried again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import httpx

from orchestrator import deliveries
from orchestrator.deliveries import Destination
from orchestrator.models import utcnow
from orchestrator.queries import RunResult, run_report, run_result
from orchestrator.states import RUN_TERMINAL
from orchestrator.store import Store
from workers.notify.notifier import Deferred

log = logging.getLogger(__name__)
TARGET = "callback"
RESULT, SEEN = "result", "seen"
TIMEOUT_S = 10.0
# A result nobody took within a day is given up (the notifier would come back forever).
GIVE_UP_AFTER = timedelta(days=1)
# n8n answers 409 "running already" until the execution has reached its Wait node, which
# a quick run can beat: a 409 this soon after the run ended is tried again.
CONFLICT_GRACE = timedelta(seconds=60)
USER_AGENT = "Firstmate-Webhook/1"


# -- signed POSTs (shared with the outgoing webhook subscriptions) -----------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def signed_headers(
    body: bytes, secret: str | None, delivery: str, *, now: float | None = None
) -> dict[str, str]:
    """The headers of a webhook Firstmate sends (signed when there is a secret)."""
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Firstmate-Delivery": delivery,
        "X-Firstmate-Timestamp": str(timestamp),
    }
    if secret:
        headers["X-Firstmate-Signature"] = signature(secret, timestamp, body)
    return headers


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # the receiver is failing or away: try again later
    GONE = "gone"  # 404, 409, 410: it wants nothing any more
    REFUSED = "refused"  # any other answer: sending the same again will not help


@dataclass(frozen=True)
class Answer:
    """What a POST came to: the verdict, the HTTP status (None: no answer), why."""

    verdict: Verdict
    status: int | None
    detail: str
    retry_after_s: float | None = None


def verdict_for(status: int) -> Verdict:
    """What an HTTP status means for a delivery (decided here, acted on by callers)."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in (404, 409, 410):
        return Verdict.GONE
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.REFUSED


def post_signed(
    client: httpx.Client, url: str, body: bytes, *, secret: str | None, delivery: str
) -> Answer:
    """POST ``body`` to ``url``, signed; httpx's errors become a ``RETRY`` answer."""
    try:
        response = client.post(url, content=body, headers=signed_headers(body, secret, delivery))
    except httpx.HTTPError as exc:
        return Answer(Verdict.RETRY, None, f"no answer from {url}: {type(exc).__name__}: {exc}")
    status = response.status_code
    detail = f"{url} answered {status}"
    if not 200 <= status < 300 and response.text:
        detail += f": {response.text[:200]}"
    return Answer(verdict_for(status), status, detail, _retry_after(response))


def http_client() -> httpx.Client:
    """A client for webhooks: short timeout, redirects not followed (a 3xx is refused)."""
    return httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if response.status_code == 429 and value.isdigit() else None


# -- the channel ---------------------------------------------------------------------


def callback_url(origin: Mapping[str, Any]) -> str | None:
    """The URL a run's result goes to: ``callback_url`` in its origin (under the source's
    name, e.g. ``origin["n8n"]``, or under ``"callback"``)."""
    preferred = origin.get(TARGET)
    for entry in [preferred, *origin.values()]:
        if isinstance(entry, Mapping) and isinstance(entry.get("callback_url"), str):
            return str(entry["callback_url"])
    return None


class CallbackChannel:
    """The ``callback`` destination of the notifier: the result, POSTed once."""

    def __init__(
        self,
        store: Store,
        secret: str | None,
        client: httpx.Client | None = None,
        *,
        conflict_grace: timedelta = CONFLICT_GRACE,
    ) -> None:
        self.store = store
        self.secret = secret
        self.client = client or http_client()
        self.conflict_grace = conflict_grace

    def deliver(self, destination: Destination) -> None:
        done = deliveries.posted(self.store, destination.run_id, TARGET)
        if RESULT in done:
            return
        url = callback_url(destination.origin)
        if destination.parent_run_id is not None or url is None:
            # A child run inherits its parent's destination; the parent's result is the
            # one the requester waits for.
            if url is None:
                log.error(
                    "run %s reports to a callback but has no callback_url", destination.run_id
                )
            self._seen(destination, done)
            return
        report = run_report(self.store, destination.run_id)
        if report.status not in RUN_TERMINAL:
            self._seen(destination, done)  # nothing to send before the end
            return
        ended_ago = utcnow() - (report.finished_at or utcnow())
        if ended_ago > GIVE_UP_AFTER:
            log.warning("result of run %s was never taken by %s: given up", report.run_id, url)
            self._record(destination, "expired", "expired")
            return
        answer = self._post(destination, url, run_result(report))
        self._settle(destination, answer, ended_ago)

    def _post(self, destination: Destination, url: str, result: RunResult) -> Answer:
        body = result.model_dump_json().encode()
        return post_signed(self.client, url, body, secret=self.secret, delivery=result.run_id)

    def _settle(self, destination: Destination, answer: Answer, ended_ago: timedelta) -> None:
        """Record the outcome of the POST, or raise Deferred when it must be sent again."""
        run_id, ref = destination.run_id, str(answer.status or "-")
        verdict = answer.verdict
        if verdict is Verdict.GONE and answer.status == 409 and ended_ago < self.conflict_grace:
            verdict = Verdict.RETRY  # not waiting yet, most likely: see CONFLICT_GRACE
        if verdict is Verdict.DELIVERED:
            self._record(destination, ref, "delivered")
        elif verdict is Verdict.RETRY:
            raise Deferred(answer.retry_after_s, f"result callback: {answer.detail}")
        elif verdict is Verdict.GONE:
            log.warning("result of run %s not delivered, given up: %s", run_id, answer.detail)
            self._record(destination, ref, "gone")
        else:
            log.error("result of run %s refused, given up: %s", run_id, answer.detail)
            self._record(destination, ref, "refused")

    def _seen(self, destination: Destination, done: dict[str, deliveries.Posted]) -> None:
        """Note that the callback is current with the run's events (so the reconciler,
        which redelivers runs that are behind, leaves this one alone)."""
        seen = done.get(SEEN)
        if seen is None or seen.seq < destination.event_seq:
            self._record(destination, "-", "", key=SEEN)

    def _record(
        self, destination: Destination, ref: str, digest: str, *, key: str = RESULT
    ) -> None:
        deliveries.record(
            self.store,
            destination.run_id,
            TARGET,
            key,
            ref=ref,
            digest=digest,
            seq=destination.event_seq,
        )
