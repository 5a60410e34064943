"""Applying what a sandbox changed to the host workspace, one entry at a time.

Runs under the workspace's exclusive lock, once the sandbox's tar has been extracted
into a staging directory beside the workspace (same filesystem, so moves are renames):

- deletions first, children before parents: a file or link only while the host still
  has one of that kind there; a directory only when it is empty (what it still holds
  was never seen by this sandbox: another sandbox's, or a FIFO never sent);
- then new and changed entries, parents before children, each moved in with
  ``os.replace``, so each one is whole, old or new; a new directory the host does not
  have is moved in whole;
- nothing is written through a symlink on the host: every parent on the way must be
  a real directory (a missing one is made again);
- directories this process cannot write to are opened up while it works, then given
  back their modes (or the sandbox's new ones); the walk and every removal are
  iterative, so deep trees cost no recursion;
- when links were applied, a link anywhere in the workspace that now resolves outside
  it and did not before (a chain made of two sandboxes' links) is removed.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.manifest import Changes, Entry, Kind


@dataclass(slots=True)
class Applied:
    """What was applied to the host, and what was not and why."""

    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def apply(
    changes: Changes,
    staged: Path,
    dest: Path,
    sent: Mapping[str, Entry],
    got: Mapping[str, Entry],
) -> Applied:
    """Apply ``changes`` from ``staged`` to ``dest``; the caller holds the lock."""
    job = _Applier(staged, dest, sent, got)
    links = any(got[rel].kind is Kind.LINK for rel in changes.changed)
    before = escaping_links(dest) if links else set()
    try:
        for rel in changes.deleted:
            job.delete(rel)
        for rel in changes.changed:
            job.put(rel)
    finally:  # also after a failure: what was applied must not point outside
        try:
            if links:
                job.drop_new_escapes(before)
        finally:
            job.set_modes()
    return job.done


class _Applier:
    def __init__(
        self, staged: Path, dest: Path, sent: Mapping[str, Entry], got: Mapping[str, Entry]
    ) -> None:
        self.staged = staged
        self.dest = dest
        self.sent = sent
        self.got = got
        self.done = Applied()
        self.verified: set[str] = {""}  # host directories known to be real ones
        self.moved_root: str | None = None  # the new directory last moved in whole
        self.modes: dict[Path, int] = {}  # directories' final modes
        self.opened: dict[Path, int] = {}  # directories opened up, and their modes before

    # -- deleting ----------------------------------------------------------------

    def delete(self, rel: str) -> None:
        parent = self.host_dir(posixpath.dirname(rel), create=False)
        if parent is None:
            return
        path = parent / posixpath.basename(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        kind = self.sent[rel].kind
        if _kind(st.st_mode) is not kind:  # replaced meanwhile: not what was sent
            return
        self.writable(parent)
        if kind is Kind.DIR:
            if not self.remove_dir(path, rel):
                self.done.skipped.append(
                    f"{rel}: directory kept, it holds entries this sandbox did not have"
                )
                return
        else:
            os.unlink(path)
        self.done.deleted.append(rel)

    def remove_dir(self, path: Path, rel: str) -> bool:
        """Remove an empty directory; False if it is not empty."""
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno in {errno.ENOTEMPTY, errno.EEXIST}:
                return False
            raise
        self.verified.discard(rel)
        self.opened.pop(path, None)
        self.modes.pop(path, None)
        return True

    # -- putting -----------------------------------------------------------------

    def put(self, rel: str) -> None:
        entry = self.got[rel]
        if self.moved_root is not None and rel.startswith(self.moved_root + "/"):
            if entry.kind is Kind.DIR:  # came with its new parent, mode still to set
                self.modes[self.dest / rel] = entry.mode
            self.done.changed.append(rel)
            return
        parent = self.host_dir(posixpath.dirname(rel), create=True)
        if parent is None:
            self.done.skipped.append(f"{rel}: not applied, a parent is not a directory here")
            return
        path = parent / posixpath.basename(rel)
        self.writable(parent)
        put = self.put_dir if entry.kind is Kind.DIR else self.put_other
        if put(rel, path):
            self.done.changed.append(rel)

    def put_dir(self, rel: str, path: Path) -> bool:
        st = _lstat(path)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            os.unlink(path)  # a file or link becomes a directory
        if st is None or not stat.S_ISDIR(st.st_mode):
            sent = self.sent.get(rel)
            if sent is not None and sent.kind is Kind.DIR:
                os.mkdir(path, 0o700)  # removed meanwhile: only what changed goes in
            else:
                os.rename(self.staged / rel, path)
                self.moved_root = rel
        self.modes[path] = self.got[rel].mode
        self.verified.add(rel)
        return True

    def put_other(self, rel: str, path: Path) -> bool:
        st = _lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode) and not self.remove_dir(path, rel):
            self.done.skipped.append(
                f"{rel}: not applied, the directory here holds entries this sandbox did not have"
            )
            return False
        os.replace(self.staged / rel, path)
        return True

    # -- directories on the way ----------------------------------------------------

    def host_dir(self, rel: str, *, create: bool) -> Path | None:
        """``dest/rel`` if it is a real directory all the way down (made if ``create``)."""
        missing: list[str] = []
        walk = rel
        while walk not in self.verified:
            missing.append(walk)
            walk = posixpath.dirname(walk)
        for sub in reversed(missing):
            path = self.dest / sub
            st = _lstat(path)
            if st is None and create:
                self.writable(path.parent)
                os.mkdir(path, 0o700)
                entry = self.got.get(sub)
                self.modes[path] = entry.mode if entry and entry.kind is Kind.DIR else 0o755
                self.done.changed.append(sub)
            elif st is None or not stat.S_ISDIR(st.st_mode):
                return None
            self.verified.add(sub)
        return self.dest / rel if rel else self.dest

    def writable(self, path: Path) -> None:
        """Open up a directory this process cannot write to; its mode comes back later."""
        if path in self.opened or os.access(path, os.W_OK | os.X_OK):
            return
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        os.chmod(path, mode | 0o700)
        self.opened[path] = mode

    def set_modes(self) -> None:
        """Final modes, deepest first: a closed parent must not lock out its children."""
        final = {**self.opened, **self.modes}
        for path in sorted(final, key=lambda p: len(p.parts), reverse=True):
            with suppress(FileNotFoundError):
                os.chmod(path, final[path])

    # -- links -------------------------------------------------------------------

    def drop_new_escapes(self, before: set[str]) -> None:
        for rel in sorted(escaping_links(self.dest) - before):
            parent = self.dest / posixpath.dirname(rel)
            self.writable(parent)
            os.unlink(self.dest / rel)
            with suppress(ValueError):
                self.done.changed.remove(rel)
            self.done.skipped.append(f"{rel}: symlink removed, it now resolves outside")


def escaping_links(root: Path) -> set[str]:
    """Every symlink under ``root`` that resolves outside it (unreadable parts skipped)."""
    real_root = os.path.realpath(root)
    found: set[str] = set()
    todo = [""]
    while todo:
        rel = todo.pop()
        try:
            with os.scandir(root / rel) as entries:
                listed = list(entries)
        except OSError:
            continue
        for entry in listed:
            sub = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                resolved = os.path.realpath(entry.path)
                if not (resolved == real_root or resolved.startswith(real_root + os.sep)):
                    found.add(sub)
            elif entry.is_dir(follow_symlinks=False):
                todo.append(sub)
    return found


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _kind(mode: int) -> Kind | None:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISDIR(mode):
        return Kind.DIR
    if stat.S_ISLNK(mode):
        return Kind.LINK
    return None
