"""``firstmate run``/``submit``/``approve``/``decide`` as a user runs them: the real
executable, a real Redis of its own, real worker processes, Docker and SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import docker
import pytest
import redis

from tests.conftest import IMAGE
from tests.services import Workers

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
FIRSTMATE = str(Path(sys.executable).with_name("firstmate"))


@pytest.fixture
def cli_env(tmp_path: Path, redis_url: str, docker_client: docker.DockerClient) -> dict[str, str]:
    redis.Redis.from_url(redis_url).flushall()
    return {
        "FIRSTMATE_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'firstmate.db'}",
        "REDIS_URL": redis_url,
        "FIRSTMATE_PLAYBOOKS": str(ROOT / "playbooks"),
        "FIRSTMATE_SANDBOX_IMAGE": IMAGE,
    }


def firstmate(
    env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FIRSTMATE, *args],
        env={**os.environ, **env},
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_main_job_runs_a_playbook_end_to_end(cli_env: dict[str, str], tmp_path: Path) -> None:
    done = firstmate(
        cli_env,
        "run",
        "--playbook",
        "add-docstrings",
        "--repo",
        str(ROOT / "examples" / "calc"),
        "--yes",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    assert [s["id"] for s in result["steps"]] == ["survey", "document", "test"]
    for step in result["steps"]:
        assert step["status"] == "succeeded" and step["attempts"] == 1 and step["exit_code"] == 0
        for when in ("started_at", "finished_at"):
            assert datetime.fromisoformat(step[when]).utcoffset().total_seconds() == 0
    assert "4 passed" in result["outputs"]["tests"]
    assert "calc/ops.py:1:add" in result["outputs"]["undocumented_before"]
    diff = firstmate(cli_env, "runs", "artifact", result["run_id"], "diff.patch").stdout
    assert '+    """Divide."""' in diff
    names = firstmate(cli_env, "runs", "artifact", result["run_id"]).stdout.split()
    assert {"plan.json", "plan.md", "diff.patch", "logs/test.1.log"} <= set(names)
    assert (ROOT / "examples" / "calc" / "calc" / "ops.py").read_text().count('"""') == 0


def test_bad_playbooks_are_clear_errors_and_record_nothing(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text(
        "name: cyclic\nsteps:\n"
        "  - {id: a, agent: echo, depends_on: [c]}\n"
        "  - {id: b, agent: echo, depends_on: [a]}\n"
        "  - {id: c, agent: echo, depends_on: [b]}\n"
    )
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("name: unknown\nsteps:\n  - {id: a, agent: teleport}\n")
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("name: bad\nsteps: [\n")
    for path, words in (
        (cyclic, "cycle: a → c → b → a"),
        (unknown, "teleport"),
        (malformed, "line"),
    ):
        done = firstmate(cli_env, "run", "--playbook", str(path), "--yes")
        assert done.returncode == 2, done.stderr
        assert str(path) in done.stderr and words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    listed = firstmate(cli_env, "runs", "list", "--json")
    assert json.loads(listed.stdout) == []


def test_interactive_answers_and_submit_then_approve(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    answered = firstmate(
        cli_env,
        "run",
        "--playbook",
        "python-check",
        "--repo",
        str(ROOT / "examples" / "calc"),
        "--json",
        stdin="y\nc\n",
    )
    assert answered.returncode == 0, answered.stderr
    result = json.loads(answered.stdout)
    assert result["outputs"]["summary"].startswith("tests said: 4 passed")

    refused = firstmate(cli_env, "run", "--playbook", "python-check", "--json", stdin="n\n")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["status"] == "aborted"

    submitted = firstmate(
        cli_env, "submit", "--playbook", "ci", "--repo", str(ROOT / "examples" / "calc"), "--json"
    )
    run = json.loads(submitted.stdout)
    assert run["status"] == "awaiting_approval"
    workers = Workers(cli_env, tmp_path / "logs")
    workers.start(2)
    try:
        approved = firstmate(cli_env, "approve", run["run_id"])
        assert approved.returncode == 0, approved.stderr
        again = firstmate(cli_env, "approve", run["run_id"])
        assert again.returncode == 2 and "0 open" in again.stderr
        shown = _wait_for_gate_or_end(cli_env, run["run_id"])
        gates = [c for c in shown["checkpoints"] if c["status"] == "open"]
        assert [g["kind"] for g in gates] == ["gate"]  # python-check's report step, in the child
    finally:
        workers.stop()


def _wait_for_gate_or_end(env: dict[str, str], run_id: str) -> dict[str, object]:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        shown = json.loads(firstmate(env, "runs", "show", run_id, "--json").stdout)
        children = [e for e in shown["events"] if e["type"] == "step.waiting"]
        if children:
            child = children[0]["data"]["run_id"]
            child_shown = json.loads(firstmate(env, "runs", "show", child, "--json").stdout)
            if any(c["status"] == "open" for c in child_shown["checkpoints"]):
                return child_shown
        time.sleep(0.5)
    raise AssertionError("the child run never reached its gate")


def test_a_decision_twice_or_on_a_finished_checkpoint_changes_nothing(
    cli_env: dict[str, str],
) -> None:
    submitted = json.loads(
        firstmate(cli_env, "submit", "--playbook", "python-check", "--json").stdout
    )
    run_id = submitted["run_id"]
    rejected = firstmate(cli_env, "reject", run_id)
    assert rejected.returncode == 0, rejected.stderr
    before = json.loads(firstmate(cli_env, "runs", "show", run_id, "--json").stdout)
    [cp] = before["checkpoints"]
    for decision in ("continue", "abort"):
        again = firstmate(cli_env, "decide", cp["id"], decision)
        assert again.returncode == 2
        assert "decided" in again.stderr or "finished" in again.stderr, again.stderr
    cancel = firstmate(cli_env, "cancel", run_id)
    assert cancel.returncode == 2 and "finished" in cancel.stderr
    after = json.loads(firstmate(cli_env, "runs", "show", run_id, "--json").stdout)
    assert after["status"] == before["status"] == "aborted"
    assert after["events"] == before["events"]
