"""One pass over a text that says which of many patterns may match in it, and where.

The patterns are RE2 syntax (``superset`` writes them from ``re`` ones). Each comes
with factors that all match wherever it does (itself, when it has no wide gap); the
factors go into one ``RE2::Set``, whose DFA reads the text once however many there
are, and a pattern is a candidate when all its factors are found. The candidates are
then searched one by one, whole, to say where they may start (``engine`` writes them
with their wide repeats unbounded, which keeps each one's DFA small: see ``superset``).

RE2 (``google-re2``) is the one outside dependency of screening, and this module is its
only user: ``Prefilter`` is the seam, used by ``orchestrator.injection`` and
``orchestrator.pii``. Should the DFA run out of memory on some text, a pattern that
matches every text goes missing from the answer, and every pattern is reported then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from typing import NamedTuple, Protocol

import re2  # type: ignore[import-untyped]
from re2 import _re2

try:
    from orchestrator.injection import _engine
except ImportError:  # not compiled (see hatch_build.py): ``scan`` runs in Python
    _engine = None  # type: ignore[assignment]

_MAX_MEM = 64 << 20
_SPACE_MARK = "'\\\"`("  # in the class a word-view space becomes (see ``superset``)
_UNANCHORED = re2._Anchor.UNANCHORED


class _Set(Protocol):
    def Match(self, text: bytes) -> list[int]: ...


class _Regex(Protocol):
    def Match(
        self, anchor: object, text: bytes, pos: int, endpos: int
    ) -> list[tuple[int, int]]: ...


class Scan(NamedTuple):
    """What the prefilter says about one text (``utf8``, ``ascii`` or not): the
    ``candidates`` (pattern indexes, in order; some may not match after all) and, for
    each, where it may match. A tuple, which the compiled ``pick`` makes without a
    Python frame."""

    utf8: bytes
    ascii: bool
    candidates: list[int]
    regexes: list[_Regex]

    def next_start(self, index: int, pos: int) -> int:
        """Where pattern ``index`` may next match at or after ``pos`` (a character
        offset); -1: nowhere."""
        text = self.utf8
        if not self.ascii:
            pos = _re2.CharLenToBytes(text, 0, pos)
        if pos > len(text):
            return -1
        start = self.regexes[index].Match(_UNANCHORED, text, pos, len(text))[0][0]
        if start < 0 or self.ascii:
            return int(start)
        return int(_re2.BytesToCharLen(text, 0, start))


class Prefilter:
    """The patterns (RE2 syntax) that may match a text, and where. ``factors[i]``: RE2
    patterns that all match in every text ``patterns[i]`` matches (see
    ``superset.factors``); those are what the set is made of. A pattern with no
    factors is left out of the set (never a candidate)."""

    def __init__(self, patterns: Sequence[str], factors: Sequence[Sequence[str]]) -> None:
        options = re2.Options()
        options.max_mem = _MAX_MEM
        ids: dict[str, int] = {}
        self._needs = [frozenset(ids.setdefault(f, len(ids)) for f in fs) for fs in factors]
        # A pattern with no factors is not in the set: never a candidate (its user finds
        # its candidates some other way, and may still ask ``next_start``). One with one
        # factor is a candidate wherever that is found; one with more, when the first of
        # them is, is checked for the others.
        alone: list[list[int]] = [[] for _ in ids]
        self._with_more: dict[int, list[int]] = {}
        for i, needs in enumerate(self._needs):
            if len(needs) == 1:
                alone[min(needs)].append(i)
            elif needs:
                self._with_more.setdefault(min(needs), []).append(i)
        # Two sets, the word-view factors apart: one DFA over both would have to hold
        # every combination of their states, and would take far longer to warm up. Per
        # set, by its match ids: the factors, and the patterns each is alone in (the
        # last id is the set's ``\z``, which is neither).
        groups: list[list[int]] = [[], []]
        for factor, i in ids.items():
            groups[_SPACE_MARK in factor].append(i)
        texts = list(ids)
        self._sets = [(_compiled([texts[i] for i in g], options), [*g, -1]) for g in groups if g]
        self._alone = [*alone, []]  # by factor, and last (-1) the ``\z`` each set ends with
        self._regexes: list[_Regex] = [_re2.RE2(p.encode(), options) for p in patterns]
        # ``scan`` itself: in the compiled core when it is built (the same steps)
        self.pick: Callable[[str], Scan] = self.scan
        if _engine is not None:
            self.pick = self._picker([compiled.Match for compiled, _ in self._sets]).pick

    def _picker(self, matches: list[Callable[[bytes], list[int]]]) -> _engine.Picker:
        """``scan`` in the compiled core, with each set's ``Match``."""
        factors = range(len(self._alone) - 1)
        return _engine.Picker(
            matches,
            [members for _, members in self._sets],
            self._alone[:-1],
            [self._with_more.get(f, []) for f in factors],
            [sorted(needs) for needs in self._needs],
            Scan,
            self._regexes,
        )

    def scan(self, text: str) -> Scan:
        """Which patterns may match ``text`` (in Python: ``pick`` is the same, compiled
        when the core is built)."""
        utf8 = text.encode()
        found: list[int] = []  # the factors (and -1 for each set's ``\z``)
        for compiled, members in self._sets:
            here: Sequence[int] = compiled.Match(utf8)
            if len(members) - 1 not in here:  # the DFA gave up on this text
                here = range(len(members))
            found += map(members.__getitem__, here)
        candidates = list(chain.from_iterable(map(self._alone.__getitem__, found)))
        if not self._with_more.keys().isdisjoint(found):
            have = set(found)
            for factor in have.intersection(self._with_more):
                candidates += [i for i in self._with_more[factor] if self._needs[i] <= have]
        candidates.sort()
        return Scan(utf8, text.isascii(), candidates, self._regexes)


def _compiled(patterns: list[str], options: object) -> _Set:
    """An ``RE2::Set`` of ``patterns`` and, last, one that matches every text."""
    compiled = _re2.Set(_UNANCHORED, options)
    for pattern in [*patterns, r"\z"]:
        if compiled.Add(pattern.encode()) < 0:
            raise ValueError(f"RE2 cannot read the pattern {pattern!r}")
    if not compiled.Compile():  # matching an uncompiled set crashes the process
        raise ValueError(f"RE2 cannot compile {len(patterns)} patterns in {_MAX_MEM} bytes")
    return compiled  # type: ignore[no-any-return]


class Finder:
    """Every match of one RE2 pattern in a text, left to right, without overlaps: for a
    pattern that is cheap for a DFA and costly for ``re`` (a long character-class run)."""

    def __init__(self, pattern: str) -> None:
        self._regex: _Regex = _re2.RE2(pattern.encode(), re2.Options())

    def findall(self, text: str) -> list[str]:
        """The matches in ``text``."""
        utf8 = text.encode()
        out: list[str] = []
        pos = 0
        while pos <= len(utf8):
            start, end = self._regex.Match(_UNANCHORED, utf8, pos, len(utf8))[0]
            if start < 0:
                break
            out.append(utf8[start:end].decode("utf-8", "replace"))
            pos = end + (end == start)
        return out
