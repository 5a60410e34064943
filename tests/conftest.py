"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

import sandbox
from sandbox import SandboxPool
from tests.orchestrator.test_engine import Harness

IMAGE = os.environ.get("FIRSTMATE_SANDBOX_IMAGE", sandbox.DEFAULT_IMAGE)


def unavailable(why: str) -> None:
    """Skip a test that needs a service; in CI, where skips are not allowed, fail it."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI runs every Docker and Redis test: .ci/run must start it)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = sandbox.connect()
    except sandbox.DockerUnavailable as exc:
        unavailable(str(exc))
    if not sandbox.image_exists(client, IMAGE):
        unavailable(f"sandbox image {IMAGE} is missing: run `firstmate sandbox build`")
    return client


@pytest.fixture(scope="module")
def pool(docker_client: docker.DockerClient) -> Iterator[SandboxPool]:
    with SandboxPool(IMAGE, size=2, client=docker_client) as p:
        yield p


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server of the test session's own, on a free loopback port."""
    from tests.services import redis_server

    try:
        with redis_server() as url:
            yield url
    except FileNotFoundError as exc:
        unavailable(str(exc))


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    """The engine on a fresh SQLite database, with in-memory queues (see ``Harness``)."""
    harness = Harness(tmp_path)
    yield harness
    harness.store.dispose()
