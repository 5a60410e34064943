"""Word patterns read as chains of words, to find where they may match in one pass.

A word pattern (``engine.word_pattern``) runs on the word view, where a match starts
at a space and its literal words start tokens (a token is a run of characters that
are not whitespace). ``chains`` reads a compiled pattern's top-level alternatives
into ``Chain``\\ s: the words every match of the alternative has, in order (each one
a set of ``Cond``: a token that is that word, or starts with it; or, for letters read
where the token's start is not known, after a character gap or a class, a token that
has them inside), how many tokens at most lie from one such word's token to the next
(``gaps``; a word inside a token may be in the token of the word before), and how many
tokens at most a match spans before its first word (``lead``). A chain is a superset:
wherever the alternative matches, some tokens satisfy its chain; nothing is concluded
from a lookaround, a word boundary or a character class.

``Chains.scan`` runs every chain over a text's tokens at once: a chain is found when
each word's token follows the one before within its gap, which the Python reference
checks keeping, per word, the latest token the chain up to it ended at (and the one
before, for a later word the same token takes when it may not be in the same token).
The compiled scanner (``_wordseq``) lists the tokens each cond took instead, and works
out only the chains whose rarest word (``_rarity``) and every other word some token
took, merging those lists word by word. For each signal
found it gives which top-level alternatives had a chain found, and where a match may
start: before each token a found chain's first word was at (when the chain was found
ending within its span after it), and up to ``lead`` tokens earlier. The engine then
runs the pattern, narrowed to those alternatives, only there, so a text with no chain
runs no pattern at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any, NamedTuple

from orchestrator.injection.superset import CATEGORY as _CATEGORY

try:
    from orchestrator.injection import _wordseq
except ImportError:  # not compiled (see hatch_build.py): ``_scan`` does the same
    _wordseq = None  # type: ignore[assignment]

COMPILED = _wordseq is not None  # whether ``Chains.scan`` runs in C

FAR = 1 << 20  # a gap with no bound, in tokens: at or past it, a gap is never compared
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None))
_SMALL_CLASS = 6  # a class of at most this many literal characters is read as a branch
_WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()]
# The pieces read here; a pattern with any other (an atomic group, a backreference) is
# not read as chains at all: its signal stays with the RE2 set.
_KNOWN = frozenset(
    {sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN, sre.BRANCH, sre.SUBPATTERN, sre.AT}
    | {sre.ASSERT, sre.ASSERT_NOT, *(r for r in _REPEATS if r is not None)}
)
_WAYS = 8  # the most ways through a pattern's branches followed one by one
_LONGEST_PREFIX = 63  # the C scanner's bound: a longer prefix is cut (fewer tokens ruled out)
# The fewest letters and digits a word inside a token is read with: "in" or "es" are
# inside most tokens, and would only cost the scan (a word with other characters,
# "_" or ":", is read whatever its length).
_INSIDE = 3


class Cond(NamedTuple):
    """A token that is ``text`` (``exact``), that starts with it, or (``inside``) that
    has it anywhere in it."""

    text: str
    exact: bool
    inside: bool = False


class Chain(NamedTuple):
    """The words an alternative's every match has, in order; ``gaps[j]``: the most
    tokens from word ``j - 1``'s to word ``j``'s (``gaps[0]`` is unused); ``lead``: the
    most tokens from the match's first to word 0's; ``alternative``: which top-level
    alternative of the pattern it reads."""

    words: tuple[frozenset[Cond], ...]
    gaps: tuple[int, ...]
    lead: int
    alternative: int = 0


@dataclass
class _State:
    """Where a walk through a pattern is: ``mode`` "start" (at a token's first
    character, ``word`` the literal read of it so far, or None once it is not known)
    or "gap" (anywhere). ``words``/``gaps`` are the chain so far; ``since``: the most
    tokens crossed since the last word's token began (or the match began)."""

    mode: str = "start"
    word: str | None = ""
    inner: str = ""  # the characters read since, where the token's start is not known
    words: list[frozenset[Cond]] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    since: int = 0


