"""Hardened sandbox containers: how they are created, started, named and removed.

Every container runs the supervisor as PID 1 under a uid (and gid) of its own, drawn
at random from 100000-199999, so that it is no host account and shares no per-user
kernel limits (inotify instances, pipe pages) with other sandboxes; on a read-only
root with size-limited tmpfs for /tmp, home and the workspace, with no capabilities,
no new privileges, no network unless asked, Docker's default seccomp profile, pids,
memory (no swap), CPU and ulimits, no host environment, no logging of its streams,
and never the Docker socket. Labels name it as a sandbox and name its owner process,
so the reaper can remove what a dead process left behind.

Every Docker call goes through the SDK, whose connection errors (``requests``'s, e.g.
while dockerd restarts) are not DockerExceptions: both are translated here, once.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
from docker.types import LogConfig, Ulimit

from sandbox._channel import Channel, ChannelTimeout
from sandbox.errors import DockerUnavailable, ImageError, SandboxClosed, SandboxError
from sandbox.limits import MIB, Limits

DEFAULT_IMAGE = "firstmate-sandbox:latest"
LABEL = "firstmate.sandbox"
LABEL_OWNER = "firstmate.owner"
LABEL_EXPIRES = "firstmate.expires"
LABEL_RUN = "firstmate.run"
LABEL_STEP = "firstmate.step"
NAME_PREFIX = "fm-"
UID_RANGE = range(100_000, 200_000)
WORKSPACE = "/workspace"
HOME = "/home/sandbox"
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": HOME,
    "USER": "sandbox",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
}
MAX_LIFETIME_S = 24 * 3600
_READY_TIMEOUT_S = 30.0
_GONE_TIMEOUT_S = 30.0  # another process's removal of a container, waited for
_SUPERVISOR = (Path(__file__).parent / "_supervisor.py").read_text()
# What a Docker SDK call raises: the engine's answers, and the connection's failures.
DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


def connect(base_url: str | None = None) -> docker.DockerClient:
    """A Docker client for ``base_url`` (default: ``DOCKER_HOST`` or the local socket)."""
    try:
        client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
        client.ping()
    except DOCKER_ERRORS as exc:
        where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise DockerUnavailable(
            f"cannot reach the Docker engine at {where}: {exc}. "
            "Start dockerd (or set DOCKER_HOST) and try again."
        ) from exc
    return client


@cache
def owner_key() -> str:
    """Who owns the containers this process creates: boot, pid namespace, pid, start time.

    The start time tells a live owner from a recycled pid; the boot id and namespace
    say whether this process can check the owner at all.
    """
    return f"{_boot_id()}:{_pidns()}:{os.getpid()}:{process_start(os.getpid())}"


def process_start(pid: int) -> str:
    """The start time (clock ticks since boot) of ``pid``, or "" if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return socket.gethostname()


def _pidns() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def sandbox_name(run_id: str | None = None, step_id: str | None = None) -> str:
    """A container name that carries the run and step ids (Docker allows renaming only)."""
    parts = [_slug(x) for x in (run_id, step_id) if x]
    return (
        NAME_PREFIX + "-".join([*parts, secrets.token_hex(4)])
        if parts
        else (f"{NAME_PREFIX}warm-{secrets.token_hex(4)}")
    )


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", value)[:40] or "_"


def sandbox_uid() -> int:
    """A uid (also the gid) for one container: random in UID_RANGE, never this process's."""
    while True:
        uid = UID_RANGE.start + secrets.randbelow(len(UID_RANGE))
        if uid not in {os.getuid(), os.geteuid()}:
            return uid


@dataclass(frozen=True, slots=True)
class Started:
    """A container whose supervisor has answered, and the channel to it."""

    container_id: str
    name: str
    channel: Channel
    uid: int


