"""What a workspace holds, entry by entry, and what changed between two such records.

At copy-in the host records what it sent (a *manifest*: for each relative path its
kind, permission bits, size, and the sha256 of a file's content or a link's target).
At copy-back the sandbox's tar is extracted into a staging directory and recorded the
same way. ``compare`` decides from the two records alone what the copy-back applies:

- entries that are new, or whose kind, mode, content or target changed;
- deletions of entries that were sent and are gone in the sandbox.

Nothing else is touched on the host: entries the sandbox left as they were (even if
another sandbox changed them meanwhile), entries the sandbox had but that could not
be carried back safely (``kept``), and whatever was never sent (FIFOs, sockets).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO

# More entries than this in a copy-back is refused: each costs memory and time.
MAX_ENTRIES = 500_000
# Only these permission bits travel; setuid, setgid and sticky never do.
MODE_BITS = 0o777


class Kind(StrEnum):
    """The kinds of entry a workspace carries."""

    FILE = "file"
    DIR = "dir"
    LINK = "link"


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a workspace: a file's sha256 (raw, 32 bytes), or a link's target.

    Kept small: a copy-back of half a million entries holds one per entry.
    """

    kind: Kind
    mode: int = 0
    size: int = 0
    sha256: bytes = b""
    target: str = ""


def file_entry(mode: int, size: int, sha256: bytes) -> Entry:
    return Entry(Kind.FILE, mode & MODE_BITS, size, sha256)


def dir_entry(mode: int) -> Entry:
    return Entry(Kind.DIR, mode & MODE_BITS)


def link_entry(target: str) -> Entry:
    return Entry(Kind.LINK, target=target)


# Relative POSIX path ("pkg/__init__.py") -> what it holds.
Manifest = dict[str, Entry]


@dataclass(frozen=True, slots=True)
class Changes:
    """What a copy-back applies: ``changed`` parents first, ``deleted`` children first."""

    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def compare(sent: Mapping[str, Entry], got: Mapping[str, Entry], kept: Collection[str]) -> Changes:
    """What changed from ``sent`` to ``got``; paths in ``kept`` are never deleted."""
    changed = [rel for rel, entry in got.items() if sent.get(rel) != entry]
    deleted = [rel for rel in sent if rel not in got and rel not in kept]
    return Changes(
        changed=sorted(changed, key=_tree_order),
        deleted=sorted(deleted, key=_tree_order, reverse=True),
    )


def _tree_order(rel: str) -> str:
    """Sorts as the list of components would ("a" < "a/b" < "a-b"), without the lists.

    With the separator as the lowest character, a directory's entries follow it at
    once, before any sibling whose name merely starts with the directory's name.
    """
    return rel.replace("/", "\0")


class HashingReader:
    """Wraps a binary file: what is read through it is hashed (sha256) on the way."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        return data

    def digest(self) -> bytes:
        return self._hash.digest()