def chains(pattern: re.Pattern[str]) -> list[Chain] | None:
    """The chains of a word pattern, each tagged with the top-level alternative it
    reads (see ``alternatives``): one per way through the alternative's branches, as
    long as there are few (then a branch's alternatives are read as one word, any of
    their first ones); None when some way has no word to go by (or the pattern is not
    a word pattern)."""
    pieces = alternatives(pattern.pattern)
    if pieces is None or not _known(_parser.parse(pattern.pattern, 0).data):
        return None
    out: list[Chain] = []
    for n, piece in enumerate(pieces):
        items = list(_parser.parse(f" (?:{piece})", pattern.flags & ~re.UNICODE).data)
        for state in _walk(items[1:], [_State()], None):
            _close(state, exact=False)
            if not state.words:
                return None
            words, gaps = tuple(state.words), (0, *state.gaps[1:])
            chain = Chain(words, gaps, state.gaps[0], n)
            if chain not in out:
                out.append(chain)
    return out


def _known(items: Sequence[tuple[Any, Any]]) -> bool:
    """Whether every piece of a parsed pattern, at any depth, is one read here."""
    for op, av in items:
        if op not in _KNOWN:
            return False
        if op is sre.BRANCH and not all(_known(a.data) for a in av[1]):
            return False
        if op is sre.SUBPATTERN and not _known(av[3].data):
            return False
        if op in _REPEATS and not _known(av[2].data):
            return False
        if op in (sre.ASSERT, sre.ASSERT_NOT) and not _known(av[1].data):
            return False
    return True


def alternatives(source: str) -> list[str] | None:
    """The top-level alternatives of a word pattern's source (``" (?:a|b)"``: ``a``
    and ``b``), as written; None if it is not a word pattern."""
    if not source.startswith(" (?:") or not source.endswith(")"):
        return None
    body = source[4:-1]
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            i += 1
        elif ch == "[":
            i = _class_end(body, i)
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return None  # the first group closes before the end
        elif ch == "|" and depth == 0:
            pieces.append(body[start:i])
            start = i + 1
        i += 1
    return [*pieces, body[start:]] if depth == 0 else None


def _class_end(source: str, at: int) -> int:
    """The index of the ``]`` that ends the class opened at ``at``."""
    i = at + 1
    if i < len(source) and source[i] == "^":
        i += 1
    if i < len(source) and source[i] == "]":
        i += 1  # a ``]`` first is itself
    while i < len(source) and source[i] != "]":
        i += 2 if source[i] == "\\" else 1
    return i


def _walk(items: Sequence[tuple[Any, Any]], states: list[_State], follow: Any) -> list[_State]:
    """Where ``states`` are after ``items``; ``follow``: the item after them, if known."""
    for i, item in enumerate(items):
        after = items[i + 1] if i + 1 < len(items) else follow
        states = _step(item, states, after)
    return states


def _step(item: tuple[Any, Any], states: list[_State], follow: Any) -> list[_State]:
    op, av = item
    if op is sre.SUBPATTERN and not av[1] and not av[2]:
        return _walk(list(av[3].data), states, follow)
    alternatives = _alternatives(item)
    if alternatives is not None:
        # The one-word alternatives together are one word (any of them), losing
        # nothing; each other one is a way of its own, while there are few ways.
        words = [a for a in alternatives if _one_word(a, follow)]
        rest = [a for a in alternatives if a not in words]
        ways = [[_branch(words, _copy(s), follow)] for s in states if words]
        ways += [_walk(a, [_copy(s)], follow) for s in states for a in rest]
        if sum(map(len, ways)) <= _WAYS:
            return [s for w in ways for s in w]
        return [_branch(alternatives, s, follow) for s in states]
    return [_one(item, s) for s in states]


