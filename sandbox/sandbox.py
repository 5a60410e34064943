"""One sandbox: a running hardened container and the supervisor inside it."""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from sandbox import workspace
from sandbox._channel import Channel, ChannelTimeout, Reply
from sandbox.container import BASE_ENV, WORKSPACE, ContainerFactory, Started
from sandbox.errors import (
    OperationFailed,
    ProtocolError,
    SandboxClosed,
    WorkspaceSyncError,
)
from sandbox.limits import MIB, Limits
from sandbox.manifest import MAX_ENTRIES, Manifest
from sandbox.result import ExecResult
from sandbox.workspace import SyncReport

# How long past a command's own timeout the host waits for the supervisor to answer
# before it kills the whole container itself.
_GRACE_S = 5.0
_TRANSFER_TIMEOUT_S = 300.0
_KILLED = 137
# A copy-out may carry the workspace plus this much of tar headers and padding; the
# supervisor stops before passing it, and the host reads a few blocks more at most.
_TAR_OVERHEAD = 64 * MIB
_TAR_SLACK = 64 * 1024


class Sandbox:
    """A container that runs commands for one step, then is thrown away.

    Thread-safe: operations on one sandbox run one at a time. ``synced`` says what the
    last ``pull_dir`` (the copy-back at the end of ``acquire``) applied to the host.
    """

    def __init__(self, factory: ContainerFactory, started: Started, limits: Limits) -> None:
        self._factory = factory
        self._channel: Channel = started.channel
        self._lock = threading.Lock()
        self.id = started.container_id
        self.name = started.name
        self.image_digest = factory.image_digest
        self.limits = limits
        self.uid = started.uid
        self.synced: SyncReport | None = None
        self._sent: dict[tuple[str, str], Manifest] = {}

    @property
    def alive(self) -> bool:
        return not self._channel.closed

    def exec(
        self,
        cmd: Sequence[str] | str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str = WORKSPACE,
    ) -> ExecResult:
        """Run ``cmd`` (an argv, or a string for ``sh -c``) and wait for it.

        Everything the command started is killed when it ends or times out. A command
        that outlives ``timeout`` (default: ``limits.timeout_s``) is killed by the
        supervisor; if the supervisor does not answer either, the container is killed.
        """
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        merged = {**BASE_ENV, **(env or {})}
        _check_command(argv, merged, cwd)
        seconds = float(timeout if timeout is not None else self.limits.timeout_s)
        if not seconds > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        request = {
            "op": "exec",
            "argv": argv,
            "env": merged,
            "cwd": cwd,
            "timeout": seconds,
            "cap": self.limits.output_bytes,
        }
        started = time.monotonic()
        with self._lock:
            self._check_open()
            try:
                reply = self._channel.call(request, deadline=started + seconds + _GRACE_S)
            except ChannelTimeout:
                self.close()
                return self._lost(started, timed_out=True, oom=False)
            except SandboxClosed:
                oom = self._factory.oom_killed(self.id)
                if not oom:
                    raise SandboxClosed(self._death_notice()) from None
                return self._lost(started, timed_out=False, oom=True)
        return self._result(reply.ok("exec"))

    def _result(self, reply: Reply) -> ExecResult:
        h = reply.header
        out_head, out_tail, err_head, err_tail = reply.blobs
        stdout, cut_out = _compose(out_head, out_tail, _int(h, "stdout_total"))
        stderr, cut_err = _compose(err_head, err_tail, _int(h, "stderr_total"))
        return ExecResult(
            exit_code=_int(h, "exit_code"),
            stdout=stdout,
            stderr=stderr,
            timed_out=h.get("timed_out") is True,
            oom_killed=h.get("oom_killed") is True,
            truncated=cut_out or cut_err,
            duration_s=float(h.get("duration", 0.0)),  # type: ignore[arg-type]
            image_digest=self.image_digest,
        )

    def _lost(self, started: float, *, timed_out: bool, oom: bool) -> ExecResult:
        why = "timed out; the sandbox was killed" if timed_out else "killed: out of memory"
        return ExecResult(
            exit_code=_KILLED,
            stdout="",
            stderr=f"sandbox: {why}\n",
            timed_out=timed_out,
            oom_killed=oom,
            truncated=False,
            duration_s=time.monotonic() - started,
            image_digest=self.image_digest,
        )

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` (relative paths are under the workspace)."""
        request = {"op": "put_file", "path": _absolute(path), "mode": mode}
        self._call(request, io.BytesIO(data), len(data), f"put_file {path!r}")

    def get_file(self, path: str, *, limit: int = 256 * MIB) -> bytes:
        """Read the regular file ``path`` (relative paths are under the workspace).

        A file larger than ``limit`` bytes, a FIFO or a device is refused.
        """
        sink = io.BytesIO()
        request = {"op": "get_file", "path": _absolute(path), "limit": limit}
        self._chunked(request, sink, limit, f"get_file {path!r}", OperationFailed)
        return sink.getvalue()

    def push_dir(self, src: Path, dest: str = WORKSPACE) -> None:
        """Copy the contents of the host directory ``src`` into ``dest``.

        What was sent is remembered, so that ``pull_dir`` applies only what changed.
        """
        tar, size, sent = workspace.pack(src)
        with tar:
            request = {"op": "put_tar", "dest": dest}
            try:
                self._call(request, tar, size, f"copy {str(src)!r} in")
            except OperationFailed as exc:
                raise WorkspaceSyncError(str(exc)) from exc
        self._sent[_key(src, dest)] = sent

    def pull_dir(self, dest: Path, src: str = WORKSPACE) -> list[str]:
        """Apply to the host directory ``dest`` what changed in ``src``; return what was skipped.

        Only what differs from what ``push_dir`` sent there is applied: new and changed
        entries, and deletions of entries that were sent (nothing is deleted if
        nothing was sent). Other host entries stay as they are, so sandboxes working in
        parallel on one directory keep each other's changes. ``synced`` then holds the
        whole report. Every failure is a WorkspaceSyncError.
        """
        limit = (self.limits.workspace_mb * MIB) + _TAR_OVERHEAD
        request = {"op": "get_tar", "path": src, "limit": limit, "max_entries": MAX_ENTRIES}
        with tempfile.SpooledTemporaryFile(max_size=8 * MIB) as sink:
            try:
                self._chunked(
                    request, sink, limit + _TAR_SLACK, f"copy {src} out", WorkspaceSyncError
                )
            except SandboxClosed as exc:
                raise WorkspaceSyncError(f"copy {src} out: {exc}") from exc
            sink.seek(0)
            report = workspace.sync_back(sink, dest, self._sent.get(_key(dest, src), {}))
        self.synced = report
        return report.skipped

    def ping(self, *, timeout: float = 5.0) -> None:
        """Check that the supervisor answers."""
        with self._lock:
            self._check_open()
            try:
                self._channel.call({"op": "ping"}, deadline=time.monotonic() + timeout).ok("ping")
            except ChannelTimeout:
                self.close()
                raise SandboxClosed(f"sandbox {self.name} does not answer") from None

    def close(self, *, kill: bool = True) -> None:
        """Hang up; with ``kill``, kill the container at once too.

        Hanging up alone ends the container soon (the supervisor kills every process
        and exits when its input closes); removing it is the pool's or the reaper's job.
        """
        self._channel.close()
        if kill:
            self._factory.kill(self.id)

    def _call(
        self, request: Mapping[str, object], payload: IO[bytes], size: int, what: str
    ) -> None:
        with self._lock:
            self._check_open()
            deadline = time.monotonic() + _TRANSFER_TIMEOUT_S
            try:
                reply = self._channel.call(
                    request, deadline=deadline, payload=payload, payload_size=size
                )
            except ChannelTimeout:
                self.close()
                raise OperationFailed(f"{what}: no answer in {_TRANSFER_TIMEOUT_S:.0f}s") from None
            _raise_unless_ok(reply, what, OperationFailed)

    def _chunked(
        self,
        request: Mapping[str, object],
        sink: IO[bytes],
        limit: int,
        what: str,
        error: type[OperationFailed],
    ) -> None:
        with self._lock:
            self._check_open()
            deadline = time.monotonic() + _TRANSFER_TIMEOUT_S
            try:
                trailer = self._channel.call_chunked(request, sink, deadline=deadline, limit=limit)
            except ChannelTimeout:
                self.close()
                raise error(f"{what}: no answer in {_TRANSFER_TIMEOUT_S:.0f}s") from None
            except (ProtocolError, OperationFailed) as exc:
                if self._channel.closed:  # hung up mid-stream: the sandbox is useless now
                    self.close()
                raise error(f"{what}: {exc}") from exc
            _raise_unless_ok(trailer, what, error)

    def _check_open(self) -> None:
        if self._channel.closed:
            raise SandboxClosed(f"sandbox {self.name} is closed")

    def _death_notice(self) -> str:
        detail = self._channel.diagnostics
        state = self._factory.exit_detail(self.id)
        said = f"; supervisor said: {detail}" if detail else ""
        return f"sandbox {self.name} died: {state}{said}"


def _check_command(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> None:
    """Refuse, here and clearly, what the kernel would refuse later and vaguely."""
    if not argv:
        raise ValueError("exec needs a command")
    strings = [*argv, *env.keys(), *env.values(), cwd]
    if not all(isinstance(s, str) for s in strings):
        raise TypeError(f"argv, env and cwd must be strings: {argv!r}, {dict(env)!r}, {cwd!r}")
    if any("\0" in s for s in strings):
        raise ValueError("argv, env and cwd may not contain NUL bytes")
    if any(not k or "=" in k for k in env):
        raise ValueError(f"bad environment variable names: {sorted(env)!r}")


def _raise_unless_ok(reply: Reply, what: str, error: type[OperationFailed]) -> None:
    if reply.header.get("ok") is not True:
        raise error(f"{what}: {reply.header.get('error') or 'failed'}")


def _key(host: Path, inside: str) -> tuple[str, str]:
    """What a copy-in is remembered by: the host directory's real path and the target."""
    return os.path.realpath(host), inside


def _absolute(path: str) -> str:
    if "\0" in path:
        raise ValueError(f"path {path!r} contains a NUL byte")
    p = PurePosixPath(path)
    return str(p if p.is_absolute() else PurePosixPath(WORKSPACE) / p)


def _int(header: Mapping[str, object], key: str) -> int:
    value = header.get(key)
    if not isinstance(value, int):
        raise ProtocolError(f"reply field {key!r} is not an integer: {value!r}")
    return value


def _compose(head: bytes, tail: bytes, total: int) -> tuple[str, bool]:
    """The captured text, with a visible marker where the middle was dropped."""
    dropped = total - len(head) - len(tail)
    text = head.decode("utf-8", "replace")
    if dropped > 0:
        text += f"\n…[{dropped} bytes truncated]…\n"
    return text + tail.decode("utf-8", "replace"), dropped > 0
