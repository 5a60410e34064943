"""A pool of warm sandboxes: pre-started, used once, refilled in the background."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import docker

from sandbox import reaper
from sandbox.container import DEFAULT_IMAGE, ContainerFactory, connect
from sandbox.errors import SandboxError
from sandbox.limits import Limits
from sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)

_PING_TIMEOUT_S = 2.0
_BACKOFF_MAX_S = 30.0
_REAP_EVERY_S = 60.0
_REMOVE_ATTEMPTS = 3
_REMOVE_BACKOFF_S = 0.5


@dataclass(frozen=True, slots=True)
class PoolStats:
    """How the pool has served: warm hits, cold misses, what is ready now."""

    hits: int
    misses: int
    warm: int
    last_error: str | None


class SandboxPool:
    """Hands out one fresh sandbox per step; never reuses one.

    ``size`` containers with ``limits`` are kept started and waiting. ``acquire`` takes
    one when the requested limits fix the same container (same memory, CPUs, pids,
    tmpfs, network, ulimits: the timeout and output cap may differ), and otherwise
    starts a cold one. Released sandboxes are removed in the background. The pool
    reaps orphans of dead processes when it starts and every minute after.
    """

    def __init__(
        self,
        image: str = DEFAULT_IMAGE,
        size: int = 2,
        *,
        limits: Limits | None = None,
        runtime: str | None = None,
        client: docker.DockerClient | None = None,
    ) -> None:
        if size < 0:
            raise ValueError(f"pool size must be 0 or more, got {size}")
        self.size = size
        self.limits = limits or Limits()
        self._factory = ContainerFactory(client or connect(), image, runtime=runtime)
        self._warm: deque[Sandbox] = deque()
        self._cond = threading.Condition()
        self._creating = 0
        self._closed = False
        self._hits = 0
        self._misses = 0
        self._last_error: str | None = None
        self._doomed: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    @property
    def image_digest(self) -> str:
        return self._factory.image_digest

    def start(self) -> SandboxPool:
        """Reap orphans, then start warming in the background. Idempotent."""
        if self._threads:
            return self
        reaper.reap_orphans(self._factory.client)
        self._threads = [
            threading.Thread(target=self._refill_loop, name="sandbox-refill", daemon=True),
            threading.Thread(target=self._remove_loop, name="sandbox-remove", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def wait_warm(self, timeout: float = 60.0) -> bool:
        """Block until ``size`` sandboxes are waiting (for benchmarks and tests)."""
        self.start()
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._warm) < self.size and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    @contextmanager
    def acquire(
        self,
        limits: Limits | None = None,
        workspace: Path | None = None,
        *,
        run_id: str | None = None,
        step_id: str | None = None,
    ) -> Iterator[Sandbox]:
        """A sandbox for one step; removed when the block ends.

        With ``workspace``, the directory's contents are copied in first, and at the end
        what the sandbox changed in its workspace is applied back, also when the block
        raised (then a failed copy does not hide the original error). Only changes go
        back, so steps running in parallel on one workspace keep each other's work;
        ``sandbox.synced`` then says what was changed, deleted and skipped.
        """
        self.start()
        want = limits or self.limits
        sandbox = self._take(want, run_id, step_id) or self._cold(want, run_id, step_id)
        try:
            if workspace is not None:
                sandbox.push_dir(workspace)
            try:
                yield sandbox
            except BaseException:
                if workspace is not None and sandbox.alive:
                    with suppress(SandboxError):
                        sandbox.pull_dir(workspace)
                raise
            if workspace is not None:
                sandbox.pull_dir(workspace)
        finally:
            self._discard(sandbox)

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(self._hits, self._misses, len(self._warm), self._last_error)

    def close(self) -> None:
        """Remove the warm sandboxes and wait for pending removals.

        The refill thread is joined first: a container it is still starting is
        discarded when it comes up, and must reach the removal queue before the
        remover is told to stop.
        """
        with self._cond:
            self._closed = True
            doomed = list(self._warm)
            self._warm.clear()
            self._cond.notify_all()
        for sandbox in doomed:
            self._discard(sandbox)
        refill, remover = self._threads or (None, None)
        if refill is not None:
            refill.join(timeout=60)
        self._doomed.put(None)
        if remover is not None:
            remover.join(timeout=60)
        self._drain_removals()

    def __enter__(self) -> SandboxPool:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- taking and discarding ---------------------------------------------------

    def _take(self, want: Limits, run_id: str | None, step_id: str | None) -> Sandbox | None:
        if want.container_key() != self.limits.container_key():
            return None
        while True:
            with self._cond:
                if not self._warm:
                    return None
                sandbox = self._warm.popleft()
                self._cond.notify_all()
            if self._usable(sandbox):
                break
            self._discard(sandbox)
        if run_id or step_id:
            try:
                sandbox.name = self._factory.rename(sandbox.id, run_id, step_id)
            except SandboxError as exc:  # unnamed, it could not be cancelled: go cold
                log.warning("cannot name warm sandbox %s: %s", sandbox.id[:12], exc)
                self._discard(sandbox)
                return None
        sandbox.limits = want
        with self._cond:
            self._hits += 1
        return sandbox

    def _usable(self, sandbox: Sandbox) -> bool:
        try:
            sandbox.ping(timeout=_PING_TIMEOUT_S)
        except SandboxError:
            return False
        return True

    def _cold(self, want: Limits, run_id: str | None, step_id: str | None) -> Sandbox:
        with self._cond:
            self._misses += 1
        started = self._factory.start(want, run_id=run_id, step_id=step_id)
        return Sandbox(self._factory, started, want)

    def _discard(self, sandbox: Sandbox) -> None:
        # Hanging up is instant: the supervisor sees EOF, kills everything and exits.
        # Removing the container (tens of milliseconds) happens in the background.
        sandbox.close(kill=False)
        self._doomed.put(sandbox.id)

    # -- background work ---------------------------------------------------------

    def _refill_loop(self) -> None:
        """Keep ``size`` sandboxes warm and reap orphans each minute; never dies."""
        backoff = 1.0
        next_reap = time.monotonic() + _REAP_EVERY_S
        while True:
            with self._cond:
                while not self._closed and not self._short() and time.monotonic() < next_reap:
                    self._cond.wait(next_reap - time.monotonic())
                if self._closed:
                    return
                need = self._short()
                if need:
                    self._creating += 1
            if time.monotonic() >= next_reap:
                next_reap = time.monotonic() + _REAP_EVERY_S
                self._reap()
            if need:
                backoff = self._warm_one(backoff)

    def _reap(self) -> None:
        try:
            reaper.reap_orphans(self._factory.client)
        except Exception as exc:  # a background thread must outlive any failure
            self._failed("cannot reap orphaned sandboxes", exc)

    def _short(self) -> bool:
        return len(self._warm) + self._creating < self.size

    def _warm_one(self, backoff: float) -> float:
        try:
            sandbox = Sandbox(self._factory, self._factory.start(self.limits), self.limits)
        except Exception as exc:  # not only SandboxError: the refill thread must not die
            self._failed(f"cannot warm a sandbox (retrying in {backoff:.0f}s)", exc)
            with self._cond:
                self._creating -= 1
                self._cond.wait(backoff)
            return min(backoff * 2, _BACKOFF_MAX_S)
        with self._cond:
            self._creating -= 1
            if self._closed:
                self._discard(sandbox)
            else:
                self._warm.append(sandbox)
                self._last_error = None
            self._cond.notify_all()
        return 1.0

    def _remove_loop(self) -> None:
        while True:
            cid = self._doomed.get()
            if cid is None:
                self._drain_removals()
                return
            self._remove(cid)

    def _drain_removals(self) -> None:
        while True:
            try:
                cid = self._doomed.get_nowait()
            except queue.Empty:
                return
            if cid is not None:
                self._remove(cid)

    def _remove(self, cid: str) -> None:
        """Remove one container, retrying a little; failing that, the reaper will."""
        for attempt in range(_REMOVE_ATTEMPTS):
            try:
                self._factory.remove(cid)
            except Exception as exc:  # the removal thread must outlive any failure
                self._failed(f"could not remove sandbox {cid[:12]}", exc)
                if attempt + 1 < _REMOVE_ATTEMPTS:
                    time.sleep(_REMOVE_BACKOFF_S * 2**attempt)
            else:
                return

    def _failed(self, what: str, exc: Exception) -> None:
        """Log a background failure and keep it for ``stats().last_error``."""
        log.warning("%s: %s", what, exc, exc_info=not isinstance(exc, SandboxError))
        with self._cond:
            self._last_error = f"{what}: {type(exc).__name__}: {exc}"
