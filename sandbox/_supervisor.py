"""The supervisor: PID 1 inside every sandbox container.

The host starts it as ``python3 -I -S -c <this file>`` and talks to it over the
container's attached stdin/stdout, so starting a command costs a fork here, not a
``docker exec`` round trip. It runs in the container's Python (Debian's 3.11 or the
slim image's 3.12): standard library only, nothing imported from Firstmate.

Framing, both ways: a 4-byte big-endian length, then that many bytes of JSON. A
request may announce ``payload: N`` raw bytes after its header. A response lists
``blobs: [n1, n2, …]`` raw byte strings after its header, or says ``chunked: true``
and follows with length-prefixed chunks, a zero-length chunk, then a trailer header.

Why each rule is here:
- Commands never inherit stdin/stdout of this process (they could forge replies), and
  this process is not dumpable, so same-uid processes cannot open /proc/1/fd/*.
- When a command ends (exit or timeout) every other process in the container is
  killed: nothing outlives the command that started it.
- Commands get oom_score_adj 1000, so the kernel kills them before the supervisor.
- While a command runs, stdin is watched too: EOF there means the host died, so the
  command and everything else is killed and the supervisor exits at once.
- SIGINT and SIGTERM are ignored: PID 1 gets signals from inside its container only
  through a handler, and no command may end the supervisor.
- Files are opened only when they are regular files (a FIFO or a device would block
  or never end), and a copy-out is refused before it would pass its byte limit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import stat
import struct
import sys
import tarfile
import time
from collections.abc import Sequence
from typing import IO, Any, NoReturn, cast

LENGTH = struct.Struct(">I")
MAX_HEADER = 1 << 20
CHUNK = 1 << 16
KILL_ROUNDS = 200
MAX_PENDING = 1 << 20
TAR_BLOCK = 512

# Bytes that reached stdin while a command ran: the next request starts with them.
PENDING = bytearray()


def read_some(n: int) -> bytes:
    """Up to n bytes of stdin, what arrived during a command first; b"" at EOF."""
    if PENDING:
        data = bytes(PENDING[:n])
        del PENDING[:n]
        return data
    return os.read(0, n)


def read_exact(n: int) -> bytes:
    """Read exactly n bytes from stdin, or raise EOFError."""
    parts = []
    while n:
        data = read_some(min(n, 1 << 20))
        if not data:
            raise EOFError
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def send(header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
    header["blobs"] = [len(b) for b in blobs]
    body = json.dumps(header).encode()
    write_all(LENGTH.pack(len(body)) + body)
    for blob in blobs:
        write_all(blob)


def receive() -> dict[str, Any]:
    (size,) = LENGTH.unpack(read_exact(LENGTH.size))
    if size > MAX_HEADER:
        raise ValueError("request header too large")
    return cast("dict[str, Any]", json.loads(read_exact(size)))


class Payload:
    """The announced payload bytes of a request, as a file object for tarfile."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        if not n:
            return b""
        data = read_some(min(n, 1 << 20))
        if not data:
            raise EOFError
        self.left -= len(data)
        return data

    def drain(self) -> None:
        while self.left:
            self.read(CHUNK)


class ChunkWriter:
    """A file object whose writes go to the host as length-prefixed chunks."""

    def __init__(self) -> None:
        self.total = 0

    def write(self, data: bytes) -> int:
        if data:
            write_all(LENGTH.pack(len(data)) + bytes(data))
            self.total += len(data)
        return len(data)

    def flush(self) -> None:
        pass


class Capture:
    """Keeps the head and the tail of a stream, counting what falls between."""

    def __init__(self, cap: int) -> None:
        self.tail_cap = cap // 2
        self.head_cap = cap - self.tail_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self.tail_cap:
            self.tail += data
            if len(self.tail) > 2 * self.tail_cap:
                del self.tail[: -self.tail_cap]

    def parts(self) -> tuple[bytes, bytes]:
        tail = bytes(self.tail[-self.tail_cap :]) if self.tail_cap else b""
        return bytes(self.head), tail


