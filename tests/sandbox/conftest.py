"""Fixtures of the sandbox tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.workspace import remove_tree

DEPTH = 1200  # deeper than Python's recursion limit: what recursive code cannot walk


@pytest.fixture
def deep_tree(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Makes ``DEPTH`` nested ``d`` directories under a root; returns the innermost.

    Whatever is left under ``tmp_path`` is removed afterwards without recursion:
    pytest's own clean-up of old temporary directories uses ``shutil.rmtree``, whose
    RecursionError on such a tree escapes it and fails a later session.
    """

    def make(root: Path) -> Path:
        deep = root
        root.mkdir(exist_ok=True)
        for _ in range(DEPTH):  # Path.mkdir(parents=True) would recurse
            deep = deep / "d"
            deep.mkdir()
        return deep

    yield make
    for entry in list(tmp_path.iterdir()):
        remove_tree(entry)
