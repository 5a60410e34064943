"""``firstmate sandbox …`` as a user runs it: the real executable, real Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.conftest import IMAGE

pytestmark = pytest.mark.docker

FIRSTMATE = str(Path(sys.executable).with_name("firstmate"))
CONTRACT_KEYS = {
    "exit_code",
    "stdout",
    "stderr",
    "timed_out",
    "oom_killed",
    "truncated",
    "duration_s",
}


def firstmate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FIRSTMATE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FIRSTMATE_SANDBOX_IMAGE": IMAGE, **(env or {})},
        check=False,
    )


def test_exec_json_prints_the_contract_fields_and_exits_with_the_command(
    docker_client: docker.DockerClient,
) -> None:
    done = firstmate(
        "sandbox", "exec", "--json", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3"
    )
    assert done.returncode == 3
    result = json.loads(done.stdout)
    assert result.keys() >= CONTRACT_KEYS
    assert (result["stdout"], result["stderr"], result["exit_code"]) == ("hi\n", "oops\n", 3)
    assert result["timed_out"] is False


def test_exec_plain_passes_streams_through(docker_client: docker.DockerClient) -> None:
    done = firstmate(
        "sandbox", "exec", "--", "python3", "-c", "print('out'); import os; print(os.getuid())"
    )
    assert done.returncode == 0
    out, uid = done.stdout.splitlines()
    assert out == "out"
    assert 100_000 <= int(uid) < 200_000 and int(uid) != os.getuid()


def test_exec_timeout_and_memory_flags(docker_client: docker.DockerClient) -> None:
    slow = firstmate("sandbox", "exec", "--json", "--timeout", "1", "--", "sleep", "30")
    hungry = firstmate(
        "sandbox",
        "exec",
        "--json",
        "--memory",
        "128",
        "--",
        "python3",
        "-c",
        "x=[]\nwhile True: x.append(bytearray(10**7))",
    )
    assert slow.returncode == 137 and json.loads(slow.stdout)["timed_out"] is True
    assert hungry.returncode == 137 and json.loads(hungry.stdout)["oom_killed"] is True


def test_exec_network_flag_gives_a_route(docker_client: docker.DockerClient) -> None:
    off = firstmate("sandbox", "exec", "--", "cat", "/proc/net/route")
    on = firstmate("sandbox", "exec", "--network", "--", "cat", "/proc/net/route")
    assert "00000000" not in off.stdout.split("\n", 1)[1]
    assert "00000000" in on.stdout


def test_exec_workspace_round_trip(docker_client: docker.DockerClient, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from the host\n")
    done = firstmate(
        "sandbox",
        "exec",
        "--workspace",
        str(tmp_path),
        "--",
        "sh",
        "-c",
        "cat in.txt > out.txt && rm in.txt",
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    assert (tmp_path / "out.txt").read_text() == "from the host\n"


def test_a_missing_image_is_a_clear_error_not_a_traceback() -> None:
    done = firstmate(
        "sandbox",
        "exec",
        "--",
        "true",
        env={"FIRSTMATE_SANDBOX_IMAGE": "firstmate-no-such-image:latest"},
    )
    assert done.returncode == 125
    assert "firstmate sandbox build" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_engine_is_a_clear_error() -> None:
    done = firstmate(
        "sandbox", "exec", "--", "true", env={"DOCKER_HOST": "unix:///nonexistent.sock"}
    )
    assert done.returncode == 125
    assert "cannot reach the Docker engine" in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_json_reports_both_latencies(docker_client: docker.DockerClient) -> None:
    done = firstmate("sandbox", "bench", "--json", "--samples", "3")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    for key in ("cold_p50_ms", "cold_p95_ms", "warm_p50_ms", "warm_p95_ms", "ratio_p50"):
        assert figures[key] > 0, key
    assert figures["image_digest"].startswith("sha256:")


def test_reap_runs_and_reports(docker_client: docker.DockerClient) -> None:
    done = firstmate("sandbox", "reap")
    assert done.returncode == 0, done.stderr
    assert "orphaned sandbox" in done.stderr
