"""The workspace: a run's working copy of a repository, and what changed in it.

    <run_dir>/base/        pristine snapshot of the repository, taken once
    <run_dir>/workspace/   the copy the steps work in (copied into each sandbox and back)

``prepare`` makes both. It is idempotent: a tree that exists is kept, so a retried job
never wipes what earlier steps did. Each tree is copied into a dot-named staging
directory and renamed into place, so ``base`` and ``workspace`` are whole or absent.

``diff`` and ``changed_files`` compare the two trees the way git does: regular files and
symlinks only (empty directories do not count), any ``.git`` ignored, the executable bit
as the only mode that matters (``100644`` / ``100755``, symlinks ``120000``). The patch is
in git's format, so ``git apply`` (or ``patch -p1``, text changes only) can replay it.
"""

from __future__ import annotations

import difflib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ArtifactError, ConfigError

WORKSPACE_DIR = "workspace"
BASE_DIR = "base"
GIT_DIR = ".git"

_FILE, _EXEC, _LINK = "100644", "100755", "120000"
_BINARY_PROBE = 8 * 1024
_Inode = tuple[int, int]


def prepare(run_dir: Path, repo: Path | None) -> Path:
    """Create ``run_dir/base`` and ``run_dir/workspace`` from ``repo``; return the workspace.

    With ``repo`` None both are empty. Otherwise both are copies of the directory ``repo``
    (``.git`` included, symlinks kept as symlinks, permission bits kept; sockets, fifos
    and devices skipped). When the run directory lies inside ``repo`` (the default data
    dir ``./.firstmate`` with ``--repo .``), the top entry of ``repo`` holding it is left
    out so the data dir never copies itself into its own workspace.
    """
    source = _check_repo(repo, run_dir)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    base, workspace = run_dir / BASE_DIR, run_dir / WORKSPACE_DIR
    if not base.is_dir():
        _materialize(source, base, _data_dir_inode(source, run_dir))
    if not workspace.is_dir():
        _materialize(base, workspace, None)
    return workspace


def diff(base: Path, current: Path) -> str:
    """A git-style unified diff from ``base`` to ``current``; ``""`` when nothing differs.

    One block per changed path, sorted: ``diff --git a/x b/x``, mode lines when the file
    is new, deleted or changed mode, then ``--- a/x`` / ``+++ b/x`` (``/dev/null`` for an
    added or removed file) and hunks with three lines of context. Binary files (a NUL in
    the first 8 KiB, or not UTF-8) say ``Binary files a/x and b/x differ``; a symlink's
    content is its target; a file that became a symlink is a deletion and an addition.
    """
    blocks = [_patch(name, old, new) for name, old, new in _changes(base, current)]
    return "".join(line for block in blocks for line in block)


def changed_files(base: Path, current: Path) -> list[str]:
    """Relative POSIX paths added, removed or modified between the trees, sorted."""
    return [name for name, _, _ in _changes(base, current)]


# --- prepare ---------------------------------------------------------------------------


def _check_repo(repo: Path | None, run_dir: Path) -> Path | None:
    if repo is None:
        return None
    if not repo.exists():
        raise ConfigError(
            f"repository {str(repo)!r} does not exist: pass the path of a directory (--repo DIR)"
        )
    if not repo.is_dir():
        raise ConfigError(
            f"repository {str(repo)!r} is not a directory: pass the path of a directory "
            "(--repo DIR)"
        )
    if repo.resolve() == run_dir.resolve():
        raise ConfigError(
            f"repository {str(repo)!r} is the run directory itself: pass the repository's path"
        )
    return repo


def _data_dir_inode(repo: Path | None, run_dir: Path) -> _Inode | None:
    """The top entry of ``repo`` that holds ``run_dir``, if any, to leave out of the copy."""
    if repo is None:
        return None
    real_repo, real_run = repo.resolve(), run_dir.resolve()
    if real_repo not in real_run.parents:
        return None
    top = real_repo / real_run.relative_to(real_repo).parts[0]
    st = top.stat()
    return (st.st_dev, st.st_ino)


def _materialize(source: Path | None, dest: Path, skip: _Inode | None) -> None:
    """Make ``dest`` a copy of ``source`` (or empty): copy beside it, then rename."""
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        if source is not None:
            _copy_contents(source, staging, skip)
        os.rename(staging, dest)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if dest.is_dir():  # another process prepared it first
            return
        where = exc.filename or source
        raise ArtifactError(
            f"cannot copy {str(where)!r} into {str(dest)!r}: {exc.strerror}; check that the "
            "repository is readable and the data directory writable"
        ) from exc


