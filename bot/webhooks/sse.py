"""A run's events as Server-Sent Events: what ``GET /api/runs/{id}/events`` streams.

One SSE event per run event (``id: <seq>``, ``event: <type>``, ``data: <json>``), from
just after the sequence number the client has seen, then new ones as they are recorded,
until the run's terminal event. The core is synchronous, so the database is polled from
a worker thread (``events_after``) and the event loop only ever waits. A comment line
(``: keepalive``) goes out when nothing else has for ``keepalive_s``, so proxies keep the
connection open. Starlette cancels the stream when the client disconnects, and the
polling stops with it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.to_thread
from starlette.responses import StreamingResponse

from orchestrator import queries
from orchestrator.errors import NotFound
from orchestrator.models import Run
from orchestrator.queries import EventReport
from orchestrator.states import RUN_TERMINAL
from orchestrator.store import Store

MEDIA_TYPE = "text/event-stream"
KEEPALIVE = b": keepalive\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: do not buffer
_TERMINAL_EVENTS = frozenset(f"run.{state.value}" for state in RUN_TERMINAL)


class EventStream(StreamingResponse):
    """A streaming response of type ``text/event-stream``."""

    media_type = MEDIA_TYPE


@dataclass(frozen=True)
class Batch:
    """What one poll found: the events after the last one sent, and whether the run had
    finished before they were read (then nothing will follow them)."""

    events: list[EventReport]
    finished: bool


def poll(store: Store, run_id: str, after: int) -> Batch:
    """The run's events after ``after``; NotFound if there is no such run."""
    # The status is read first: a run seen finished has all its events committed, so the
    # read that follows sees every one of them.
    finished = run_status(store, run_id) in RUN_TERMINAL
    return Batch(queries.events_after(store, run_id, after), finished)


def run_status(store: Store, run_id: str) -> str:
    """The run's status; NotFound if there is no such run."""
    with store.reading() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}: GET /api/runs lists the runs")
        return run.status


def encode(event: EventReport) -> bytes:
    """One run event in the SSE wire format (JSON has no newlines: one ``data:`` line)."""
    return f"id: {event.seq}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n".encode()


async def stream(
    store: Store,
    run_id: str,
    after: int,
    *,
    poll_s: float = 0.25,
    keepalive_s: float = 15.0,
) -> AsyncIterator[bytes]:
    """The run's events after ``after`` as SSE, until its terminal event."""
    last_sent = time.monotonic()
    while True:
        batch = await anyio.to_thread.run_sync(poll, store, run_id, after)
        for event in batch.events:
            yield encode(event)
            after = event.seq
            if event.type in _TERMINAL_EVENTS:
                return
        if batch.events:
            last_sent = time.monotonic()
        elif batch.finished:
            return  # the client had every event already
        elif time.monotonic() - last_sent >= keepalive_s:
            yield KEEPALIVE
            last_sent = time.monotonic()
        await anyio.sleep(poll_s)
