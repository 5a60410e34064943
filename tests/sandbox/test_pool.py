"""The warm pool: fresh sandboxes every time, warm when the limits allow, cold otherwise."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import docker
import pytest
import requests

from sandbox import ExecResult, Limits, SandboxClosed, SandboxPool, kill_sandboxes
from sandbox.container import Started
from tests.conftest import IMAGE

pytestmark = pytest.mark.docker


def test_sandboxes_are_never_reused_and_share_no_state(pool: SandboxPool) -> None:
    pool.wait_warm()
    with pool.acquire() as first:
        first.exec(
            "echo secret > /tmp/left && echo secret > /workspace/left && echo secret > ~/left"
        )
        first_id = first.id
    with pool.acquire() as second:
        look = second.exec("cat /tmp/left /workspace/left ~/left")
        second_id = second.id
    assert first_id != second_id
    assert look.exit_code != 0
    assert "secret" not in look.stdout


def test_matching_limits_are_served_warm_and_others_cold(pool: SandboxPool) -> None:
    pool.wait_warm()
    before = pool.stats()
    with pool.acquire(limits=Limits(timeout_s=5, output_bytes=4096)) as warm:
        assert warm.limits.timeout_s == 5  # per-command limits follow the request
        timed = warm.exec("sleep 10")
    with pool.acquire(limits=Limits.for_memory(300)) as cold:
        memory = cold.exec("cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    after = pool.stats()
    assert timed.timed_out
    assert int(memory.stdout) == 300 * 1024 * 1024
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 1)


def test_the_pool_refills_in_the_background(pool: SandboxPool) -> None:
    assert pool.wait_warm()
    with pool.acquire(), pool.acquire():
        assert pool.stats().warm < 2
    assert pool.wait_warm(timeout=30)
    assert pool.stats().warm == 2


def test_results_carry_the_image_digest(
    pool: SandboxPool, docker_client: docker.DockerClient
) -> None:
    with pool.acquire() as sb:
        result = sb.exec(["true"])
    assert isinstance(result, ExecResult)
    assert result.image_digest == docker_client.images.get(IMAGE).id
    assert result.image_digest.startswith("sha256:")


def test_commands_see_argv_env_cwd_and_exit_codes(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        argv = sb.exec(["python3", "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME"])
        env = sb.exec("echo $GREETING", env={"GREETING": "ahoy"})
        cwd = sb.exec("pwd", cwd="/tmp")
        missing = sb.exec(["no-such-command"])
        killed = sb.exec("kill -TERM $$")
    assert argv.stdout == "['a b', '$HOME']\n"
    assert env.stdout == "ahoy\n"
    assert cwd.stdout == "/tmp\n"
    assert missing.exit_code == 127
    assert "no-such-command" in missing.stderr
    assert killed.exit_code == 128 + 15


def test_sandboxes_run_in_parallel(pool: SandboxPool) -> None:
    results: list[float] = []

    def step() -> None:
        with pool.acquire() as sb:
            results.append(sb.exec("sleep 1").duration_s)

    threads = [threading.Thread(target=step) for _ in range(3)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    assert time.monotonic() - started < 2.9


def test_run_and_step_ids_name_the_sandbox_and_cancel_reaches_it(
    pool: SandboxPool, docker_client: docker.DockerClient
) -> None:
    pool.wait_warm()
    outcome: list[BaseException | ExecResult] = []
    running = threading.Event()

    def step() -> None:
        with pool.acquire(run_id="run-42", step_id="test") as sb:
            running.set()
            try:
                outcome.append(sb.exec("sleep 60"))
            except SandboxClosed as exc:
                outcome.append(exc)

    thread = threading.Thread(target=step)
    thread.start()
    assert running.wait(10)
    time.sleep(0.3)
    removed = kill_sandboxes(docker_client, "run-42")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(removed) == 1 and removed[0].startswith("fm-run_42-test-")
    assert isinstance(outcome[0], SandboxClosed)


def test_cold_sandboxes_carry_run_and_step_labels(
    docker_client: docker.DockerClient,
) -> None:
    with (
        SandboxPool(IMAGE, size=0, client=docker_client) as cold_only,
        cold_only.acquire(run_id="r-1", step_id="s-1") as sb,
    ):
        labels = docker_client.api.inspect_container(sb.id)["Config"]["Labels"]
    assert labels["firstmate.sandbox"] == "1"
    assert (labels["firstmate.run"], labels["firstmate.step"]) == ("r-1", "s-1")


def _sandbox_ids(client: docker.DockerClient) -> set[str]:
    found = client.api.containers(all=True, filters={"label": "firstmate.sandbox=1"})
    return {c["Id"] for c in found}


def test_closing_the_pool_removes_its_containers(docker_client: docker.DockerClient) -> None:
    before = _sandbox_ids(docker_client)
    with SandboxPool(IMAGE, size=2, client=docker_client) as own:
        assert own.wait_warm()
        with own.acquire() as sb:
            sb.exec(["true"])
        assert own.wait_warm()
        created = _sandbox_ids(docker_client) - before
    assert len(created) >= 2  # the warm ones at least
    assert created & _sandbox_ids(docker_client) == set()


def test_bad_commands_are_refused_before_they_cross(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        with pytest.raises(ValueError, match="needs a command"):
            sb.exec([])
        with pytest.raises(ValueError, match="NUL"):
            sb.exec(["echo", "a\0b"])
        with pytest.raises(ValueError, match="environment variable names"):
            sb.exec("true", env={"A=B": "x"})
        with pytest.raises(ValueError, match="timeout must be positive"):
            sb.exec("true", timeout=0)
        nowhere = sb.exec("true", cwd="/no/such/dir")
        still = sb.exec("echo fine")
    assert nowhere.exit_code == 126
    assert "cannot enter '/no/such/dir'" in nowhere.stderr
    assert still.stdout == "fine\n"


def _until(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_lost_docker_connection_does_not_stop_the_refill(
    docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests' ConnectionError (dockerd restarting) is no DockerException."""
    own = SandboxPool(IMAGE, size=1, client=docker_client)
    real = own._factory.start
    docker_away = threading.Event()
    docker_away.set()

    def start(limits: Limits, **ids: str | None) -> Started:
        if docker_away.is_set():
            raise requests.exceptions.ConnectionError("dockerd is restarting")
        return real(limits, **ids)

    monkeypatch.setattr(own._factory, "start", start)
    with own:
        assert _until(lambda: "dockerd is restarting" in (own.stats().last_error or ""))
        docker_away.clear()
        assert own.wait_warm(timeout=30)
        assert own.stats().warm == 1
        assert own.stats().last_error is None


