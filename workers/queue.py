"""RQ as transport: the queues, and the Dispatcher the engine enqueues through.

Jobs are plain importable functions that take ids (``workers.jobs``); the job id of a
step attempt is deterministic, so enqueueing it twice runs it at most once (the
second start finds the step claimed). Results expire after a minute (the database has them);
failed jobs are kept a day, not RQ's default year. JSON, not pickle.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from orchestrator.errors import ConfigError
from orchestrator.ports import step_job_id

PLAN, STEPS, NOTIFY = "plan", "steps", "notify"
QUEUES = (PLAN, STEPS, NOTIFY)
RESULT_TTL_S = 60  # short: deleting a finished job costs more than expiring it
FAILURE_TTL_S = 24 * 3600
# RQ kills a job that outlives its step's timeout by this much: the sandbox has
# already been killed by then, so this only catches a stuck worker.
JOB_TIMEOUT_MARGIN_S = 120
RUN_STEP = "workers.jobs.run_step"


def connect(url: str) -> redis.Redis:
    """A Redis client for ``url``, checked: a clear error when nothing answers."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(
            f"cannot reach Redis at {url} ({exc}): start redis-server or set REDIS_URL"
        ) from exc
    return client


def queue(name: str, connection: redis.Redis) -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)


def _whole_second_after(when: datetime) -> datetime:
    """RQ's scheduler keeps times in whole seconds, truncated: round up instead, so a
    retry never starts before its backoff is over."""
    if when.microsecond == 0:
        return when
    return when.replace(microsecond=0) + timedelta(seconds=1)


class RQDispatcher:
    """The engine's Dispatcher on RQ."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._steps = queue(STEPS, connection)

    def enqueue_step(
        self, run_id: str, key: str, attempt: int, *, not_before: datetime | None, timeout_s: float
    ) -> None:
        job_id = step_job_id(run_id, key, attempt)
        timeout = int(timeout_s) + JOB_TIMEOUT_MARGIN_S
        description = f"run {run_id} step {key} attempt {attempt}"
        if not_before is not None and not_before > datetime.now(UTC):
            self._steps.enqueue_at(
                _whole_second_after(not_before),
                RUN_STEP,
                run_id,
                key,
                attempt,
                job_id=job_id,
                job_timeout=timeout,
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
                description=description,
            )
        else:
            self._steps.enqueue_call(
                RUN_STEP,
                args=(run_id, key, attempt),
                job_id=job_id,
                timeout=timeout,
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
                description=description,
            )

    def has_job(self, job_id: str) -> bool:
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return False
        return job.get_status(refresh=False) not in ("finished", "failed", "canceled", "stopped")
