"""Durability: a worker killed mid-step, and Redis flushed mid-run.

In both, a new worker and a reconcile pass finish the run with every step recorded
once, and no sandbox container is left behind.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import docker
import pytest
import redis

import sandbox
from tests.workers.conftest import Env

pytestmark = pytest.mark.docker


def _succeeded_once(env: Env, run_id: str) -> None:
    report = env.report(run_id)
    assert report.status == "succeeded", report
    done = Counter(e.step for e in report.events or [] if e.type == "step.succeeded")
    assert done == Counter({s.id: 1 for s in report.steps}), done
    assert len({s.id for s in report.steps}) == len(report.steps)


def _no_sandbox_left(client: docker.DockerClient, run_id: str) -> None:
    """After a reaper pass, and once the pools' background removals have run (a sandbox
    released a moment ago is removed asynchronously), nothing of the run is left."""
    mine = {"label": "firstmate.sandbox=1", "name": f"fm-{run_id}-"}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sandbox.reap_orphans(client)
        if client.api.containers(all=True, filters=mine) == []:
            return
        time.sleep(0.5)
    assert client.api.containers(all=True, filters=mine) == []


def test_a_worker_killed_mid_step_costs_a_retry_not_the_run(
    env: Env, docker_client: docker.DockerClient
) -> None:
    env.playbook(
        "two",
        """
name: two
steps:
  - id: slow
    agent: shell
    with: {command: "sleep 4 && echo done > slow.txt && echo slow"}
  - id: after
    agent: shell
    depends_on: [slow]
    with: {command: "cat slow.txt"}
""",
    )
    [doomed] = env.workers.start(1)
    run_id = env.rt.engine.submit(env.rt.catalog.get("two"), approve_plan=False)
    env.wait(run_id, lambda r: r.steps[0].status == "running")
    time.sleep(1)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()

    env.workers.start(1)  # its reconciler runs every second; the lease is 3 s
    report = env.finished(run_id, timeout=120)
    env.rt.engine.reconcile()
    _succeeded_once(env, run_id)
    slow = {s.id: s for s in report.steps}["slow"]
    assert slow.attempts == 2
    assert [e.type for e in report.events or []].count("step.lost") == 1
    assert {s.id: s.outputs.get("stdout") for s in report.steps}["after"] == "done\n"
    _no_sandbox_left(docker_client, run_id)


def test_a_flushed_redis_loses_no_step(env: Env, docker_client: docker.DockerClient) -> None:
    env.playbook(
        "fan",
        """
name: fan
steps:
  - id: a
    agent: shell
    with: {command: "echo a"}
  - id: b
    agent: shell
    depends_on: [a]
    with: {command: "sleep 3 && echo b"}
  - id: c
    agent: shell
    depends_on: [a]
    with: {command: "sleep 3 && echo c"}
  - id: d
    agent: shell
    depends_on: [b, c]
    with: {command: "echo d"}
""",
    )
    env.workers.start(1)  # one worker: while it runs b, c waits in Redis
    run_id = env.rt.engine.submit(env.rt.catalog.get("fan"), approve_plan=False)
    waiting = env.wait(
        run_id, lambda r: sorted(s.status for s in r.steps[1:3]) == ["queued", "running"]
    )
    queued = [s.id for s in waiting.steps if s.status == "queued"]
    redis.Redis.from_url(env.vars["REDIS_URL"]).flushall()

    env.workers.start(1)
    report = env.finished(run_id, timeout=120)
    assert env.rt.engine.reconcile().requeued == []  # nothing left to repair
    _succeeded_once(env, run_id)
    assert {s.id: s.attempts for s in report.steps} == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert queued and all(s.status == "succeeded" for s in report.steps)
    _no_sandbox_left(docker_client, run_id)
