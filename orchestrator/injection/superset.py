"""A ``re`` pattern rewritten for RE2 so that it matches wherever the original does.

RE2 has no lookarounds, and its ``\\b``, ``\\w``, ``\\s`` and ``\\d`` are ASCII-only, so
the rewrite widens rather than translates: lookarounds are dropped, and so are word
boundaries but next to an ASCII word character (where RE2's holds wherever ``re``'s
does), and a positive ``\\w``/``\\s``/``\\d`` takes in every non-ASCII character. A
word-view pattern (see ``views``) is rewritten for the lowered text instead: a space
stands for any character that the word view turns into one.

``factors`` cuts a pattern at its wide gaps (repeats that run over words, such as
``[^\\n]{0,80}``) into pieces that are all found in any text it matches (for an
alternation, the widest piece of each alternative, as one). Many patterns in one
``RE2::Set`` stay cheap to run together that way: each wide gap after common words
multiplies the states of the set's DFA, which it builds as texts come.

The pattern is read with the standard library's own parser (``re._parser``), so the
rewrite follows exactly what ``re`` compiles.
"""

from __future__ import annotations

from collections.abc import Callable
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any, NamedTuple

_NON_ASCII = r"\x{80}-\x{10ffff}"
_SPACE = r"\s'\"`(\[{<*#\-/|>\\=" + _NON_ASCII  # what the word view turns into spaces
_WIDE = frozenset({sre.CATEGORY_WORD, sre.CATEGORY_DIGIT, sre.CATEGORY_SPACE})
CATEGORY = {  # a class's categories, as re and RE2 both write them
    sre.CATEGORY_WORD: r"\w",
    sre.CATEGORY_NOT_WORD: r"\W",
    sre.CATEGORY_DIGIT: r"\d",
    sre.CATEGORY_NOT_DIGIT: r"\D",
    sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S",
}
_AT = {
    sre.AT_BEGINNING: "(?m:^)",
    sre.AT_BEGINNING_LINE: "(?m:^)",
    sre.AT_END: "(?m:$)",
    sre.AT_END_LINE: "(?m:$)",
    sre.AT_BEGINNING_STRING: r"\A",
    sre.AT_END_STRING: r"\z",
    sre.AT_BOUNDARY: "",
    sre.AT_NON_BOUNDARY: "",
}
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None))
_WIDE_GAP = 8  # a repeat of more than this many characters that may be spaces


class _Part(NamedTuple):
    """RE2 source for a piece of a pattern. ``exact``: ``text`` matches wherever the
    piece does. Otherwise the piece is too wide to go whole into a set, and ``leaves``
    are factors found in every text it matches (all of them). ``width``: the fewest
    characters it matches (the longer, the fewer texts have it)."""

    text: str
    exact: bool
    width: int
    leaves: tuple[tuple[str, int], ...] = ()
    gap: bool = False  # a repeat: a factor can do without it at either end


def superset(pattern: str, *, word_view: bool, bounded: bool = True) -> str:
    """``pattern`` as RE2 source that matches wherever ``pattern`` does. ``bounded``
    false: a repeat of more than ``_WIDE_GAP`` is written without its upper bound. That
    is still a superset, and a far smaller DFA to search with: a counted repeat such as
    ``[^\\n]{0,150}`` is one state per count at every place it may have started, which
    the DFA builds anew for nearly every text (a search cost 6-80 µs instead of 1-5)."""
    return _Writer(word_view, False, bounded).seq(_parse(pattern)).text


def factors(pattern: str, *, word_view: bool) -> list[str]:
    """RE2 sources, none with a wide gap, that all match in every text ``pattern``
    matches: the pattern itself if it has no wide gap. ``[""]``: nothing to go by."""
    items = _parse(pattern)
    part = _Writer(word_view, True).seq(items)
    if part.exact:
        return [_joined(_trimmed([_Writer(word_view, True).item(op, av) for op, av in items]))[0]]
    return sorted({text for text, width in part.leaves if width}) or [""]


def _parse(pattern: str) -> list[tuple[Any, Any]]:
    items: list[tuple[Any, Any]] = _parser.parse(pattern, 0).data
    return items