def _copy_contents(src: Path, dst: Path, skip: _Inode | None) -> None:
    with os.scandir(src) as entries:
        for entry in entries:
            _copy_entry(entry, dst / entry.name, skip)


def _copy_entry(entry: os.DirEntry[str], dest: Path, skip: _Inode | None) -> None:
    st = entry.stat(follow_symlinks=False)
    mode = stat.S_IMODE(st.st_mode) & 0o777  # no setuid/setgid/sticky in a workspace
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(entry.path), dest)
    elif stat.S_ISDIR(st.st_mode):
        if (st.st_dev, st.st_ino) == skip:
            return
        os.mkdir(dest, 0o700)
        _copy_contents(Path(entry.path), dest, skip)
        os.chmod(dest, mode)  # last: a read-only directory must first be filled
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(entry.path, dest, follow_symlinks=False)
        os.chmod(dest, mode)
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    # Sockets, fifos and devices are not part of a working copy.


# --- diff ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Blob:
    """One path's side of a comparison: its git mode and its content (a link's target)."""

    mode: str
    data: bytes


_Change = tuple[str, _Blob | None, _Blob | None]


def _changes(base: Path, current: Path) -> list[_Change]:
    old, new = _scan(base), _scan(current)
    changes: list[_Change] = []
    for name in sorted(old.keys() | new.keys()):
        a = _blob(*old[name]) if name in old else None
        b = _blob(*new[name]) if name in new else None
        if a != b:
            changes.append((name, a, b))
    return changes


def _scan(root: Path) -> dict[str, tuple[str, str]]:
    """Every file and symlink under ``root`` but ``.git``: relative name → (path, mode)."""
    if not root.is_dir():
        raise ArtifactError(
            f"cannot compare {str(root)!r}: it is not a directory; prepare the run's "
            "workspace first"
        )
    found: dict[str, tuple[str, str]] = {}
    _scan_into(str(root), "", found)
    return found


def _scan_into(directory: str, prefix: str, found: dict[str, tuple[str, str]]) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name == GIT_DIR:
                continue
            name = prefix + entry.name
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                _scan_into(entry.path, name + "/", found)
            elif stat.S_ISLNK(mode):
                found[name] = (entry.path, _LINK)
            elif stat.S_ISREG(mode):
                found[name] = (entry.path, _EXEC if mode & stat.S_IXUSR else _FILE)


def _blob(path: str, mode: str) -> _Blob:
    if mode == _LINK:
        return _Blob(mode, os.fsencode(os.readlink(path)))
    return _Blob(mode, Path(path).read_bytes())


def _patch(name: str, old: _Blob | None, new: _Blob | None) -> list[str]:
    """The lines of one path's block (two blocks when it changed between file and link)."""
    if old is not None and new is not None and (old.mode == _LINK) != (new.mode == _LINK):
        return _patch(name, old, None) + _patch(name, None, new)
    head = [f"diff --git a/{name} b/{name}\n"]
    if old is None and new is not None:
        head.append(f"new file mode {new.mode}\n")
    elif new is None and old is not None:
        head.append(f"deleted file mode {old.mode}\n")
    elif old is not None and new is not None and old.mode != new.mode:
        head += [f"old mode {old.mode}\n", f"new mode {new.mode}\n"]
    return head + _body(name, old, new)


def _body(name: str, old: _Blob | None, new: _Blob | None) -> list[str]:
    a = old.data if old is not None else b""
    b = new.data if new is not None else b""
    if a == b:  # a mode change, or an empty file added or removed
        return []
    from_name = f"a/{name}" if old is not None else "/dev/null"
    to_name = f"b/{name}" if new is not None else "/dev/null"
    if _is_binary(a) or _is_binary(b):
        return [f"Binary files {from_name} and {to_name} differ\n"]
    tab = "\t" if " " in name else ""  # as git does, so a name with spaces parses back
    hunks = difflib.unified_diff(
        _lines(a.decode()), _lines(b.decode()), from_name + tab, to_name + tab
    )
    out: list[str] = []
    for line in hunks:
        if line.endswith("\n"):
            out.append(line)
        else:
            out += [line + "\n", "\\ No newline at end of file\n"]
    return out


def _is_binary(data: bytes) -> bool:
    if b"\x00" in data[:_BINARY_PROBE]:
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


def _lines(text: str) -> list[str]:
    """Split on ``\\n`` only (``str.splitlines`` would also split on ``\\r``, ``\\f``…)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines
