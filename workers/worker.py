"""The worker process: an RQ worker on the plan, steps and notify queues, with the
reconciler running beside it.

``SimpleWorker`` (no fork per job): a forked work-horse would copy the warm sandbox
pool and two jobs would take the same container; it is also ≈ 4x faster per job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from rq import SimpleWorker
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from workers import logs, runtime
from workers.queue import NOTIFY, QUEUES, STEPS, queue

log = logging.getLogger(__name__)


def work(queues: Sequence[str] = QUEUES, *, burst: bool = False) -> None:
    """Work the queues until stopped (or, with ``burst``, until they are empty)."""
    rt = runtime.current()
    logs.configure(rt.settings.secret_values())
    worker = SimpleWorker(
        [queue(name, rt.redis) for name in queues],
        connection=rt.redis,
        serializer=JSONSerializer,
    )
    stop = threading.Event()
    if STEPS in queues:  # warm sandboxes while the first job is on its way
        threading.Thread(target=_warm, args=(rt,), name="warm", daemon=True).start()
    if not burst:
        threading.Thread(
            target=_reconcile_every, args=(rt, stop), name="reconciler", daemon=True
        ).start()
    if not burst and NOTIFY in queues and len(queues) > 1:
        # A long step must not hold up every card: deliveries get a worker of their own
        # (the main one still takes them when idle, and runs the scheduler for both).
        threading.Thread(target=_deliver, args=(rt,), name="notify", daemon=True).start()
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    finally:
        stop.set()
        rt.close(keep_redis=True)  # the notify thread's worker may still be listening


class _ThreadWorker(SimpleWorker):
    """A SimpleWorker in a thread: signals belong to the main thread, so no signal
    handlers, and job timeouts by timer rather than SIGALRM."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


def _deliver(rt: runtime.Runtime) -> None:
    worker = _ThreadWorker(
        [queue(NOTIFY, rt.redis)], connection=rt.redis, serializer=JSONSerializer
    )
    try:
        worker.work(logging_level="WARNING")
    except Exception:  # the main worker still delivers, between steps
        log.exception("the notify worker thread stopped")


def _warm(rt: runtime.Runtime) -> None:
    try:
        rt.pool()
    except Exception as exc:  # no Docker here: shell steps will say so when they run
        log.warning("sandbox pool not started: %s", exc)


def _reconcile_every(rt: runtime.Runtime, stop: threading.Event) -> None:
    while not stop.wait(rt.settings.reconcile_s):
        try:
            rt.engine.reconcile()
        except Exception:  # the next pass tries again
            log.exception("reconciler pass failed")