class _Writer:
    def __init__(self, word_view: bool, loose: bool, bounded: bool = True) -> None:
        self.word_view, self.loose, self.bounded = word_view, loose, bounded

    def seq(self, items: list[tuple[Any, Any]]) -> _Part:
        """A sequence: whole, or the factors between its wide gaps."""
        parts: list[_Part] = []
        run: list[_Part] = []
        leaves: list[tuple[str, int]] = []
        for k, (op, av) in enumerate(items):
            wide = self.loose and op in _REPEATS and _wide(av)
            if op is sre.AT and av is sre.AT_BOUNDARY and _word_edge(items, k):
                part = _Part(r"\b", True, 0)
            else:
                part = _Part("", False, 0) if wide else self.item(op, av)
            parts.append(part)
            if part.exact:
                run.append(part)
                continue
            leaves += [_joined(_trimmed(run)), *part.leaves]
            run = []
        width = sum(p.width for p in parts)
        if all(p.exact for p in parts):
            return _Part("".join(p.text for p in parts), True, width)
        return _Part("", False, width, (*leaves, _joined(_trimmed(run))))

    def item(self, op: Any, av: Any) -> _Part:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
            return _Part(self.char(op, av), True, 1)
        if op is sre.AT:
            return _Part(_AT[av], True, 0)
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            return _Part("", True, 0)
        if op is sre.BRANCH:
            return _branch([self.seq(alt.data) for alt in av[1]])
        if op is sre.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if (add_flags | del_flags) & ~sre.SRE_FLAG_MULTILINE:
                raise ValueError(f"superset: flags {add_flags}/{del_flags} are not supported")
            part = self.seq(sub.data)
            return part._replace(text=f"(?:{part.text})") if part.exact else part
        if op in _REPEATS:
            return self.repeat(op, av)
        raise ValueError(f"superset: {op} is not supported")

    def repeat(self, op: Any, av: Any) -> _Part:
        low, high, sub = av
        body = self.seq(sub.data)
        if not body.exact:  # at least one of it, or maybe none
            return body if low else _Part("", False, 0)
        unbounded = high == sre.MAXREPEAT or (not self.bounded and high > _WIDE_GAP)
        bound = "" if unbounded else str(high)
        lazy = "?" if op is sre.MIN_REPEAT else ""
        return _Part(f"(?:{body.text}){{{low},{bound}}}{lazy}", True, low * body.width, gap=True)

    def char(self, op: Any, av: Any) -> str:
        if op is sre.LITERAL:
            return self.literal(av)
        if op is sre.NOT_LITERAL:
            return f"[^{_char(av)}]"
        if op is sre.ANY:
            return "."
        return self.klass(av)

    def literal(self, code: int) -> str:
        if code == 32 and self.word_view:
            return f"[{_SPACE}]"
        return _char(code)

    def klass(self, items: list[tuple[Any, Any]]) -> str:
        negated = bool(items) and items[0][0] is sre.NEGATE
        out: list[str] = []
        for op, av in items[negated:]:
            if op is sre.LITERAL:
                out.append(_char(av))
                if av == 32 and self.word_view and not negated:
                    out.append(_SPACE)
            elif op is sre.RANGE:
                out.append(f"{_char(av[0])}-{_char(av[1])}")
            elif op is sre.CATEGORY:
                out.append(CATEGORY[av])
                if av in _WIDE and not negated:
                    out.append(
                        _SPACE if av is sre.CATEGORY_SPACE and self.word_view else _NON_ASCII
                    )
            else:
                raise ValueError(f"superset: {op} in a class is not supported")
        return ("[^" if negated else "[") + "".join(out) + "]"


def _trimmed(parts: list[_Part]) -> list[_Part]:
    """``parts`` without the repeats at either end: a text that has the whole has the
    rest, and a set's DFA keeps far fewer states for a factor that does not start or
    end by skipping words."""
    start, end = 0, len(parts)
    while start < end and parts[start].gap:
        start += 1
    while end > start and parts[end - 1].gap:
        end -= 1
    return parts[start:end]


def _joined(parts: list[_Part]) -> tuple[str, int]:
    return "".join(p.text for p in parts), sum(p.width for p in parts)


def _branch(parts: list[_Part]) -> _Part:
    """Alternatives: whole if all are; else one factor, each alternative's widest."""
    width = min(p.width for p in parts)
    if all(p.exact for p in parts):
        return _Part("(?:" + "|".join(p.text for p in parts) + ")", True, width)
    best = [(p.text, p.width) if p.exact else max(p.leaves, key=lambda x: x[1]) for p in parts]
    if min(w for _, w in best) == 0:
        return _Part("", False, width)  # some alternative offers nothing to go by
    text = "(?:" + "|".join(t for t, _ in best) + ")"
    return _Part("", False, width, ((text, min(w for _, w in best)),))


