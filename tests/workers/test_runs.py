"""Playbook runs end to end: real RQ worker processes, real Redis, Docker and SQLite."""

from __future__ import annotations

import time

import docker
import pytest

from tests.workers.conftest import Env

pytestmark = pytest.mark.docker

DIAMOND = """
name: diamond
steps:
  - id: a
    agent: shell
    with: {command: "echo a > a.txt && echo from-a"}
  - id: b
    agent: shell
    depends_on: [a]
    with: {command: "sleep 1.5 && cat a.txt > b.txt && echo b"}
  - id: c
    agent: shell
    depends_on: [a]
    with: {command: "sleep 1.5 && echo c > c.txt && echo c"}
  - id: d
    agent: shell
    depends_on: [b, c]
    with: {command: "cat b.txt c.txt && echo ${{ steps.a.outputs.stdout }}"}
"""


def test_diamond_runs_b_and_c_together_and_d_after_both(env: Env) -> None:
    env.playbook("diamond", DIAMOND)
    env.workers.start(2)
    run_id = env.rt.engine.submit(env.rt.catalog.get("diamond"), approve_plan=False)
    report = env.finished(run_id)
    assert report.status == "succeeded", report
    steps = {s.id: s for s in report.steps}
    b, c, d = steps["b"], steps["c"], steps["d"]
    assert b.started_at and b.finished_at and c.started_at and c.finished_at and d.started_at
    assert b.started_at < c.finished_at and c.started_at < b.finished_at, "b and c overlapped"
    assert d.started_at >= max(b.finished_at, c.finished_at)
    # both branches' files reached d; a's output arrives verbatim, its newline included
    assert d.outputs["stdout"] == "a\nc\nfrom-a\n\n"


def test_a_step_that_fails_twice_is_retried_with_backoff(env: Env) -> None:
    env.playbook(
        "flaky",
        """
name: flaky
steps:
  - id: flaky
    agent: shell
    retry: {max: 2, backoff_s: 1}
    with: {command: "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; echo try $n; [ $n -ge 3 ]"}
""",
    )
    env.workers.start(1)
    run_id = env.rt.engine.submit(env.rt.catalog.get("flaky"), approve_plan=False)
    report = env.finished(run_id)
    assert report.status == "succeeded"
    [step] = report.steps
    assert step.attempts == 3
    assert step.outputs["stdout"] == "try 3\n"
    events = report.events or []
    assert [e.data["in_s"] for e in events if e.type == "step.retrying"] == [1.0, 2.0]
    starts = [e.at for e in events if e.type == "step.running"]
    fails = [e.at for e in events if e.type == "step.failed"]
    assert (starts[1] - fails[0]).total_seconds() >= 0.9
    assert (starts[2] - fails[1]).total_seconds() >= 1.9


def test_a_gate_pauses_the_run_until_a_decision(env: Env) -> None:
    env.playbook(
        "gated",
        """
name: gated
steps:
  - id: build
    agent: shell
    with: {command: "echo built"}
  - id: hold
    agent: gate
    depends_on: [build]
    with: {message: "Ship it?"}
  - id: ship
    agent: shell
    depends_on: [hold]
    with: {command: "echo shipped"}
""",
    )
    env.workers.start(1)
    run_id = env.rt.engine.submit(env.rt.catalog.get("gated"), approve_plan=False)
    paused = env.wait(run_id, lambda r: r.status == "paused")
    time.sleep(1.5)
    still = env.report(run_id)
    assert still.status == "paused"
    assert {s.id: s.status for s in still.steps}["ship"] == "pending"
    [cp] = [c for c in paused.checkpoints or [] if c.status == "open"]
    assert cp.prompt == "Ship it?"
    env.rt.engine.decide(cp.id, "continue", by="tester")
    report = env.finished(run_id)
    assert report.status == "succeeded"
    assert {s.id: s.outputs.get("stdout") for s in report.steps}["ship"] == "shipped\n"


FAILING = """
name: failing
steps:
  - id: broken
    agent: shell
    with: {command: "echo nope >&2; exit 3"}
  - id: after
    agent: shell
    depends_on: [broken]
    with: {command: "echo after"}
"""


