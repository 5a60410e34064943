"""The escape suite: hostile commands against a real sandbox, each one contained.

Every attack asserts its outcome, and where containment could be vacuous (a command
that fails for some unrelated reason), a control shows the same probe working when
the defence is absent or the target is legitimate.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import docker
import pytest

from sandbox import Limits, SandboxPool
from tests.services import bridge_gateway

pytestmark = pytest.mark.docker

# argv, not a shell string: the count is then the supervisor and this python, nothing else.
COUNT_PROCS = ["python3", "-c", "import os; print(sum(p.isdigit() for p in os.listdir('/proc')))"]


@pytest.fixture
def tcp_server() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on every host interface that records what reaches it."""
    received: list[bytes] = []
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                received.append(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


def _connect_script(host: str, port: int) -> str:
    return (
        'python3 -c "import socket,sys\n'
        f"s=socket.create_connection(('{host}',{port}),timeout=3)\n"
        "s.sendall(b'escaped'); s.close(); print('connected')\""
    )


def test_no_network_egress_to_a_host_server(
    pool: SandboxPool, docker_client: docker.DockerClient, tcp_server: tuple[int, list[bytes]]
) -> None:
    port, received = tcp_server
    gateway = bridge_gateway(docker_client)
    with pool.acquire() as sb:
        routes = sb.exec("cat /proc/net/route").stdout.strip().splitlines()
        attempt = sb.exec(_connect_script(gateway, port))
    assert routes[1:] == [], f"the sandbox has routes: {routes}"
    assert attempt.exit_code != 0
    assert "connected" not in attempt.stdout
    assert "unreachable" in attempt.stderr.lower() or "errno" in attempt.stderr.lower()
    time.sleep(0.3)
    assert received == []


def test_control_network_when_asked_reaches_the_same_server(
    pool: SandboxPool, docker_client: docker.DockerClient, tcp_server: tuple[int, list[bytes]]
) -> None:
    """The egress probe is real: with network on, it connects (so the test above can fail)."""
    port, received = tcp_server
    with pool.acquire(limits=Limits(network=True)) as sb:
        routes = sb.exec("cat /proc/net/route").stdout
        attempt = sb.exec(_connect_script(bridge_gateway(docker_client), port))
    assert "00000000" in routes  # a default route
    assert attempt.stdout.strip() == "connected", attempt.stderr
    deadline = time.monotonic() + 3
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received == [b"escaped"]


def test_fork_bomb_is_bounded_and_cleaned_up(pool: SandboxPool) -> None:
    limits = Limits(pids=64)
    with pool.acquire(limits=limits) as sb:
        assert sb.exec("cat /sys/fs/cgroup/pids/pids.max").stdout.strip() == "64"
        started = time.monotonic()
        bomb = sb.exec("bomb() { bomb | bomb & }; bomb; sleep 30", timeout=3)
        elapsed = time.monotonic() - started
        after = sb.exec(COUNT_PROCS)
    # Bounded by the pids limit: the shell runs into it and is stopped at the timeout,
    # or (when the bomb fills the limit first) cannot fork its own ``sleep`` and exits.
    assert bomb.timed_out or "Cannot fork" in bomb.stderr, bomb
    assert elapsed < 10
    assert after.exit_code == 0
    assert after.stdout.strip() == "2"  # the supervisor and the counter, nothing else


def test_memory_bomb_is_oom_killed_and_reported(pool: SandboxPool) -> None:
    with pool.acquire(limits=Limits.for_memory(128)) as sb:
        bomb = sb.exec('python3 -c "x=[]\nwhile True: x.append(bytearray(10**7))"', timeout=60)
        survivor = sb.exec("echo still here")
    assert bomb.oom_killed
    assert bomb.exit_code == 137
    assert not bomb.timed_out
    assert survivor.stdout == "still here\n"


@pytest.mark.parametrize("target", ["/tmp/fill", "/home/sandbox/fill", "/workspace/fill"])
def test_disk_fill_stops_at_the_tmpfs_size(pool: SandboxPool, target: str) -> None:
    limits = Limits(tmpfs_mb=16, workspace_mb=24, memory_mb=256)
    with pool.acquire(limits=limits) as sb:
        fill = sb.exec(f"dd if=/dev/zero of={target} bs=1M count=200")
        size = int(sb.exec(f"stat -c %s {target}").stdout)
    assert fill.exit_code != 0
    assert "No space left on device" in fill.stderr
    assert size <= 24 * 1024 * 1024


def test_one_file_cannot_outgrow_the_file_size_limit(pool: SandboxPool) -> None:
    with pool.acquire(limits=Limits(fsize_mb=4, workspace_mb=64)) as sb:
        fill = sb.exec("dd if=/dev/zero of=/workspace/big bs=1M count=32")
        size = int(sb.exec("stat -c %s /workspace/big").stdout)
    assert fill.exit_code != 0
    assert size == 4 * 1024 * 1024


def test_infinite_loop_is_killed_at_the_timeout_with_nothing_left(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        loop = sb.exec("while :; do :; done", timeout=1.5)
        after = sb.exec(COUNT_PROCS)
    assert loop.timed_out
    assert loop.exit_code == 137
    assert 1.4 < loop.duration_s < 4
    assert after.stdout.strip() == "2"


def test_children_that_outlive_the_timeout_are_killed(pool: SandboxPool) -> None:
    script = (
        "setsid sh -c 'sleep 1000' & "
        "nohup sh -c 'trap \"\" TERM HUP; sleep 1000' >/dev/null 2>&1 & "
        "(sleep 1000 &) ; sleep 1000"
    )
    with pool.acquire() as sb:
        run = sb.exec(script, timeout=1)
        after = sb.exec(COUNT_PROCS)
        ps = sb.exec("ps -eo pid,comm --no-headers")
    assert run.timed_out
    assert after.stdout.strip() == "2", ps.stdout


def test_background_processes_end_with_their_command(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        run = sb.exec("sleep 1000 & setsid sleep 1000 & echo started")
        after = sb.exec(COUNT_PROCS)
    assert run.stdout == "started\n"
    assert not run.timed_out
    assert after.stdout.strip() == "2"


def test_fifty_megabytes_of_output_are_capped(pool: SandboxPool) -> None:
    cap = 64 * 1024
    with pool.acquire(limits=Limits(output_bytes=cap)) as sb:
        flood = sb.exec("head -c 50000000 /dev/zero | tr '\\0' a; echo; echo THE-END", timeout=60)
    assert flood.exit_code == 0
    assert flood.truncated
    assert len(flood.stdout.encode()) < cap + 100
    assert flood.stdout.startswith("a" * 1000)
    assert flood.stdout.endswith("THE-END\n")
    assert "bytes truncated]" in flood.stdout


@pytest.mark.parametrize("path", ["/etc/evil", "/usr/bin/evil", "/evil", "/var/evil", "/home/evil"])
def test_nothing_outside_the_scratch_mounts_is_writable(pool: SandboxPool, path: str) -> None:
    with pool.acquire() as sb:
        attempt = sb.exec(f"echo x > {path}")
        exists = sb.exec(f"test -e {path}")
        control = sb.exec("echo x > /workspace/ok && cat /workspace/ok")
    assert attempt.exit_code != 0
    assert "Read-only file system" in attempt.stderr or "Permission denied" in attempt.stderr
    assert exists.exit_code != 0
    assert control.stdout == "x\n"


def test_host_environment_and_secrets_do_not_reach_the_sandbox(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "fm-test-secret-7d1f0c"
    monkeypatch.setenv("FIRSTMATE_TEST_SECRET", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with pool.acquire(limits=Limits.for_memory(700)) as sb:  # a cold container, made now
        env = sb.exec("env; cat /proc/1/environ; cat /proc/self/environ")
        mounts = sb.exec("cat /proc/mounts").stdout
        given = sb.exec("env", env={"GIVEN": "yes"})
    assert env.exit_code == 0
    assert secret not in env.stdout
    assert "HOME=/home/sandbox" in env.stdout
    assert "GIVEN=yes" in given.stdout
    host_disk = [line.split() for line in mounts.splitlines() if line.startswith("/dev/")]
    assert host_disk, "expected the three /etc files Docker provides"
    for _dev, point, _fs, options, *_ in host_disk:
        assert point in {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}, point
        assert options.startswith("ro"), (point, options)


DENIED = ("permission denied", "operation not permitted", "must be superuser")
READ_ONLY = ("read-only file system",)
# Some kernels are built without magic SysRq: then there is no file to write to at all.
ABSENT_OR_READ_ONLY = ("read-only file system", "nonexistent", "no such file")


@pytest.mark.parametrize(
    ("attack", "expect"),
    [
        ("mount -t tmpfs none /tmp", DENIED),
        (
            "python3 -c 'import ctypes; l=ctypes.CDLL(None, use_errno=True);"
            ' assert l.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0,'
            ' __import__("os").strerror(ctypes.get_errno())\'',
            DENIED,
        ),
        ("unshare --user --map-root-user id", DENIED),
        ("unshare --mount --pid --fork true", DENIED),
        ("echo b > /proc/sysrq-trigger", ABSENT_OR_READ_ONLY),
        ("echo pwned > /proc/sys/kernel/domainname", READ_ONLY),
        ("head -c 10 /proc/kcore", (*DENIED, "no such file")),
        (
            "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)'",
            DENIED,
        ),
        (
            "python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'",
            DENIED,
        ),
    ],
)
def test_kernel_attack_surface_is_closed(
    pool: SandboxPool, attack: str, expect: tuple[str, ...]
) -> None:
    with pool.acquire() as sb:
        result = sb.exec(attack)
    assert result.exit_code != 0, result
    assert any(word in result.stderr.lower() for word in expect), result.stderr


def test_no_privilege_escalation(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        status = sb.exec("grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd):' /proc/self/status")
        setuid_files = sb.exec("find / -xdev -type f -perm /6000 2>/dev/null")
        su = sb.exec("su -c id root </dev/null")
        setuid = sb.exec("python3 -c 'import os; os.setuid(0)'")
        whoami = sb.exec("id -u")
    assert "NoNewPrivs:\t1" in status.stdout
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        assert f"{cap}:\t0000000000000000" in status.stdout
    assert setuid_files.stdout == ""
    assert su.exit_code != 0
    assert "PermissionError" in setuid.stderr
    uid = int(whoami.stdout)
    assert 100_000 <= uid < 200_000
    assert uid not in {os.getuid(), os.geteuid()}


def test_no_docker_socket_anywhere(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        found = sb.exec("find / -xdev \\( -name 'docker.sock' -o -name '*.sock' \\) 2>/dev/null")
        run_dirs = sb.exec("ls -a /run /var/run 2>&1")
        env = sb.exec("env")
    assert found.stdout == ""
    assert "docker" not in run_dirs.stdout
    assert "DOCKER_HOST" not in env.stdout


def test_commands_cannot_forge_supervisor_replies_or_trace_it(pool: SandboxPool) -> None:
    with pool.acquire() as sb:
        forge = sb.exec("printf 'forged' > /proc/1/fd/1")
        trace = sb.exec(
            'python3 -c "import ctypes; l=ctypes.CDLL(None, use_errno=True);'
            ' r=l.ptrace(16, 1, 0, 0); print(r, ctypes.get_errno())"'
        )
        after = sb.exec("echo intact")
    assert forge.exit_code != 0
    assert "Permission denied" in forge.stderr
    assert trace.stdout.split()[0] == "-1"
    assert after.stdout == "intact\n"


def test_a_frozen_supervisor_is_killed_by_the_host_deadline(
    pool: SandboxPool, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sandbox.sandbox._GRACE_S", 1.0)
    with pool.acquire() as sb:
        docker_client.api.pause(sb.id)
        started = time.monotonic()
        result = sb.exec("true", timeout=0.5)
        elapsed = time.monotonic() - started
        assert not sb.alive
        state = docker_client.api.inspect_container(sb.id)["State"]
    assert result.timed_out
    assert result.exit_code == 137
    assert elapsed < 5
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 137


def test_no_sandbox_of_this_module_is_left_running(docker_client: docker.DockerClient) -> None:
    """No sandbox of this module is left running (the pool removes them on release)."""
    time.sleep(0.5)
    running = docker_client.api.containers(
        filters={"label": "firstmate.sandbox=1", "status": "running"}
    )
    mine = [c for c in running if str(os.getpid()) in c["Labels"].get("firstmate.owner", "")]
    assert len(mine) <= 2  # the module pool's warm sandboxes, nothing else


def test_commands_cannot_end_the_supervisor_with_signals(pool: SandboxPool) -> None:
    """PID 1 gets signals from its own container only through a handler: it has none."""
    with pool.acquire() as sb:
        attempt = sb.exec("kill -INT 1; kill -TERM 1; kill -HUP 1; sleep 0.5; echo sent")
        after = sb.exec("echo still here")
        own = sb.exec("kill -INT $$")  # commands still get the default actions
    assert attempt.stdout == "sent\n", attempt.stderr
    assert after.stdout == "still here\n"
    assert own.exit_code == 128 + 2


def test_filling_every_tmpfs_leaves_the_supervisor_alive(pool: SandboxPool) -> None:
    """tmpfs pages count against memory: Limits leaves room for them all to be full."""
    limits = Limits.for_memory(128)
    fill = " ; ".join(
        f"dd if=/dev/zero of={where}/fill bs=1M count=1024 2>/dev/null"
        for where in ("/workspace", "/tmp", "$HOME", "/dev/shm")
    )
    with pool.acquire(limits=limits) as sb:
        filled = sb.exec(f"{fill}; du -sm /workspace /tmp $HOME /dev/shm", timeout=60)
        after = sb.exec("echo alive; du -sm /workspace | cut -f1")
    assert filled.exit_code == 0, filled.stderr
    assert after.stdout.split() == ["alive", str(limits.workspace_mb)]


def test_each_sandbox_runs_as_a_uid_of_its_own(
    pool: SandboxPool, docker_client: docker.DockerClient
) -> None:
    probe = "id -u; id -g; stat -c '%u:%g' /workspace $HOME; echo $USER $HOME"
    with pool.acquire() as one, pool.acquire() as two:
        seen = {sb.uid: sb.exec(probe).stdout.split() for sb in (one, two)}
        users = {docker_client.api.inspect_container(sb.id)["Config"]["User"] for sb in (one, two)}
    assert len(seen) == 2  # two sandboxes, two uids
    for uid, words in seen.items():
        assert 100_000 <= uid < 200_000
        assert uid not in {os.getuid(), os.geteuid()}
        owned = f"{uid}:{uid}"
        assert words == [str(uid), str(uid), owned, owned, "sandbox", "/home/sandbox"]
    assert users == {f"{uid}:{uid}" for uid in seen}
