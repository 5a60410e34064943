"""Moving a workspace directory into a sandbox and back.

Warm containers exist before anyone knows which workspace a step will use, so the
workspace is not a bind mount: it is a size-limited tmpfs inside the container, filled
from a tar of the host directory when the sandbox is acquired and copied back when it
is released.

The way in (``pack``) is trusted: files, directories, symlinks and hard links go in as
they are, and a manifest records what was sent (see ``manifest``).

The way back (``sync_back``) is untrusted and incremental, so that sandboxes running
in parallel on one workspace do not undo each other's work: the sandbox's tar is
extracted by our rules (``_untar``) into a fresh staging directory beside the
workspace, compared with the manifest, and only what this sandbox changed is applied
(``_apply``), under an exclusive ``flock`` on ``.<name>.lock`` beside the workspace
(``pack`` takes it shared, so it never reads a half-applied copy-back). Every failure
is a WorkspaceSyncError; each entry applied is whole, and the staging directory is
always removed.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from sandbox import _apply, _untar
from sandbox.errors import WorkspaceSyncError
from sandbox.manifest import (
    Entry,
    HashingReader,
    Kind,
    Manifest,
    compare,
    dir_entry,
    file_entry,
    link_entry,
)

_SPOOL = 8 * 1024 * 1024
# What fails while touching files: OSError mostly; the rest so nothing escapes untranslated.
_FAILURES = (OSError, RecursionError, EOFError, tarfile.TarError, ValueError)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What a copy-back applied to the host workspace.

    ``changed`` lists the relative paths written (new or changed), ``deleted`` those
    removed, and ``skipped`` what the sandbox had that was not applied, and why.
    """

    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# -- the way in ------------------------------------------------------------------


def pack(src: Path) -> tuple[IO[bytes], int, Manifest]:
    """A tar of the contents of ``src``, its size, and the manifest of what it holds.

    Symlinks stay links and hard links stay links. FIFOs, sockets and devices are not
    carried (nor recorded, so the copy-back never touches them).
    """
    if not src.is_dir():
        raise WorkspaceSyncError(f"workspace {str(src)!r} is not a directory")
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - returned open
    try:
        with (
            _locked(src, fcntl.LOCK_SH, required=False),
            tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            sent = _add_tree(tar, src)
    except _FAILURES as exc:
        spool.close()
        raise WorkspaceSyncError(f"cannot read workspace {str(src)!r}: {exc}") from exc
    size = spool.tell()
    spool.seek(0)
    return spool, size, sent


def _add_tree(tar: tarfile.TarFile, root: Path) -> Manifest:
    """Add everything under ``root``, depth first and without recursion."""
    sent: Manifest = {}
    digests: dict[tuple[int, int], bytes] = {}  # by inode: a hard link's content
    todo = [(root / name, name) for name in sorted(os.listdir(root), reverse=True)]
    while todo:
        path, rel = todo.pop()
        entry = _add_one(tar, path, rel, digests)
        tar.members = []  # type: ignore[attr-defined]  # tarfile keeps every member
        if entry is None:
            continue
        sent[rel] = entry
        if entry.kind is Kind.DIR:
            names = sorted(os.listdir(path), reverse=True)
            todo.extend((path / name, f"{rel}/{name}") for name in names)
    return sent


def _add_one(
    tar: tarfile.TarFile, path: Path, rel: str, digests: dict[tuple[int, int], bytes]
) -> Entry | None:
    info = tar.gettarinfo(str(path), rel)
    if info is None or not (info.isreg() or info.islnk() or info.isdir() or info.issym()):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)  # a float costs every entry a PAX header
    st = os.lstat(path)
    inode = (st.st_ino, st.st_dev)
    if info.isreg():
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            reader = HashingReader(f)
            tar.addfile(info, cast("IO[bytes]", reader))  # read() is all tarfile uses
        digests[inode] = reader.digest()
        return file_entry(info.mode, info.size, digests[inode])
    tar.addfile(info)
    if info.islnk():  # a second name of a file already sent
        return file_entry(info.mode, st.st_size, digests[inode])
    if info.isdir():
        return dir_entry(info.mode)
    return link_entry(info.linkname)


# -- the way back ----------------------------------------------------------------


def sync_back(stream: IO[bytes], dest: Path, sent: Mapping[str, Entry]) -> SyncReport:
    """Apply to ``dest`` what the tar holds that differs from ``sent``; say what was done.

    With an empty ``sent`` (nothing was copied in), everything is new and nothing is
    deleted. On a failure, entries applied so far stay (each whole), the rest are as
    they were, and WorkspaceSyncError says what failed.
    """
    dest = Path(os.path.realpath(dest))
    try:
        with _staging(dest) as staged:
            unpacked = _untar.extract(stream, staged, sent)
            changes = compare(sent, unpacked.got, unpacked.kept)
            with _locked(dest, fcntl.LOCK_EX, required=True):
                applied = _apply.apply(changes, staged, dest, sent, unpacked.got)
    except _FAILURES as exc:
        raise WorkspaceSyncError(f"cannot copy the workspace back to {str(dest)!r}: {exc}") from exc
    return SyncReport(applied.changed, applied.deleted, unpacked.skipped + applied.skipped)


@contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A fresh directory beside ``dest`` (same filesystem, so entries move by rename)."""
    dest.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{dest.name}.sync-", dir=dest.parent))
    try:
        yield staged
    finally:
        remove_tree(staged)


@contextmanager
def _locked(dest: Path, operation: int, *, required: bool) -> Iterator[None]:
    """Hold ``flock(operation)`` on ``.<name>.lock`` beside ``dest``.

    Not ``required`` (reading), a lock file that cannot be made means no lock.
    """
    path = dest.parent / f".{dest.name}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError:
        if required:
            raise
        fd = -1
    if fd < 0:
        yield
        return
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_tree(root: Path) -> None:
    """Remove ``root`` and everything under it, without recursion (trees may be deep).

    Directories this process cannot write to or search are opened up first.
    """
    if not os.path.lexists(root):
        return
    todo: list[tuple[Path, bool]] = [(root, False)]
    while todo:
        path, emptied = todo.pop()
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
        elif emptied:
            os.rmdir(path)
        else:
            if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
                os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
            todo.append((path, True))
            todo.extend((path / name, False) for name in os.listdir(path))