def oom_kills() -> int:
    """The memory cgroup's OOM-kill counter (cgroup v2 or v1), or -1."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return -1


def others() -> list[str]:
    return [p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())]


def reap_zombies() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_all() -> int:
    """Kill every process in the container but this one; return how many were left."""
    left = others()
    if not left:
        return 0
    for _ in range(KILL_ROUNDS):
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        reap_zombies()
        if not others():
            return len(left)
        time.sleep(0.005)
    return len(left)


def child(argv: list[str], env: dict[str, str], cwd: str, out_w: int, err_w: int) -> NoReturn:
    """In the forked child: wire the pipes, drop inherited state, exec. Never returns."""
    code = 127
    try:
        os.setsid()
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 65536)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        try:
            os.chdir(cwd)
        except OSError as exc:
            code = 126
            os.write(2, f"sandbox: cannot enter {cwd!r}: {exc.strerror}\n".encode())
            os._exit(code)
        os.execvpe(argv[0], argv, env)  # noqa: S606 - argv as given, never a shell
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        os.write(2, f"sandbox: cannot run {argv[0]!r}: {exc.strerror}\n".encode())
    except Exception as exc:  # a bad argv or env must still end here, never return
        code = 126
        os.write(2, f"sandbox: cannot run {argv[:1]!r}: {exc}\n".encode(errors="replace"))
    finally:
        os._exit(code)


def wait_status(pid: int, flags: int) -> int | None:
    try:
        got, status = os.waitpid(pid, flags)
    except ChildProcessError:
        return 0
    if got == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def pump(pid: int, captures: dict[int, Capture], deadline: float) -> tuple[int | None, bool]:
    """Read the command's pipes until it exits or the deadline passes.

    Stdin is watched too: EOF there (the host is gone) raises EOFError, which ends the
    supervisor, and it kills everything on its way out.
    """
    sel = selectors.DefaultSelector()
    for fd, capture in captures.items():
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, capture)
    sel.register(0, selectors.EVENT_READ, "stdin")
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
            sel.register(pidfd, selectors.EVENT_READ, None)
        except OSError:
            pidfd = None
    try:
        while True:
            code = wait_status(pid, os.WNOHANG)
            if code is not None:
                return code, False
            left = deadline - time.monotonic()
            if left <= 0:
                return None, True
            wait = left if pidfd is not None else min(left, 0.01)
            for key, _ in sel.select(wait):
                if key.data is not None:
                    read_ready(sel, key)
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)


def read_ready(sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
    """Take what one ready descriptor has: command output, or input from the host."""
    if key.data == "stdin":
        data = os.read(0, CHUNK)
        if not data:
            raise EOFError
        # The host never sends during a command, but what it sent must not be lost.
        PENDING.extend(data)
        if len(PENDING) > MAX_PENDING:
            sel.unregister(0)
        return
    data = os.read(key.fd, CHUNK)
    if data:
        key.data.feed(data)
    else:
        sel.unregister(key.fd)


def drain(captures: dict[int, Capture]) -> None:
    """Read what is left in the pipes once every writer is dead."""
    for fd, capture in captures.items():
        os.set_blocking(fd, False)
        while True:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                break
            if not data:
                break
            capture.feed(data)
        os.close(fd)


def op_exec(req: dict[str, Any]) -> None:
    cap = int(req["cap"])
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    captures = {out_r: Capture(cap), err_r: Capture(cap)}
    oom_before = oom_kills()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(req["argv"], req["env"], req["cwd"], out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    code, timed_out = pump(pid, captures, started + float(req["timeout"]))
    leftover = kill_all()
    if code is None:  # timed out: kill_all reaped it, with SIGKILL
        code = 128 + signal.SIGKILL
    elif code < 0:  # killed by a signal: the shell's convention
        code = 128 - code
    duration = time.monotonic() - started
    drain(captures)
    out, err = captures[out_r], captures[err_r]
    oom_after = oom_kills()
    header = {
        "ok": True,
        "exit_code": code,
        "timed_out": timed_out,
        "oom_killed": oom_before >= 0 and oom_after > oom_before,
        "stdout_total": out.total,
        "stderr_total": err.total,
        "leftover": leftover,
        "duration": duration,
    }
    send(header, [*out.parts(), *err.parts()])


def open_regular(path: str, flags: int, mode: int = 0) -> int:
    """Open ``path`` only if it is a regular file, and never block doing it.

    O_NONBLOCK makes opening a FIFO return at once (or fail) instead of waiting for
    a peer, and O_NOFOLLOW refuses a symlink; once fstat has shown a regular file,
    the descriptor goes back to blocking.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads, or a socket
            raise ValueError(f"{path!r} is not a regular file") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path!r} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def op_put_file(req: dict[str, Any], payload: Payload) -> None:
    mode = int(req["mode"]) & 0o777
    fd = open_regular(req["path"], os.O_WRONLY | os.O_CREAT, mode)
    try:
        os.ftruncate(fd, 0)
        while payload.left:
            data = payload.read(CHUNK)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    send({"ok": True})


def op_put_tar(req: dict[str, Any], payload: Payload) -> None:
    # The archive is the host's own pack() of the workspace: trusted. It may hold
    # absolute symlinks (a virtualenv's python) and group-writable modes, which the
    # "tar" filter would refuse or change, and the copy-back would see a change.
    with tarfile.open(fileobj=cast("IO[bytes]", payload), mode="r|") as tar:
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extractall(req["dest"], filter="fully_trusted")  # noqa: S202
        else:
            tar.extractall(req["dest"])  # noqa: S202
    payload.drain()
    send({"ok": True})