def _alternatives(item: tuple[Any, Any]) -> list[list[tuple[Any, Any]]] | None:
    """The alternatives ``item`` is, when it is a branch (an optional piece, a small
    class of characters), else None."""
    op, av = item
    if op is sre.BRANCH:
        return [list(a.data) for a in av[1]]
    if op is sre.IN and _small_class(av) and not _can_space(item):
        return [[(sre.LITERAL, c)] for _, c in av]
    if op in _REPEATS and (av[0], av[1]) == (0, 1) and not _whitespace(list(av[2].data)):
        return [list(av[2].data), []]
    return None


def _one_word(alternative: list[tuple[Any, Any]], follow: Any) -> bool:
    """Whether an alternative is one word, with nothing before or after it."""
    for end in _walk(alternative, [_State()], follow):
        _close(end, exact=_space_must(follow))
        if len(end.words) != 1 or end.gaps[0] or end.since:
            return False
    return True


def _copy(state: _State) -> _State:
    return replace(state, words=list(state.words), gaps=list(state.gaps))


def _one(item: tuple[Any, Any], state: _State) -> _State:
    op, av = item
    if op is sre.LITERAL and av == 32:
        return _space(state, must=True)
    if op is sre.LITERAL and not chr(av).isspace():
        if state.mode == "start" and state.word is not None:
            state.word += chr(av)
        else:
            state.inner += chr(av)
        return state
    if op is sre.AT or op in (sre.ASSERT, sre.ASSERT_NOT):
        return state  # zero-width: nothing to go by, nothing to lose
    if op in _REPEATS:
        return _repeat(item, state)
    return _opaque(item, state)


def _repeat(item: tuple[Any, Any], state: _State) -> _State:
    """A repeat: whitespace; or as many tokens crossed as its body crosses (from
    inside a token, the most) times its most repeats, ending at a token's start when
    the body does and must run."""
    low, high, sub = item[1]
    body = list(sub.data)
    if _whitespace(body):
        return _space(state, must=low > 0)
    probes = _walk(body, [_State(word=None)], None)
    crossed = max(sum(p.gaps) + p.since for p in probes)
    if not crossed:
        return _opaque(item, state)
    at_start = state.mode == "start" and state.word == ""
    _close(state, exact=False)
    state.since = min(FAR, state.since + (FAR if high == sre.MAXREPEAT else high * crossed))
    ends_at_start = all(p.mode == "start" and p.word == "" for p in probes)
    if ends_at_start and (low > 0 or at_start):
        state.mode, state.word = "start", ""
    else:
        state.mode, state.word = "gap", None
    return state


def _space(state: _State, *, must: bool) -> _State:
    """A run of whitespace (``must``: at least one character of it)."""
    if state.mode == "start" and state.word == "":
        return state  # more of the same run
    _close(state, exact=must)
    state.since += 1
    state.mode, state.word = ("start", "") if must else ("gap", None)
    return state


def _close(state: _State, *, exact: bool) -> None:
    """The word being read ends here: the token is that word (``exact``: whitespace
    follows), or starts with it; or, where the token's start is not known, it has the
    characters read since in it (when they say enough: see ``_INSIDE``)."""
    if state.mode == "start" and state.word:
        word = state.word if exact else state.word[:_LONGEST_PREFIX]
        state.words.append(frozenset({Cond(word, exact)}))
        state.gaps.append(state.since)
        state.since = 0
    elif len(state.inner) >= _INSIDE or (state.inner and not state.inner.isalnum()):
        state.words.append(frozenset({Cond(state.inner[:_LONGEST_PREFIX], False, True)}))
        state.gaps.append(state.since)
        state.since = 0
    state.inner = ""
    if state.mode == "start":
        state.word = None


def _opaque(item: tuple[Any, Any], state: _State) -> _State:
    """Anything not read as words: it ends the word being read; if it can take
    whitespace, it may cross as many tokens as it has characters."""
    _close(state, exact=False)
    if _can_space(item):
        state.since = min(FAR, state.since + _width(item))
        state.mode, state.word = "gap", None
    return state


