"""Extracting the sandbox's untrusted tar into a fresh staging directory, by our rules.

- only regular files, directories and symlinks; no devices, FIFOs or hard links;
  setuid, setgid and sticky bits dropped; at most ``MAX_ENTRIES`` entries;
- no absolute names and no ``..``; nothing is ever created through a symlink: every
  parent on the way is checked to be a real directory;
- symlinks are made last, each one only if its target stays inside lexically; then,
  with every link in place, each is resolved for real, and those that resolve outside
  or nowhere (dangling, a loop) are removed, again and again until a pass removes
  none. One at a time at creation is not enough: ``realpath`` takes components that
  do not exist yet literally, so a later link (``b -> .``) can redirect an earlier one
  (``a -> b/b/../../../etc/passwd``);
- directories keep the permissions they are made with here (so they can be filled
  and moved); the modes the sandbox gave them are recorded, and applied on the host.

Everything is created by this process, so it is owned by the host user.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sandbox.errors import WorkspaceSyncError
from sandbox.manifest import (
    MAX_ENTRIES,
    Entry,
    Kind,
    Manifest,
    dir_entry,
    file_entry,
    link_entry,
)

_IMPLICIT_DIR_MODE = 0o755
_COPY_BUFFER = 1 << 20


@dataclass(slots=True)
class Unpacked:
    """What the staging directory holds, and what the sandbox had that it does not."""

    got: Manifest = field(default_factory=dict)
    # Paths the sandbox has but that were not carried: the host's entry stays as it is.
    kept: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Extraction:
    dest: str
    sent: Mapping[str, Entry]
    out: Unpacked = field(default_factory=Unpacked)
    links: list[tuple[str, str]] = field(default_factory=list)
    dirs: set[str] = field(default_factory=lambda: {""})  # "" is the root

    def refuse(self, key: str, why: str, target: str | None = None) -> None:
        """Leave the host's entry at ``key`` as it is; say why, unless nothing changed."""
        self.out.kept.add(key)
        if target is None or self.sent.get(key) != link_entry(target):
            self.out.skipped.append(f"{key}: {why}")

    def path(self, key: str) -> str:
        return os.path.join(self.dest, key)


def extract(stream: IO[bytes], dest: Path, sent: Mapping[str, Entry] | None = None) -> Unpacked:
    """Extract an untrusted tar into the empty directory ``dest`` by the rules above.

    ``sent`` is what the host copied in: a link refused here but exactly as it was
    sent (a virtualenv's absolute link) stays on the host without a note.
    """
    job = _Extraction(str(dest), sent or {})
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_ENTRIES:
                    raise WorkspaceSyncError(
                        f"the sandbox's workspace holds more than {MAX_ENTRIES} entries"
                    )
                _take(job, tar, member)
                tar.members = []  # type: ignore[attr-defined]  # tarfile keeps every member
        for key, target in job.links:
            _make_link(job, key, target)
        _drop_bad_links(job)
    except (tarfile.TarError, OSError, EOFError, RecursionError) as exc:
        raise WorkspaceSyncError(f"cannot unpack the sandbox's workspace: {exc}") from exc
    return job.out


def _take(job: _Extraction, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    key = _safe_name(member.name)
    if key is None:
        job.out.skipped.append(f"{member.name}: name outside the workspace")
        return
    if not (member.isdir() or member.isreg() or member.issym()):
        job.refuse(key, "not a file, directory or symlink")
    elif not _real_dir(job, posixpath.dirname(key)):
        job.refuse(key, "its parent is not a directory")
    elif member.issym():
        job.links.append((key, member.linkname))
    elif member.isdir():
        if key in job.dirs or _make_dir(job, key):
            job.out.got[key] = dir_entry(member.mode)
        else:
            job.refuse(key, "directory over an existing entry")
    else:
        digest = _write_file(tar, member, job.path(key))
        if digest is None:
            job.refuse(key, "file over an existing entry")
        else:
            job.out.got[key] = file_entry(member.mode, member.size, digest)


def _safe_name(name: str) -> str | None:
    """``name`` as a clean relative path ("a/b"), or None if it is absolute or climbs."""
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in {"", "."}]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _real_dir(job: _Extraction, key: str) -> bool:
    """Whether ``key`` is a directory made here (made now if missing), iteratively.

    Links are made only after every file and directory, so a path made here has no
    link on the way; anything else that exists is a file.
    """
    missing: list[str] = []
    while key not in job.dirs:
        missing.append(key)
        key = posixpath.dirname(key)
    for sub in reversed(missing):
        if not _make_dir(job, sub):
            return False
        job.out.got[sub] = dir_entry(_IMPLICIT_DIR_MODE)
    return True


def _make_dir(job: _Extraction, key: str) -> bool:
    try:
        os.mkdir(job.path(key), 0o700)
    except FileExistsError:
        return False
    job.dirs.add(key)
    return True


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> bytes | None:
    """Write one member's data to a new file; its sha256, or None if ``path`` exists."""
    source = tar.extractfile(member)
    if source is None:
        raise tarfile.ExtractError(f"{member.name}: no data")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return None
    digest = hashlib.sha256()
    try:
        while data := source.read(_COPY_BUFFER):
            digest.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        os.fchmod(fd, member.mode & 0o777)
        os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)
    return digest.digest()


def _make_link(job: _Extraction, key: str, target: str) -> None:
    """Create one symlink if it stays inside lexically; else leave the host's entry."""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(key), target))
    if target.startswith("/") or joined == ".." or joined.startswith("../"):
        job.refuse(key, f"symlink to {target!r} points outside the workspace", target)
    elif os.path.lexists(job.path(key)):
        job.refuse(key, "symlink over an existing entry", target)
    else:
        os.symlink(target, job.path(key))
        job.out.got[key] = link_entry(target)


def _drop_bad_links(job: _Extraction) -> None:
    """Remove links that really resolve outside the root, or nowhere, until none does."""
    real_root = os.path.realpath(job.dest)
    links = [key for key, entry in job.out.got.items() if entry.kind is Kind.LINK]
    while True:
        bad = [key for key in links if not _resolves_inside(job.path(key), real_root)]
        if not bad:
            return
        for key in bad:
            os.unlink(job.path(key))
            target = job.out.got.pop(key).target
            why = f"symlink to {target!r} resolves outside the workspace, or to nothing"
            job.refuse(key, why, target)
        dropped = set(bad)
        links = [key for key in links if key not in dropped]


def _resolves_inside(path: str, real_root: str) -> bool:
    if not os.path.exists(path):  # dangling, or a loop
        return False
    resolved = os.path.realpath(path)
    return resolved == real_root or resolved.startswith(real_root + os.sep)
