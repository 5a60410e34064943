"""The seeds' headline, end to end: ``firstmate run --request "Add a function to
calculate the nth Fibonacci number" --yes`` on a small package in ``examples/``.

The real executable, real worker processes, Redis, Docker and SQLite; the model is
``tests/llm_api.py`` scripting a realistic conversation (the plan, then tool calls that
read files, write the function and a test, run pytest, and finish), reached by the real
openai client over HTTP. The wall time is measured by ``benchmarks/coding_agent.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import docker
import pytest

from tests.bot.test_cli_run import ROOT, cli_env, firstmate
from tests.llm_api import LLMAPI, Reply, json_answer, tool_calls
from tests.workers.test_code_agent import FIB

pytestmark = pytest.mark.docker

__all__ = ["cli_env", "fibonacci_script", "git_repo"]

KEY = "sk-test-fibonacci-0123456789"
REQUEST = "Add a function to calculate the nth Fibonacci number"

PLAN = {
    "description": "Add fibonacci(n) to calc, with a test",
    "steps": [
        {"id": "analyze", "agent": "analyze", "with": {}},
        {
            "id": "code",
            "agent": "code",
            "depends_on": ["analyze"],
            "with": {
                "task": "Add fibonacci(n) to calc/ops.py (fibonacci(0) == 0, fibonacci(1) == 1),"
                " export it from calc, and test it in tests/test_fibonacci.py."
            },
        },
        {"id": "test", "agent": "test", "depends_on": ["code"], "with": {}},
    ],
}


FIB_TEST = """import pytest

from calc import fibonacci


def test_fibonacci() -> None:
    assert [fibonacci(n) for n in range(10)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]


def test_fibonacci_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError):
        fibonacci(-1)
"""


def fibonacci_script(package: Path) -> list[Reply]:
    """The model's side of the conversation, for a copy of ``examples/calc``."""
    ops = (package / "calc" / "ops.py").read_text()
    init = (package / "calc" / "__init__.py").read_text()
    new_init = init.replace(
        "from calc.ops import add, divide, mean, multiply",
        "from calc.ops import add, divide, fibonacci, mean, multiply",
    ).replace('__all__ = ["add",', '__all__ = ["add", "fibonacci",')
    return [
        json_answer(PLAN),
        tool_calls(("list_files", {"path": "."})),
        tool_calls(
            ("read_file", {"path": "calc/ops.py"}), ("read_file", {"path": "calc/__init__.py"})
        ),
        tool_calls(
            ("write_file", {"path": "calc/ops.py", "content": ops + FIB}),
            ("write_file", {"path": "calc/__init__.py", "content": new_init}),
            ("write_file", {"path": "tests/test_fibonacci.py", "content": FIB_TEST}),
        ),
        tool_calls(("run", {"command": "python3 -m pytest -q"})),
        tool_calls(("finish", {"summary": "Added calc.fibonacci(n), iterative, with tests."})),
    ]


def git_repo(source: Path, dest: Path) -> Path:
    """A git repository holding a copy of ``source``, one commit on ``main``."""
    shutil.copytree(source, dest)
    git = ["git", "-C", str(dest), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "calc"], check=True)
    return dest


def test_add_a_fibonacci_function_end_to_end(
    cli_env: dict[str, str], tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    repo = git_repo(ROOT / "examples" / "calc", tmp_path / "calc")
    env = {**cli_env, "OPENAI_API_KEY": KEY, "FIRSTMATE_LLM": "openai:gpt-4o-mini"}
    with LLMAPI(api_key=KEY) as api:
        api.script(*fibonacci_script(repo))
        done = firstmate(
            {**env, "OPENAI_BASE_URL": api.openai_url},
            "run",
            "--request",
            REQUEST,
            "--repo",
            str(repo),
            "--yes",
            "--json",
        )
        assert done.returncode == 0, done.stderr
        sent = api.requests("openai")
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    steps = {s["id"]: s for s in result["steps"]}
    assert list(steps) == ["analyze", "code", "test"]
    # The analyzer's map reached the planner and the coder.
    assert "calc/ops.py" in steps["analyze"]["outputs"]["modules"]
    assert "add(a: float, b: float)" in json.dumps(sent[1].body)
    code, test = steps["code"]["outputs"], steps["test"]["outputs"]
    assert "+def fibonacci(n: int) -> int:" in code["diff"]
    assert sorted(code["files_changed"]) == [
        "calc/__init__.py",
        "calc/ops.py",
        "tests/test_fibonacci.py",
    ]
    assert test["category"] == "passed" and test["passed"] == 6 and test["failed"] == 0
    assert result["change"]["tests"]["passed"] == 6
    # The commit, on a branch of its own, in the run's workspace (the repo is untouched).
    run_dir = Path(cli_env["FIRSTMATE_DATA_DIR"]) / "runs" / result["run_id"]
    branch = code["branch"]
    assert branch == f"firstmate/{result['run_id']}"
    shown = subprocess.run(
        ["git", "-C", str(run_dir / "workspace"), "show", "--stat", branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert code["commit"] in shown and "calc/ops.py" in shown
    assert "fibonacci" not in (repo / "calc" / "ops.py").read_text()
    assert len(sent) == 6  # the plan, five coder turns; analyze and test need no model