def _branch(alternatives: list[list[tuple[Any, Any]]], state: _State, follow: Any) -> _State:
    """Alternatives from one state, too many ways to follow each: their first words
    as one word (any of them), and their last words as another when each has two or
    more; then the most tokens any of them crosses after it."""
    ends, at_start = [], []
    for alternative in alternatives:
        start = replace(state, words=[], gaps=[], since=0)
        for end in _walk(alternative, [start], follow):
            at_start.append(end.mode == "start" and end.word == "")  # before it is closed
            _close(end, exact=_space_must(follow))
            ends.append(end)
    if all(len(e.words) > 1 for e in ends):
        # Every alternative has two words or more: any of their first words, then any
        # of their last ones, as far after it as the farthest.
        state.words.append(frozenset().union(*(e.words[0] for e in ends)))
        state.gaps.append(state.since + max(e.gaps[0] for e in ends))
        state.words.append(frozenset().union(*(e.words[-1] for e in ends)))
        state.gaps.append(max(min(FAR, sum(e.gaps[1:])) for e in ends))
        state.since = max(e.since for e in ends)
    elif all(e.words for e in ends):
        word = frozenset().union(*(e.words[0] for e in ends))
        state.words.append(word)
        state.gaps.append(state.since + max(e.gaps[0] for e in ends))
        state.since = max(min(FAR, sum(e.gaps[1:]) + e.since) for e in ends)
    else:
        _close(state, exact=False)
        state.since = min(FAR, state.since + max(sum(e.gaps) + e.since for e in ends))
    # At a token's start if every alternative ends at one, else anywhere.
    state.mode, state.word = ("start", "") if all(at_start) else ("gap", None)
    state.inner = ""
    return state


def _space_must(item: Any) -> bool:
    """Whether ``item`` is whitespace that has at least one character."""
    if item is None:
        return False
    op, av = item
    if op is sre.LITERAL:
        return bool(chr(av).isspace())
    return op in _REPEATS and av[0] > 0 and _whitespace(list(av[2].data))


def _whitespace(items: list[tuple[Any, Any]]) -> bool:
    """Whether ``items`` is one whitespace character (a space, or ``\\s``)."""
    if len(items) != 1:
        return False
    op, av = items[0]
    if op is sre.LITERAL:
        return bool(chr(av).isspace())
    return op is sre.IN and av == [(sre.CATEGORY, sre.CATEGORY_SPACE)]


def _small_class(av: list[tuple[Any, Any]]) -> bool:
    return len(av) <= _SMALL_CLASS and all(op is sre.LITERAL for op, _ in av)


def _width(item: tuple[Any, Any]) -> int:
    """The most characters ``item`` matches (``FAR`` when unbounded)."""
    _low, high = _parser.SubPattern(_parser.State(), [item]).getwidth()
    return min(FAR, int(high))


def _can_space(item: tuple[Any, Any]) -> bool:
    """Whether some whitespace character can be part of a match of ``item``."""
    probe = re.compile(_source(item))
    return any(probe.search(ch) for ch in _WHITESPACE)


def _source(item: tuple[Any, Any]) -> str:
    """A pattern that matches one character wherever ``item`` could take it."""
    return "|".join(_chars(item)) or "(?!)"


def _chars(item: tuple[Any, Any]) -> list[str]:
    op, av = item
    if op is sre.LITERAL:
        return [re.escape(chr(av))]
    if op is sre.NOT_LITERAL:
        return [f"[^{re.escape(chr(av))}]"]
    if op is sre.ANY:
        return ["."]
    if op is sre.IN:
        return [_class(av)]
    if op is sre.BRANCH:
        return [c for alt in av[1] for sub in alt.data for c in _chars(sub)]
    if op is sre.SUBPATTERN:
        return [c for sub in av[3].data for c in _chars(sub)]
    if op in _REPEATS:
        return [c for sub in av[2].data for c in _chars(sub)]
    return []


