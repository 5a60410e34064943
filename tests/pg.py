"""A throwaway PostgreSQL server for tests: ``initdb`` in a temporary directory, started
with ``pg_ctl`` on a free port of 127.0.0.1, removed at the end.

PostgreSQL refuses to run as root. As root, the server runs as the system user
``firstmate-pg`` (created with ``useradd --system`` when missing, ``nobody`` if that
fails) through ``runuser``, and owns its temporary directory; as anyone else it runs as
that user. Durability is off (``fsync``, ``synchronous_commit``, ``full_page_writes``):
the data lives for one test session.

    with postgres_server() as url:       # postgresql+psycopg://firstmate@127.0.0.1:PORT/firstmate
        other = create_database(url, "t_1")
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

SERVER_USER = "firstmate-pg"
DATABASE = "firstmate"
_ROLE = "firstmate"
_BINARIES = ("initdb", "pg_ctl", "postgres")
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "50",
    "max_wal_size": "256MB",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}
_START_TRIES = 3
_NOLOGIN = "/usr/sbin/nologin"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (or none that can start)."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Looked for on ``PATH`` (links followed), then in ``/usr/lib/postgresql/*/bin``,
    newest version first.
    """
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
        candidates.append(Path(found).parent)
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=_version_key, reverse=True)]
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in _BINARIES):
            return bindir
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) are not on PATH nor in "
        "/usr/lib/postgresql/*/bin: apt-get install postgresql"
    )


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server for the duration of the block; yield its database URL."""
    bindir = find_bindir()
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="firstmate-pg-"))
    try:
        _chown(root, user)
        data = root / "data"
        _as_user(user, [str(bindir / "initdb"), *_initdb_args(data)], cwd=root)
        port = _start(bindir, user, root, data)
        try:
            yield create_database(f"{_server_url(port)}/postgres", DATABASE)
        finally:
            _stop(bindir, user, root, data)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """Create the empty database ``name`` on the server of ``url``; return its URL."""
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return parsed.set(database=name).render_as_string(hide_password=False)


def _server_url(port: int) -> str:
    return f"postgresql+psycopg://{_ROLE}@127.0.0.1:{port}"


def _initdb_args(data: Path) -> list[str]:
    return [
        "--pgdata",
        str(data),
        "--username",
        _ROLE,
        "--auth",
        "trust",
        "--encoding",
        "UTF8",
        "--no-locale",
        "--no-sync",
        "--no-instructions",
    ]


def _start(bindir: Path, user: str, root: Path, data: Path) -> int:
    """Start the server on a free port (another one if a racing process took it)."""
    log = root / "server.log"
    for _ in range(_START_TRIES):
        port = _free_port()
        _configure(data, root, port)
        argv = [str(bindir / "pg_ctl"), "start", "--pgdata", str(data), "--log", str(log)]
        proc = _as_user(user, [*argv, "--wait", "--timeout", "60"], cwd=root, check=False)
        if proc.returncode == 0:
            return port
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else proc.stdout
    raise PostgresUnavailable(f"PostgreSQL did not start ({bindir}):\n{tail}")


def _configure(data: Path, root: Path, port: int) -> None:
    settings = {**_SETTINGS, "port": str(port), "unix_socket_directories": f"'{root}'"}
    lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
    # postgresql.auto.conf is read last, so each retry's port wins; the file stays the
    # server user's because it exists already (initdb made it).
    (data / "postgresql.auto.conf").write_text(lines)


def _stop(bindir: Path, user: str, root: Path, data: Path) -> None:
    argv = [str(bindir / "pg_ctl"), "stop", "--pgdata", str(data), "--mode", "immediate"]
    proc = _as_user(user, [*argv, "--wait", "--timeout", "30"], cwd=root, check=False)
    if proc.returncode == 0:
        return
    pid_file = data / "postmaster.pid"
    if pid_file.exists():  # pg_ctl could not stop it: kill the postmaster we started
        pid = int(pid_file.read_text().split()[0])
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str:
    """Who runs the server: ourselves, or as root an unprivileged system user."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    if not _user_exists(SERVER_USER):
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", _NOLOGIN, SERVER_USER],
            capture_output=True,
            check=False,
        )  # it may fail (no useradd, or another process made the user just now)
    return SERVER_USER if _user_exists(SERVER_USER) else "nobody"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _chown(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _as_user(
    user: str, argv: Sequence[str], *, cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        argv = [*_switch_user(user), *argv]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        command = " ".join(argv)
        raise PostgresUnavailable(f"{command} failed (exit {proc.returncode}):\n{proc.stdout}")
    return proc


def _switch_user(user: str) -> list[str]:
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        entry = pwd.getpwnam(user)
        return [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    raise PostgresUnavailable("running PostgreSQL as root needs `runuser` or `setpriv`")
