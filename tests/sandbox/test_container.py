"""Docker calls when the engine cannot be reached: one clear error, never requests'."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import docker
import pytest

from sandbox import DockerUnavailable, kill_sandboxes, reap_orphans
from sandbox.container import UID_RANGE, ContainerFactory, sandbox_uid
from sandbox.image import image_exists


@pytest.fixture
def dead_client() -> Iterator[docker.DockerClient]:
    """A real client for an engine that is not there (as while dockerd restarts).

    A loopback port nobody listens on: its connection errors are requests', as a
    restarting dockerd's are (a missing unix socket would leak docker-py's sockets).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", version="1.43")
    yield client
    client.close()


def test_an_unreachable_engine_is_docker_unavailable_everywhere(
    dead_client: docker.DockerClient,
) -> None:
    with pytest.raises(DockerUnavailable, match="cannot inspect image"):
        ContainerFactory(dead_client, "firstmate-sandbox:latest")
    with pytest.raises(DockerUnavailable, match="cannot list sandbox containers"):
        reap_orphans(dead_client)
    with pytest.raises(DockerUnavailable, match="cannot list sandbox containers"):
        kill_sandboxes(dead_client, "run-1")
    with pytest.raises(DockerUnavailable, match="cannot inspect image"):
        image_exists(dead_client, "firstmate-sandbox:latest")


@pytest.mark.docker
def test_a_factory_whose_engine_goes_away_says_so(
    docker_client: docker.DockerClient, dead_client: docker.DockerClient
) -> None:
    from sandbox import Limits
    from tests.conftest import IMAGE

    factory = ContainerFactory(docker_client, IMAGE)
    factory.client = dead_client
    with pytest.raises(DockerUnavailable, match="cannot create a sandbox container"):
        factory.start(Limits())
    with pytest.raises(DockerUnavailable, match="cannot remove sandbox"):
        factory.remove("0123456789ab")
    factory.kill("0123456789ab")  # best effort: the reaper finds it later
    assert factory.oom_killed("0123456789ab") is False
    assert "container state unknown" in factory.exit_detail("0123456789ab")


def test_sandbox_uids_are_drawn_from_their_range_and_never_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = iter([50_000, 50_000, 7])
    monkeypatch.setattr("sandbox.container.secrets.randbelow", lambda _n: next(draws))
    monkeypatch.setattr("sandbox.container.os.getuid", lambda: 150_000)
    assert sandbox_uid() == 100_007  # 150000 is this process's: drawn again
    assert (UID_RANGE.start, UID_RANGE.stop) == (100_000, 200_000)


@pytest.mark.docker
def test_a_container_another_process_is_removing_is_gone_when_remove_returns(
    docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reaper may take a sandbox its pool just hung up on for an orphan and remove it
    at the same time as the pool: Docker then answers the pool "already in progress",
    and the pool must not report the container removed while it is still there."""
    import threading
    import time

    from sandbox.container import remove_container
    from tests.conftest import IMAGE

    cid = docker_client.api.create_container(IMAGE, command=["true"])["Id"]
    real_remove = docker_client.api.remove_container

    def in_progress(container: str, **kwargs: object) -> None:
        # the other process's removal, finishing a little later
        threading.Timer(0.5, real_remove, (container,), {"force": True}).start()
        raise docker.errors.APIError(f"removal of container {container} is already in progress")

    monkeypatch.setattr(docker_client.api, "remove_container", in_progress)
    started = time.monotonic()
    remove_container(docker_client, cid, cid[:12])
    assert time.monotonic() - started >= 0.4  # it waited for the other removal
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(cid)


def test_a_removal_that_never_ends_is_docker_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import container

    class Stuck:
        def remove_container(self, cid: str, **kwargs: object) -> None:
            raise docker.errors.APIError(f"removal of container {cid} is already in progress")

        def inspect_container(self, cid: str) -> dict[str, object]:
            return {"State": {"Status": "removing"}}

    client = type("Client", (), {"api": Stuck()})()
    monkeypatch.setattr(container, "_GONE_TIMEOUT_S", 0.2)
    with pytest.raises(DockerUnavailable, match="still being removed"):
        container.remove_container(client, "0123456789ab", "0123456789ab")  # type: ignore[arg-type]
