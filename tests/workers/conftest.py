"""Integration fixtures: real Redis, real RQ worker processes, real Docker, real SQLite."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import redis

from orchestrator import queries
from orchestrator.config import Settings
from orchestrator.queries import RunReport
from tests.conftest import IMAGE
from tests.services import Workers
from workers import runtime

FAST = {"FIRSTMATE_LEASE_S": "3", "FIRSTMATE_RECONCILE_S": "1", "FIRSTMATE_SANDBOX_POOL_SIZE": "1"}


class Env:
    """One test's Firstmate: its data dir, database, playbooks, workers and runtime."""

    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.playbooks = tmp / "playbooks"
        self.playbooks.mkdir()
        self.vars = {
            "FIRSTMATE_DATA_DIR": str(tmp / "data"),
            "DATABASE_URL": f"sqlite:///{tmp / 'data' / 'firstmate.db'}",
            "REDIS_URL": redis_url,
            "FIRSTMATE_PLAYBOOKS": str(self.playbooks),
            "FIRSTMATE_SANDBOX_IMAGE": IMAGE,
            **FAST,
        }
        settings = Settings(
            data_dir=tmp / "data",
            database_url=self.vars["DATABASE_URL"],
            redis_url=redis_url,
            playbooks=self.playbooks,
            sandbox_image=IMAGE,
            lease_s=3,
            reconcile_s=1,
        )
        self.rt = runtime.build(settings)
        self.workers = Workers(self.vars, tmp / "logs")

    def playbook(self, name: str, text: str) -> None:
        (self.playbooks / f"{name}.yaml").write_text(text)

    def report(self, run_id: str) -> RunReport:
        return queries.run_report(self.rt.store, run_id, detail=True)

    def wait(
        self, run_id: str, until: Callable[[RunReport], bool], timeout: float = 60
    ) -> RunReport:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            report = self.report(run_id)
            if until(report):
                return report
            time.sleep(0.05)
        raise AssertionError(
            f"run {run_id} never got there: {self.report(run_id)}\n{self.workers.output()[-3000:]}"
        )

    def finished(self, run_id: str, timeout: float = 90) -> RunReport:
        """Wait for the run to end, or to stop at a checkpoint (then the test sees why)."""
        done = ("succeeded", "failed", "aborted", "paused")
        return self.wait(run_id, lambda r: r.status in done, timeout)

    def close(self) -> None:
        self.workers.stop()
        self.rt.close()


@pytest.fixture
def env(tmp_path: Path, redis_url: str, docker_client: docker.DockerClient) -> Iterator[Env]:
    redis.Redis.from_url(redis_url).flushall()
    e = Env(tmp_path, redis_url)
    yield e
    e.close()