def _class(av: list[tuple[Any, Any]]) -> str:
    parts = []
    negated = bool(av) and av[0][0] is sre.NEGATE
    for op, a in av[negated:]:
        if op is sre.LITERAL:
            parts.append(re.escape(chr(a)))
        elif op is sre.RANGE:
            parts.append(f"{re.escape(chr(a[0]))}-{re.escape(chr(a[1]))}")
        elif op is sre.CATEGORY:
            parts.append(_CATEGORY[a])
    return ("[^" if negated else "[") + "".join(parts) + "]"


_TOKEN = re.compile(r"\S+")


class Chains:
    """Every signal's chains, to be run over a text's tokens at once."""

    def __init__(self, signals: dict[int, list[Chain]]) -> None:
        self.signals = signals
        self._flat = [(i, c) for i, cs in signals.items() for c in cs]
        # Per chain, per word: whether it may take the token the word before took (a
        # word inside a token: "summariz*" then "ing", "api_key" for "_" then "key").
        self._same = [tuple(any(c.inside for c in w) for w in c.words) for _, c in self._flat]
        self._conds: dict[Cond, list[tuple[int, int]]] = {}
        for k, (_, chain) in enumerate(self._flat):
            for j, word in enumerate(chain.words):
                for cond in word:
                    self._conds.setdefault(cond, []).append((k, j))
        by_kind: list[dict[str, list[tuple[int, int]]]] = [{}, {}, {}]
        for cond, items in self._conds.items():
            by_kind[_kind(cond)][cond.text] = items
        self._prefix, self._exact, self._inside = by_kind
        self._longest = max((len(t) for t in self._prefix), default=0)
        self._longest_inside = max((len(t) for t in self._inside), default=0)
        self._compiled = None
        if _wordseq is not None:
            self._compiled = _wordseq.Scanner(*self._tree())

    def _tree(self) -> tuple[list[tuple[str, int]], list[Any], list[Any]]:
        """What the compiled scanner is made of: the conds, the chains' words as a tree
        (chains that begin with the same words, gaps and all, share them: a word's
        progress depends only on the words up to it) and the chains on it, each with
        its anchor (its rarest word: only a text that has it works the chain out)."""
        conds = {cond: c for c, cond in enumerate(self._conds)}
        nodes: list[tuple[int, int, bool, list[int]]] = []
        ids: dict[tuple[int, frozenset[Cond], int], int] = {}
        on_tree = []
        for (signal, chain), same in zip(self._flat, self._same, strict=True):
            parent = -1
            path = []
            for j, word in enumerate(chain.words):
                key = (parent, word, chain.gaps[j] if j else 0)
                if key not in ids:
                    ids[key] = len(nodes)
                    nodes.append((parent, key[2], same[j], sorted(conds[c] for c in word)))
                parent = ids[key]
                path.append(parent)
            anchor = path[max(range(len(path)), key=lambda j: _rarity(chain.words[j]))]
            span = min(FAR, sum(chain.gaps[1:]))
            lead = min(FAR, chain.lead)
            on_tree.append((signal, parent, path[0], span, lead, chain.alternative, anchor))
        return [(c.text, _kind(c)) for c in conds], nodes, on_tree

    @property
    def compiled(self) -> bool:
        """Whether texts are scanned by the compiled core (else in Python, slower)."""
        return self._compiled is not None

    @property
    def finder(self) -> Callable[[str], list[tuple[int, int, list[int]]]]:
        """``found`` itself: the compiled scanner's ``scan`` when it is built (so that a
        caller in C makes no Python frame)."""
        return self._compiled.scan if self._compiled is not None else self.found

    def scan(self, norm: str) -> dict[int, tuple[int, list[int]]]:
        """Signal -> which of its top-level alternatives have a chain found (bit
        ``n`` for alternative ``n``; alternatives past the 63rd all share bit 63), and
        the places (sorted) where it may match in the word view ``norm``."""
        return {i: (mask, places) for i, mask, places in self.found(norm)}

    def found(self, norm: str) -> list[tuple[int, int, list[int]]]:
        """``scan`` as a list of ``(signal, alternatives, places)``, in signal order (as
        the compiled scanner gives it)."""
        if self._compiled is not None:
            return self._compiled.scan(norm)
        return [(i, mask, places) for i, (mask, places) in self._scan(norm).items()]

    def _scan(self, norm: str) -> dict[int, tuple[int, list[int]]]:
        """``scan`` in Python: the reference for the compiled one."""
        tokens = [(m.start(), m.group()) for m in _TOKEN.finditer(norm)]
        # Per chain and word: the latest token the chain up to it ended at, and the
        # one before (one token can take a word and the word before it: "log*", "logs").
        latest = [[-1] * len(c.words) for _, c in self._flat]
        previous = [[-1] * len(c.words) for _, c in self._flat]
        firsts: list[list[int]] = [[] for _ in self._flat]
        ends: dict[int, list[int]] = {}
        for t, (_, token) in enumerate(tokens):
            # A chain's words in order, so a word inside this token sees the one
            # before it taken here.
            for k, j in sorted(set(self._items(token)), key=lambda item: item[1]):
                chain = self._flat[k][1]
                if latest[k][j] == t:
                    continue  # taken already
                if j == 0:
                    firsts[k].append(t)
                else:
                    before = latest[k][j - 1]
                    last = before if before < t or self._same[k][j] else previous[k][j - 1]
                    if last < 0 or (chain.gaps[j] < FAR and t - last > chain.gaps[j]):
                        continue
                previous[k][j], latest[k][j] = latest[k][j], t
                if j == len(chain.words) - 1:
                    ends.setdefault(k, []).append(t)
        places: dict[int, set[int]] = {}
        masks: dict[int, int] = {}
        for k, done in ends.items():
            signal, chain = self._flat[k]
            masks[signal] = masks.get(signal, 0) | 1 << min(chain.alternative, 63)
            out = places.setdefault(signal, set())
            span = _bounded(sum(chain.gaps[1:]))
            lead = _bounded(chain.lead)
            for t in firsts[k]:
                if not any(t <= e <= t + span for e in done):
                    continue  # no chain found ends close enough after this first word
                for u in range(max(0, t - lead), t + 1):
                    out.update(_run_before(norm, tokens[u][0]))
        return {i: (masks[i], sorted(p)) for i, p in sorted(places.items()) if p}

    def _items(self, token: str) -> list[tuple[int, int]]:
        out = list(self._exact.get(token, ()))
        for n in range(1, min(len(token), self._longest) + 1):
            out += self._prefix.get(token[:n], ())
        for at in range(len(token)):
            for n in range(1, min(len(token) - at, self._longest_inside) + 1):
                out += self._inside.get(token[at : at + n], ())
        return out


def _rarity(word: frozenset[Cond]) -> int:
    """How seldom a token takes ``word``, as its commonest cond's text says: a longer
    text is rarer, a whole token rarer than a prefix, a prefix than a part inside."""
    return min(len(c.text) + (1 if c.exact else -2 if c.inside else 0) for c in word)


def _kind(cond: Cond) -> int:
    """A cond's kind, as the compiled scanner numbers them."""
    return 2 if cond.inside else int(cond.exact)


def _bounded(tokens: int) -> int:
    """A count of tokens, or one past any text's when it is ``FAR`` or more (no bound)."""
    return tokens if tokens < FAR else 1 << 62


def _run_before(norm: str, start: int) -> range:
    """The places of the whitespace right before the token at ``start``."""
    at = start
    while at > 0 and norm[at - 1].isspace():
        at -= 1
    return range(at, start)
