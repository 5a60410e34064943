"""The engine's SandboxKiller on Docker: finds a run's sandboxes by label and name."""

from __future__ import annotations

import logging
import threading

import docker

import sandbox

log = logging.getLogger(__name__)


class DockerKiller:
    """Kills sandboxes through the Docker engine (connected on first use)."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()

    def kill(self, run_id: str, step_key: str | None = None) -> int:
        try:
            with self._lock:
                if self._client is None:
                    self._client = sandbox.connect()
            return len(sandbox.kill_sandboxes(self._client, run_id, step_key))
        except sandbox.SandboxError as exc:  # the reaper removes what this could not
            log.warning("cannot kill the sandboxes of run %s: %s", run_id, exc)
            return 0