def test_skip_goes_on_and_abort_stops(env: Env) -> None:
    env.playbook("failing", FAILING)
    env.workers.start(1)
    plan = env.rt.catalog.get("failing")
    skipped = env.rt.engine.submit(plan, approve_plan=False)
    aborted = env.rt.engine.submit(plan, approve_plan=False)
    for run_id, decision in ((skipped, "skip"), (aborted, "abort")):
        paused = env.wait(run_id, lambda r: r.status == "paused")
        [cp] = [c for c in paused.checkpoints or [] if c.status == "open"]
        assert cp.kind == "failure" and "exit code 3" in cp.prompt
        env.rt.engine.decide(cp.id, decision, by="tester")
    done = env.finished(skipped)
    assert done.status == "succeeded"
    assert {s.id: s.status for s in done.steps} == {"broken": "skipped", "after": "succeeded"}
    stopped = env.finished(aborted)
    assert stopped.status == "aborted"
    assert {s.id: s.status for s in stopped.steps} == {"broken": "cancelled", "after": "cancelled"}


def test_a_child_playbooks_result_flows_to_its_parent(env: Env) -> None:
    env.playbook(
        "child",
        """
name: child
inputs:
  who: {required: true}
steps:
  - id: greet
    agent: shell
    with: {command: "echo hello ${{ inputs.who }} | tee greeting.txt"}
outputs:
  greeting: "${{ steps.greet.outputs.stdout }}"
""",
    )
    env.playbook(
        "parent",
        """
name: parent
steps:
  - id: sub
    agent: playbook
    with: {playbook: child, inputs: {who: "world"}}
  - id: use
    agent: shell
    depends_on: [sub]
    with: {command: "cat greeting.txt && echo got ${{ steps.sub.outputs.greeting }}"}
""",
    )
    env.workers.start(2)
    run_id = env.rt.engine.submit(env.rt.catalog.get("parent"), approve_plan=False)
    report = env.finished(run_id)
    assert report.status == "succeeded", report
    steps = {s.id: s for s in report.steps}
    child_id = steps["sub"].outputs["run_id"]
    assert env.report(child_id).parent_run_id == run_id
    assert env.report(child_id).status == "succeeded"
    assert steps["sub"].outputs["greeting"] == "hello world\n"
    assert steps["use"].outputs["stdout"] == "hello world\ngot hello world\n\n"


def test_cancel_kills_the_running_sandbox(env: Env, docker_client: docker.DockerClient) -> None:
    env.playbook(
        "slow",
        """
name: slow
steps:
  - id: wait
    agent: shell
    with: {command: "sleep 120"}
""",
    )
    env.workers.start(1)
    run_id = env.rt.engine.submit(env.rt.catalog.get("slow"), approve_plan=False)
    env.wait(run_id, lambda r: r.steps[0].status == "running")
    time.sleep(0.5)
    mine = {"label": "firstmate.sandbox=1", "name": f"fm-{run_id}-"}
    assert docker_client.api.containers(filters=mine), "the step's sandbox is running"
    started = time.monotonic()
    env.rt.engine.cancel(run_id, by="tester")
    report = env.report(run_id)
    assert report.status == "aborted"
    assert report.steps[0].status == "cancelled"
    assert docker_client.api.containers(all=True, filters=mine) == []
    assert time.monotonic() - started < 10


def test_a_step_over_its_timeout_is_killed_and_fails(
    env: Env, docker_client: docker.DockerClient
) -> None:
    env.playbook(
        "late",
        """
name: late
on_failure: fail
steps:
  - id: forever
    agent: shell
    timeout_s: 2
    with: {command: "sleep 60"}
""",
    )
    env.workers.start(1)
    run_id = env.rt.engine.submit(env.rt.catalog.get("late"), approve_plan=False)
    report = env.finished(run_id)
    assert report.status == "failed"
    [step] = report.steps
    assert step.error == "timed out"
    assert step.provenance["timed_out"] is True
    assert 1.5 < step.provenance["duration_s"] < 10
    mine = {"label": "firstmate.sandbox=1", "name": f"fm-{run_id}-"}
    time.sleep(1)
    assert docker_client.api.containers(filters=mine) == []
