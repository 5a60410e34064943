"""Limits on starting runs, per requester, in Redis (shared by every server process).

A fixed window per requester: ``limit`` starts per ``window_s`` seconds. A refused
request records nothing and is told when to come back (``Retry-After``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0


class RateLimiter:
    """``limit`` run starts per ``window_s`` per requester (``limit`` 0: no limit)."""

    def __init__(self, connection: redis.Redis, limit: int, window_s: int) -> None:
        self.redis = connection
        self.limit = limit
        self.window_s = max(1, window_s)

    @classmethod
    def parse(cls, connection: redis.Redis, spec: str) -> RateLimiter:
        """From ``FIRSTMATE_RATE_LIMIT``: ``N/seconds`` (e.g. ``60/60``), or ``0``."""
        count, _, seconds = spec.partition("/")
        try:
            return cls(connection, int(count), int(seconds or 60))
        except ValueError as exc:
            from orchestrator.errors import ConfigError

            raise ConfigError(
                f"FIRSTMATE_RATE_LIMIT {spec!r} is not N/seconds (e.g. 60/60)"
            ) from exc

    def take(self, requester: str) -> Verdict:
        """Count one start for ``requester`` if the window allows it."""
        if self.limit <= 0:
            return Verdict(True)
        now = time.time()
        window = int(now // self.window_s)
        key = f"firstmate:rate:{requester}:{window}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.window_s + 1)
        count = int(pipe.execute()[0])
        if count <= self.limit:
            return Verdict(True)
        return Verdict(False, max(1, int((window + 1) * self.window_s - now + 0.999)))
