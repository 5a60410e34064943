"""Moving a workspace directory into a sandbox and back.

Warm containers exist before anyone knows which workspace a step will use, so the
workspace is not a bind mount: it is a size-limited tmpfs inside the container, filled
from a tar of the host directory when the sandbox is acquired and copied back when it
is released. The way back is untrusted (whatever ran in the sandbox wrote it), so it
is extracted by our own rules into a fresh directory, and only then swapped in:

- only regular files, directories and symlinks; no devices, fifos or hard links to
  outside; setuid/setgid/sticky bits dropped;
- no absolute names, no ``..``; symlinks are made last, and one that points outside
  the workspace is skipped;
- everything is created by this process, so it is owned by the host user.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from sandbox.errors import WorkspaceSyncError

_SPOOL = 8 * 1024 * 1024


def pack(src: Path) -> tuple[IO[bytes], int]:
    """A tar of the contents of ``src`` (symlinks kept as links), and its size."""
    if not src.is_dir():
        raise WorkspaceSyncError(f"workspace {str(src)!r} is not a directory")
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 - returned open
    try:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(src.iterdir()):
                tar.add(entry, arcname=entry.name, filter=_portable)
    except OSError as exc:
        spool.close()
        raise WorkspaceSyncError(f"cannot read workspace {str(src)!r}: {exc}") from exc
    size = spool.tell()
    spool.seek(0)
    return spool, size


def _portable(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if not (info.isreg() or info.isdir() or info.issym()):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def replace_from_tar(stream: IO[bytes], dest: Path) -> list[str]:
    """Make ``dest`` hold exactly what the tar holds; return what was skipped and why.

    On any error ``dest`` is left as it was.
    """
    with _staging(dest) as staged:
        skipped = extract(stream, staged)
        _swap_contents(staged, dest)
    return skipped


def extract(stream: IO[bytes], dest: Path) -> list[str]:
    """Extract an untrusted tar into the empty directory ``dest`` by the rules above."""
    skipped: list[str] = []
    links: list[tuple[PurePosixPath, str]] = []
    dir_modes: list[tuple[Path, int]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = _safe_name(member.name)
                if rel is None:
                    skipped.append(f"{member.name}: name outside the workspace")
                elif member.isdir():
                    path = dest / rel
                    path.mkdir(parents=True, exist_ok=True)
                    dir_modes.append((path, member.mode & 0o777))
                elif member.isreg():
                    _write_file(tar, member, dest / rel)
                elif member.issym():
                    links.append((rel, member.linkname))
                else:
                    skipped.append(f"{member.name}: not a file, directory or symlink")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise WorkspaceSyncError(f"cannot unpack the sandbox's workspace: {exc}") from exc
    skipped += [_make_link(dest, rel, target) for rel, target in links]
    for path, mode in sorted(dir_modes, key=lambda x: len(x[0].parts), reverse=True):
        path.chmod(mode)
    return [s for s in skipped if s]


def _safe_name(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or path == PurePosixPath("."):
        return None
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:
        raise tarfile.ExtractError(f"{member.name}: no data")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    os.chmod(path, member.mode & 0o777)
    os.utime(path, (member.mtime, member.mtime))


def _make_link(root: Path, rel: PurePosixPath, target: str) -> str:
    """Create one symlink if it stays inside ``root``; else say why it was skipped."""
    joined = os.path.normpath(os.path.join(str(rel.parent), target))
    if target.startswith("/") or joined == ".." or joined.startswith("../"):
        return f"{rel}: symlink to {target!r} points outside the workspace"
    path = root / rel
    real_root = os.path.realpath(root)
    parent = os.path.realpath(path.parent)
    if not (parent == real_root or parent.startswith(real_root + os.sep)):
        return f"{rel}: symlink under a linked directory"
    if path.exists() or path.is_symlink():
        return f"{rel}: symlink over an existing entry"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    resolved = os.path.realpath(path)
    if not (resolved == real_root or resolved.startswith(real_root + os.sep)):
        path.unlink()
        return f"{rel}: symlink to {target!r} resolves outside the workspace"
    return ""


@contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A fresh directory beside ``dest`` (same filesystem, so the swap is renames)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        staged = Path(tempfile.mkdtemp(prefix=f".{dest.name}.sync-", dir=dest.parent))
    except OSError:
        staged = Path(tempfile.mkdtemp(prefix="firstmate-sync-"))
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _swap_contents(staged: Path, dest: Path) -> None:
    for entry in list(dest.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in list(staged.iterdir()):
        shutil.move(str(entry), str(dest / entry.name))
