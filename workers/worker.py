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

from workers import runtime
from workers.queue import QUEUES, STEPS, queue

log = logging.getLogger(__name__)


def work(queues: Sequence[str] = QUEUES, *, burst: bool = False) -> None:
    """Work the queues until stopped (or, with ``burst``, until they are empty)."""
    rt = runtime.current()
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
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    finally:
        stop.set()
        rt.close()


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
