"""Orphaned sandboxes: what the reaper decides, and a real process killed mid-step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import docker
import pytest

from sandbox import reap_orphans
from sandbox.container import owner_key, process_start
from sandbox.reaper import Seen, is_orphan

NOW = 1_800_000_000.0


def _seen(owner: str, *, state: str = "running", expires: float = NOW + 60) -> Seen:
    labels = {"firstmate.owner": owner, "firstmate.expires": str(int(expires))}
    return Seen(labels, state, int(NOW - 10))


def test_a_live_owner_keeps_its_sandbox() -> None:
    assert not is_orphan(_seen(owner_key()), me=owner_key(), now=NOW)


def test_a_dead_owner_orphans_its_sandbox() -> None:
    boot, ns, _, _ = owner_key().split(":")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not is_orphan(
        _seen(f"{boot}:{ns}:{os.getpid()}:{process_start(os.getpid())}"), me=owner_key(), now=NOW
    )
    assert is_orphan(_seen(f"{boot}:{ns}:{dead.pid}:12345"), me=owner_key(), now=NOW)


def test_a_recycled_pid_does_not_keep_a_sandbox_alive() -> None:
    boot, ns, pid, start = owner_key().split(":")
    older = str(int(start) - 1)
    assert is_orphan(_seen(f"{boot}:{ns}:{pid}:{older}"), me=owner_key(), now=NOW)


def test_another_machines_owner_is_judged_by_expiry_only() -> None:
    elsewhere = "otherboot:4026531836:1:100"
    assert not is_orphan(_seen(elsewhere), me=owner_key(), now=NOW)
    assert is_orphan(_seen(elsewhere, expires=NOW - 1), me=owner_key(), now=NOW)


def test_stopped_and_stale_created_containers_are_orphans() -> None:
    assert is_orphan(_seen(owner_key(), state="exited"), me=owner_key(), now=NOW)
    assert not is_orphan(_seen(owner_key(), state="created"), me=owner_key(), now=NOW)
    assert is_orphan(_seen(owner_key(), state="created"), me=owner_key(), now=NOW + 600)


def test_a_created_container_whose_owner_died_is_an_orphan_at_once() -> None:
    """Its owner was killed between create and start: nobody will ever start it."""
    boot, ns, _, _ = owner_key().split(":")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    created = _seen(f"{boot}:{ns}:{dead.pid}:12345", state="created")
    elsewhere = _seen("otherboot:4026531836:1:100", state="created")
    assert is_orphan(created, me=owner_key(), now=NOW)
    assert not is_orphan(elsewhere, me=owner_key(), now=NOW)  # unknowable: wait


HOLDER = """
import sys
from sandbox import SandboxPool
pool = SandboxPool(sys.argv[1], size=1)
pool.wait_warm()
with pool.acquire(run_id="doomed") as sb:
    print(sb.id, flush=True)
    sb.exec("sleep 1000")
"""


def _owned_by(client: docker.DockerClient, pid: int) -> list[dict[str, object]]:
    found = client.api.containers(all=True, filters={"label": "firstmate.sandbox=1"})
    return [c for c in found if c["Labels"]["firstmate.owner"].split(":")[2] == str(pid)]


@pytest.mark.docker
def test_killing_the_holder_leaves_nothing_after_the_reaper_pass(
    docker_client: docker.DockerClient,
) -> None:
    from tests.conftest import IMAGE

    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, IMAGE], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        busy_id = holder.stdout.readline().strip()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the step's command runs, and the pool refilled
            if len(_owned_by(docker_client, holder.pid)) >= 2:
                break
            time.sleep(0.1)
        owned = _owned_by(docker_client, holder.pid)
        assert busy_id in {c["Id"] for c in owned}
        assert len(owned) >= 2, "expected the busy sandbox and a warm one"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()

    # A warm container the holder was creating when it died can land after a pass
    # (the daemon finishes the create): the reaper runs periodically, and the next
    # pass removes it. Nothing may be left after a few passes.
    removed = reap_orphans(docker_client)
    deadline = time.monotonic() + 15
    while _owned_by(docker_client, holder.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
        removed += reap_orphans(docker_client)

    assert _owned_by(docker_client, holder.pid) == []
    assert len(removed) >= 2


BUSY = """
import sys
from sandbox import SandboxPool
with SandboxPool(sys.argv[1], size=0) as pool, pool.acquire() as sb:
    print(sb.id, flush=True)
    sb.exec("sleep 1000")
"""


def _sleeping(client: docker.DockerClient, cid: str) -> bool:
    try:
        listed = client.api.top(cid)
    except docker.errors.APIError:  # not running: nothing sleeps in it
        return False
    return any("sleep 1000" in " ".join(row) for row in listed["Processes"] or [])


@pytest.mark.docker
def test_a_command_dies_at_once_with_the_process_holding_its_sandbox(
    docker_client: docker.DockerClient,
) -> None:
    from tests.conftest import IMAGE

    with subprocess.Popen(
        [sys.executable, "-c", BUSY, IMAGE], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        cid = holder.stdout.readline().strip()
        try:
            deadline = time.monotonic() + 10
            while not _sleeping(docker_client, cid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _sleeping(docker_client, cid)
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
            killed = time.monotonic()
            while time.monotonic() - killed < 5:
                state = docker_client.api.inspect_container(cid)["State"]
                if not state["Running"]:
                    break
                time.sleep(0.05)
            assert not _sleeping(docker_client, cid)
            assert docker_client.api.inspect_container(cid)["State"]["Running"] is False
        finally:
            docker_client.api.remove_container(cid, force=True)