def op_get_file(req: dict[str, Any]) -> None:
    fd = open_regular(req["path"], os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        limit = int(req.get("limit", size))
        if size > limit:
            raise ValueError(f"{req['path']!r} holds {size} bytes, over the limit of {limit}")
    except BaseException:
        os.close(fd)
        raise
    send({"ok": True, "chunked": True})
    error = None
    try:
        sink = ChunkWriter()
        while sink.total < limit:
            data = os.read(fd, min(CHUNK, limit - sink.total))
            if not data:
                break
            sink.write(data)
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        os.close(fd)
    write_all(LENGTH.pack(0))
    send({"ok": error is None, "error": error})


class TooBig(Exception):
    """A copy-out would pass its byte or entry limit."""


class Budget:
    """What a copy-out may still send: bytes on the wire, and entries.

    Each entry is charged its header and the apparent size of its data (st_size, as
    tar pads it) before any of the data is read: a sparse file or a pile of hard
    links to one big file is refused without reading it.
    """

    def __init__(self, sink: ChunkWriter, limit: int, max_entries: int) -> None:
        self.sink = sink
        self.limit = limit
        self.max_entries = max_entries
        self.entries = 0

    def charge(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise TooBig(f"the workspace holds more than {self.max_entries} entries")
        header = len(info.tobuf(tar.format, tar.encoding, tar.errors))
        data = -(-info.size // TAR_BLOCK) * TAR_BLOCK if info.isreg() else 0
        if self.sink.total + header + data > self.limit:
            raise TooBig(
                f"the workspace is over the limit of {self.limit} bytes "
                f"(reached at {info.name!r}, {info.size} bytes)"
            )


def add_tree(tar: tarfile.TarFile, root: str, budget: Budget) -> None:
    """Add what is under root, depth first, without recursion (trees may be deep).

    Every process is dead by now, so nothing changes underneath. Entries the command
    made unreadable belong to this uid: they are opened up, read and restored, and the
    archive records their original modes. Hard links become plain copies (each one
    charged in full). Members are not kept: a tar of many entries stays small.
    """
    todo: list[tuple[str, str, int]] = [
        (os.path.join(root, n), n, -1) for n in sorted(os.listdir(root), reverse=True)
    ]
    while todo:
        path, arcname, restore = todo.pop()
        if restore >= 0:
            os.chmod(path, restore)
            continue
        info = tar.gettarinfo(path, arcname)
        if info is None:  # a socket: nothing to carry
            continue
        if info.islnk():
            info.type, info.linkname = tarfile.REGTYPE, ""
            info.size = os.lstat(path).st_size
        info.mtime = int(info.mtime)  # a float costs every entry a PAX header
        budget.charge(tar, info)
        if info.isreg():
            add_file(tar, path, info)
        elif info.isdir():
            tar.addfile(info)
            if info.mode & 0o700 != 0o700:
                os.chmod(path, info.mode | 0o700)
                todo.append((path, arcname, info.mode))
            for name in sorted(os.listdir(path), reverse=True):
                todo.append((os.path.join(path, name), arcname + "/" + name, -1))
        else:
            tar.addfile(info)
        tar.members = []  # type: ignore[attr-defined]  # tarfile keeps every member


def add_file(tar: tarfile.TarFile, path: str, info: tarfile.TarInfo) -> None:
    if not info.mode & 0o400:
        os.chmod(path, info.mode | 0o400)
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
            tar.addfile(info, f)
    finally:
        if not info.mode & 0o400:
            os.chmod(path, info.mode)


def op_get_tar(req: dict[str, Any]) -> None:
    sink = ChunkWriter()
    budget = Budget(sink, int(req["limit"]), int(req["max_entries"]))
    send({"ok": True, "chunked": True})
    error = None
    try:
        with tarfile.open(
            fileobj=cast("IO[bytes]", sink), mode="w|", format=tarfile.PAX_FORMAT
        ) as tar:
            add_tree(tar, req["path"], budget)
    except TooBig as exc:
        error = str(exc)
    except (OSError, tarfile.TarError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    write_all(LENGTH.pack(0))
    send({"ok": error is None, "error": error})


def handle(req: dict[str, Any]) -> None:
    op = req.get("op")
    payload = Payload(int(req.get("payload", 0)))
    try:
        if op == "ping":
            send({"ok": True, "pid": os.getpid(), "python": sys.version.split()[0]})
        elif op == "exec":
            op_exec(req)
        elif op == "put_file":
            op_put_file(req, payload)
        elif op == "put_tar":
            op_put_tar(req, payload)
        elif op == "get_file":
            op_get_file(req)
        elif op == "get_tar":
            op_get_tar(req)
        else:
            send({"ok": False, "error": f"unknown operation {op!r}"})
    except (OSError, ValueError, KeyError, tarfile.TarError) as exc:
        payload.drain()
        send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: other processes of this uid cannot open /proc/1/fd or ptrace us."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError, ImportError):
        pass


def main() -> None:
    not_dumpable()
    # Ignored, not handled: commands reset both to the default before they exec.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        while True:
            handle(receive())
    except EOFError:  # the host hung up: between requests, or during a command
        return
    finally:
        kill_all()


main()