def test_a_failed_removal_does_not_stop_the_remover(
    docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = SandboxPool(IMAGE, size=0, client=docker_client)
    real = own._factory.remove
    calls: list[str] = []

    def remove(cid: str) -> None:
        calls.append(cid)
        if len(calls) == 1:
            raise requests.exceptions.ConnectionError("dockerd is restarting")
        real(cid)

    monkeypatch.setattr(own._factory, "remove", remove)
    with own:
        used = []
        for _ in range(2):
            with own.acquire() as sb:
                used.append(sb.id)
        assert _until(lambda: not set(used) & _sandbox_ids(docker_client))
        assert "ConnectionError" in (own.stats().last_error or "")
    assert calls.count(used[0]) == 2  # retried after the failure


def test_closing_while_a_sandbox_starts_leaks_nothing(
    docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = SandboxPool(IMAGE, size=1, client=docker_client)
    real = own._factory.start
    starting = threading.Event()
    made: list[str] = []

    def slow_start(limits: Limits, **ids: str | None) -> Started:
        starting.set()
        time.sleep(1.0)  # close() comes now
        started = real(limits, **ids)
        made.append(started.container_id)
        return started

    monkeypatch.setattr(own._factory, "start", slow_start)
    own.start()
    assert starting.wait(10)
    own.close()
    assert len(made) == 1
    assert made[0] not in _sandbox_ids(docker_client)