def _word_edge(items: list[tuple[Any, Any]], k: int) -> bool:
    """Whether the word boundary ``items[k]`` is next to an ASCII letter, digit or
    underscore whatever matches there (the character after it, or the one before): a
    boundary ``re`` finds there, RE2's ``\\b`` finds too (the other side is no word
    character to ``re``, so none to RE2), and keeping it spares the set every ``ai``
    inside "detail" or ``run`` inside "truncate". The word view turns only non-word
    characters into spaces, so it holds on ``low`` for a word-view pattern as well."""
    after, before = _edge(items[k + 1 :], False), _edge(items[:k], True)
    return any(
        chars and all(c < 128 and (chr(c).isalnum() or c == 95) for c in chars)
        for chars in (after, before)
    )


def _edge(items: list[tuple[Any, Any]], last: bool) -> set[int] | None:
    """The characters the first (or ``last``) character a match of ``items`` has can
    be; None when that is not known (a class, a repeat that may match nothing, an
    assertion, or nothing at all)."""
    if not items:
        return None
    op, av = items[-1] if last else items[0]
    if op is sre.LITERAL:
        return {av}
    if op is sre.SUBPATTERN and not av[1] and not av[2]:
        return _edge(list(av[3].data), last)
    if op in _REPEATS and av[0] >= 1:
        return _edge(list(av[2].data), last)
    if op is not sre.BRANCH:
        return None
    out: set[int] = set()
    for alternative in av[1]:
        chars = _edge(list(alternative.data), last)
        if chars is None:
            return None
        out |= chars
    return out


def _char(code: int) -> str:
    ch = chr(code)
    return ch if ch.isalnum() and ch.isascii() else f"\\x{{{code:x}}}"


def _wide(av: Any) -> bool:
    """Whether a repeat runs over words: its body takes spaces and letters alike, and
    it may repeat more than ``_WIDE_GAP`` times."""
    _low, high, sub = av
    many = high == sre.MAXREPEAT or high > _WIDE_GAP
    return many and _can(sub.data, " ") and _can(sub.data, "a")


def _can(items: list[tuple[Any, Any]], ch: str) -> bool:
    """Whether some character in ``items`` (at any depth) can be ``ch``."""
    for op, av in items:
        if op is sre.LITERAL:
            hit = chr(av) == ch
        elif op is sre.NOT_LITERAL:
            hit = chr(av) != ch
        elif op is sre.ANY:
            hit = ch != "\n"
        elif op is sre.IN:
            hit = _in(av, ch)
        elif op is sre.BRANCH:
            hit = any(_can(alt.data, ch) for alt in av[1])
        elif op is sre.SUBPATTERN or op in _REPEATS:
            hit = _can(av[-1].data, ch)
        else:
            hit = False
        if hit:
            return True
    return False


def _in(items: list[tuple[Any, Any]], ch: str) -> bool:
    negated = bool(items) and items[0][0] is sre.NEGATE
    hit = False
    for op, av in items[negated:]:
        if op is sre.LITERAL:
            hit = hit or chr(av) == ch
        elif op is sre.RANGE:
            hit = hit or av[0] <= ord(ch) <= av[1]
        elif op is sre.CATEGORY:
            hit = hit or _CHECKS[av](ch)
    return hit != negated


_CHECKS: dict[Any, Callable[[str], bool]] = {
    sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    sre.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
    sre.CATEGORY_DIGIT: str.isdigit,
    sre.CATEGORY_NOT_DIGIT: lambda c: not c.isdigit(),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
}


def literal_starts(pattern: str, most: int = 8, shortest: int = 5) -> list[str] | None:
    """The literal strings every match of ``pattern`` starts with (one of them), at
    least ``shortest`` characters long and at most ``most`` of them; ``None``: there
    are no such."""
    starts = _starts(_parse(pattern), most, shortest)
    return sorted(set(starts)) if starts else None


def _starts(items: list[tuple[Any, Any]], most: int, shortest: int) -> list[str] | None:
    prefix = ""
    for i, (op, av) in enumerate(items):
        if op is sre.LITERAL:
            prefix += chr(av)
            continue
        if len(prefix) >= shortest:
            return [prefix]
        if op is sre.SUBPATTERN and not av[1] and not av[2]:
            alternatives = [av[3].data + items[i + 1 :]]
        elif op is sre.BRANCH:
            alternatives = [alt.data + items[i + 1 :] for alt in av[1]]
        else:
            return None
        found: list[str] = []
        for alternative in alternatives:
            more = _starts(alternative, most, shortest - len(prefix))
            if more is None or len(found) + len(more) > most:
                return None
            found += [prefix + m for m in more]
        return found
    return [prefix] if len(prefix) >= shortest else None