class ContainerFactory:
    """Creates, starts, renames and removes sandbox containers on one engine."""

    def __init__(
        self, client: docker.DockerClient, image: str, *, runtime: str | None = None
    ) -> None:
        self.client = client
        self.image = image
        self.runtime = runtime
        self.image_digest = self._resolve_image()

    def _resolve_image(self) -> str:
        try:
            return str(self.client.images.get(self.image).id)
        except docker.errors.ImageNotFound as exc:
            raise ImageError(
                f"sandbox image {self.image!r} is not built: run `firstmate sandbox build`"
            ) from exc
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot inspect image {self.image!r}: {exc}") from exc

    def start(
        self, limits: Limits, *, run_id: str | None = None, step_id: str | None = None
    ) -> Started:
        """Create and start one hardened container; return once its supervisor answers."""
        name = sandbox_name(run_id, step_id)
        labels = {
            LABEL: "1",
            LABEL_OWNER: owner_key(),
            LABEL_EXPIRES: str(int(time.time()) + MAX_LIFETIME_S),
        }
        if run_id:
            labels[LABEL_RUN] = run_id
        if step_id:
            labels[LABEL_STEP] = step_id
        api = self.client.api
        uid = sandbox_uid()
        try:
            created = api.create_container(
                self.image,
                command=["python3", "-I", "-S", "-c", _SUPERVISOR],
                name=name,
                labels=labels,
                user=f"{uid}:{uid}",
                working_dir=WORKSPACE,
                environment=BASE_ENV,
                hostname="sandbox",
                # stdin_open without detach sets StdinOnce: when our attached
                # connection closes, the supervisor reads EOF and ends everything.
                stdin_open=True,
                detach=False,
                tty=False,
                network_disabled=not limits.network,
                host_config=api.create_host_config(**self._host_config(limits, uid)),
            )
            cid = str(created["Id"])
        except docker.errors.ImageNotFound as exc:
            raise ImageError(f"sandbox image {self.image!r} is gone: {exc}") from exc
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot create a sandbox container: {exc}") from exc
        try:
            return Started(cid, name, self._attach_and_start(cid), uid)
        except BaseException:
            self.remove(cid)
            raise

    def _host_config(self, limits: Limits, uid: int) -> dict[str, Any]:
        tmp = f"rw,exec,nosuid,nodev,size={limits.tmpfs_mb}m"
        owned = f"uid={uid},gid={uid}"
        fsize = limits.fsize_mb * MIB
        config: dict[str, Any] = {
            "network_mode": "bridge" if limits.network else "none",
            "read_only": True,
            "tmpfs": {
                "/tmp": f"{tmp},mode=1777",
                HOME: f"{tmp},{owned},mode=0700",
                WORKSPACE: f"rw,exec,nosuid,nodev,size={limits.workspace_mb}m,{owned},mode=0755",
            },
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "mem_limit": f"{limits.memory_mb}m",
            "memswap_limit": f"{limits.memory_mb}m",
            "nano_cpus": int(limits.cpus * 1e9),
            "pids_limit": limits.pids,
            "ulimits": [
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(name="fsize", soft=fsize, hard=fsize),
                Ulimit(name="core", soft=0, hard=0),
            ],
            "shm_size": f"{limits.tmpfs_mb}m",
            "log_config": LogConfig(type=LogConfig.types.NONE),
            "ipc_mode": "private",
            "init": False,
            "privileged": False,
        }
        if self.runtime:
            config["runtime"] = self.runtime
        return config

    def _attach_and_start(self, cid: str) -> Channel:
        api = self.client.api
        try:
            streams = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            handle = api.attach_socket(cid, params=streams)
            channel = Channel(handle)
            api.start(cid)
        except (*DOCKER_ERRORS, OSError) as exc:
            raise DockerUnavailable(f"cannot start sandbox container {cid[:12]}: {exc}") from exc
        try:
            channel.call({"op": "ping"}, deadline=time.monotonic() + _READY_TIMEOUT_S).ok("ping")
        except (ChannelTimeout, SandboxError) as exc:
            detail = channel.diagnostics or self.exit_detail(cid)
            channel.close()
            raise SandboxClosed(
                f"sandbox container {cid[:12]} did not come up: {exc or 'timeout'}; {detail}"
            ) from exc
        return channel

    def rename(self, cid: str, run_id: str | None, step_id: str | None) -> str:
        """Give a warm container the run and step ids in its name; return the name."""
        name = sandbox_name(run_id, step_id)
        try:
            self.client.api.rename(cid, name)
        except DOCKER_ERRORS as exc:
            raise SandboxClosed(f"cannot name sandbox {cid[:12]}: {exc}") from exc
        return name

    def oom_killed(self, cid: str) -> bool:
        """Whether Docker saw the container's memory cgroup kill its init."""
        try:
            return bool(self.client.api.inspect_container(cid)["State"].get("OOMKilled"))
        except DOCKER_ERRORS:
            return False

    def exit_detail(self, cid: str) -> str:
        try:
            state = self.client.api.inspect_container(cid)["State"]
        except DOCKER_ERRORS as exc:
            return f"container state unknown ({exc})"
        return f"container status {state.get('Status')}, exit code {state.get('ExitCode')}"

    def kill(self, cid: str) -> None:
        """Kill the container now (everything in it dies with its init)."""
        with suppress(*DOCKER_ERRORS):  # gone, or Docker away: the reaper finds it later
            self.client.api.kill(cid)

    def remove(self, cid: str) -> None:
        """Kill and remove the container; a container already gone is fine."""
        remove_container(self.client, cid, cid[:12])


def remove_container(client: docker.DockerClient, cid: str, name: str) -> None:
    """Kill and remove a container; one already gone is fine, and one another process
    is removing (a reaper that took it for an orphan) is waited for, so that it is gone
    when this returns."""
    try:
        client.api.remove_container(cid, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc):
            raise DockerUnavailable(f"cannot remove sandbox {name}: {exc}") from exc
        _wait_gone(client, cid, name)
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(f"cannot remove sandbox {name}: {exc}") from exc


def _wait_gone(client: docker.DockerClient, cid: str, name: str) -> None:
    """Wait until a container being removed is gone (at most ``_GONE_TIMEOUT_S``)."""
    deadline = time.monotonic() + _GONE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            client.api.inspect_container(cid)
        except docker.errors.NotFound:
            return
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"cannot remove sandbox {name}: {exc}") from exc
        time.sleep(0.05)
    raise DockerUnavailable(f"sandbox {name} is still being removed after {_GONE_TIMEOUT_S} s")
