"""The signal table compiled, and matched on a text's views.

One pass over the word view's tokens (``wordseq``) says which word signals may match
and where they may start; one RE2 pass over the lowered text (``prefilter``) says the
same of the raw signals. Only those are run with ``re``, and only there, so a benign
text usually runs no ``re`` pattern at all, however many signals there are. The loops
around those ``re`` calls run in the compiled core (``_engine.c``) when it is built;
``match_in_python`` is the reference it is held to.
"""

from __future__ import annotations

import functools
import re
from operator import itemgetter
from typing import NamedTuple

from orchestrator.injection.prefilter import Prefilter, Scan
from orchestrator.injection.superset import factors, literal_starts, superset
from orchestrator.injection.table import Spec, Table
from orchestrator.injection.views import Views
from orchestrator.injection.wordseq import COMPILED, Chains, alternatives, chains

try:
    from orchestrator.injection import _engine
except ImportError:  # not compiled (see hatch_build.py): ``match`` runs in Python
    _engine = None  # type: ignore[assignment]

Found = dict[str, tuple[float, str]]  # reason -> (weight, reason quoting the words)

_QUOTE = 60
_START = itemgetter(0)
_NARROWINGS = 4096  # the most sets of alternatives found kept (a list of patterns each)
_MENTION = re.compile(
    r"(?:match\w*|detect\w*|regex|pattern|phrase|strings?|such as|like|e\.g\.|example|flag\w*"
    r"|block\w*|contain\w*|includ\w*|quot\w*|mention\w*|cite\w*|called|named|says?|saying"
    r"|words?|text|sentence|input|payload|tests?|catch\w*|means?|injection|attack|assert\w*"
    r"|refus\w*|reject\w*|handl\w*|check\w*|ensur\w*|verif\w*|den(?:y|ies)|classif\w*|label\w*)\W*$"
)
_MENTION_REACH = 8  # the most characters a mention has before its last word ("such ")
_BACKWARDS = re.compile(r"\W*\w*")  # non-word characters, then a word, read backwards
_BACK_WINDOW = 64
# A word signal's words said not to be done ("do not ignore the rules", "never reveal
# the key", "não ignore as regras", "nie ignoruj instrukcji") ask for the opposite of
# what the signal reads; "why not ignore …" ("por que não", "perché non", "почему бы
# не" …) still asks, and a negation at the end of a line says nothing of the next one.
# A negation after the verb (German "ignoriere nicht", Dutch "negeer … niet") is the
# signals' own business. The pattern is searched only after one of ``_NEGATION_TAILS``,
# the ends of every negation it takes (the last character alone let half the words
# through, and the search cost 5-10 µs a text).
_NEGATED = re.compile(
    r"(?<!\bwhy )(?<!\bpor que )(?<!\bporque )(?<!\bpor qué )(?<!\bperché )(?<!\bperche )"
    r"(?<!\bpourquoi )(?<!\bczemu )(?<!\bdlaczego )(?<!\bпочему )(?<!\bбы )"
    r"(?:(?:\bnot|\bnever|n['’]t|\bdont|\bcannot"  # en
    r"|\bnão|\bnao|\bnunca|\bjamais|\bjamás|\bjamas|\bno|\bnon"  # pt, es, it
    r"|\bne pas|\bne jamais|\bne plus|\bnie)"  # fr, pl
    r"(?:[^\S\n\r]+(?:ever|mais|más|mas))?[^\S\n\r]*\S"
    r"|\bhe[^\S\n\r]+[а-яё])\Z"  # ru: the views read "не", all look-alikes, as "he"
)
_NEGATION_TAILS = (
    *("not", "never", "n't", "n’t", "dont"),  # en ("cannot": "not")
    *("não", "nao", "nunca", "no", "non"),  # pt, es, it
    *("pas", "plus", "nie", "he"),  # fr, pl, ru ("не" is read as "he")
    *("ever", "mais", "más", "mas"),  # "never ever", "nunca mais"; "jamais", "jamás", "jamas"
)
_NEGATED_REACH = 24  # the most characters before a place the negation is read in
# Gaps, put in after the spaces are made elastic: one word, or up to N words.
_GAPS = {
    "<w>": r"[^\s.!?;]+",
    "<g2>": r"(?:[^\s.!?;]+\s+){0,2}?",
    "<g3>": r"(?:[^\s.!?;]+\s+){0,3}?",
    "<g5>": r"(?:[^\s.!?;]+\s+){0,5}?",
}


class Signal(NamedTuple):
    """One compiled signal: ``pattern`` runs on the word view, or (``raw``) on ``low``;
    every match starts with one of ``starts``, when there are few such strings."""

    weight: float
    why: str
    raw: bool
    pattern: re.Pattern[str]
    starts: tuple[str, ...] | None


class Index(NamedTuple):
    """The compiled table: the word signals' chains, and the RE2 prefilter over the
    rest (one pattern per signal, then ``extra`` patterns, whose indexes follow the
    signals'; a chained signal is not in its set)."""

    signals: tuple[Signal, ...]
    prefilter: Prefilter
    chains: Chains
    alternatives: dict[int, list[str]]  # a chained signal's top-level ones, as written
    pieces: dict[tuple[int, int], re.Pattern[str]]  # (signal, alternative), compiled alone
    narrowed: dict[tuple[int, int], list[re.Pattern[str]]]  # (signal, alternatives found)
    matcher: _engine.Matcher | None  # ``match`` in the compiled core, when it is built


def word_pattern(source: str, macros: dict[str, str]) -> str:
    """A word pattern as ``re`` source: macros put in, spaces elastic, gaps put in."""
    for name, macro in macros.items():
        source = source.replace(name, macro)
    source = source.replace(" ?", "\0").replace(" ", " +").replace("\0", " *")
    source = source.replace("'", " *")
    for name, gap in _GAPS.items():
        source = source.replace(name, gap)
    return " (?:" + source + ")"


def _signal(spec: Spec, table: Table) -> Signal:
    if spec.raw:
        pattern = re.compile(spec.pattern, re.MULTILINE)
    else:
        pattern = re.compile(word_pattern(spec.pattern, table.macros))
    starts = literal_starts(pattern.pattern)
    why = table.reasons[spec.key]
    return Signal(spec.weight, why, spec.raw, pattern, tuple(starts) if starts else None)


def build(table: Table, extra: tuple[str, ...] = (), *, chained: bool = COMPILED) -> Index:
    """Compile ``table``, and its prefilter (with the ``extra`` RE2 patterns). The word
    signals are found by their chains (``chained``: by default when the scanner is
    compiled; in Python it is slower than RE2, which then finds them as it does the
    raw ones)."""
    signals = tuple(_signal(spec, table) for spec in table.specs)
    read = {i: chains(s.pattern) for i, s in enumerate(signals) if chained and not s.raw}
    chained_signals = {i: c for i, c in read.items() if c}
    whole = [superset(s.pattern.pattern, word_view=not s.raw, bounded=False) for s in signals]
    parts = [
        [] if i in chained_signals else factors(s.pattern.pattern, word_view=not s.raw)
        for i, s in enumerate(signals)
    ]
    prefilter = Prefilter([*whole, *extra], [*parts, *([e] for e in extra)])
    split = {i: alternatives(signals[i].pattern.pattern) or [] for i in chained_signals}
    pieces = {
        (i, k): re.compile(f" (?:{alternative})")
        for i, alternatives_of_i in split.items()
        for k, alternative in enumerate(alternatives_of_i)
    }
    found = Chains(chained_signals)
    index = Index(signals, prefilter, found, split, pieces, {}, None)
    if _engine is None:
        return index
    narrowing = functools.partial(_narrowed, index)  # the same dicts as the index returned
    matcher = _engine.Matcher(
        signals,
        found.finder,
        index.narrowed,
        narrowing,
        _MENTION,
        _NEGATED,
        _QUOTE,
        _MENTION_REACH,
        _NEGATED_REACH,
        _NEGATION_TAILS,
    )
    return index._replace(matcher=matcher)


def match(v: Views, index: Index, scan: Scan) -> Found:
    """The signals that match in ``v`` (``scan``: the prefilter's answer for ``v.low``):
    reason -> (weight, reason quoting the words). In the compiled core when it is built
    (the same loops: ``match_in_python`` is the reference)."""
    if index.matcher is not None:
        return index.matcher.match(v.low, v.norm, scan)
    return match_in_python(v, index, scan)


def match_in_python(v: Views, index: Index, scan: Scan) -> Found:
    """``match`` in Python."""
    hits: list[tuple[int, str, Signal]] = []
    for i in scan.candidates:
        if i >= len(index.signals):
            break
        signal = index.signals[i]
        if (m := _first(signal, i, v, scan)) is not None:
            hits.append((m.start(), m.group(), signal))
    for i, alternatives_found, places in index.chains.found(v.norm):
        patterns = _narrowed(index, i, alternatives_found)
        if (m := _first_at(patterns, v, places)) is not None:
            hits.append((m.start(), m.group(), index.signals[i]))
    hits.sort(key=_START)
    found: Found = {}
    for start, _words, signal in hits:
        _found(found, signal.weight, signal.why, v.low[start : start + len(_words)])
    return found


def _first(signal: Signal, i: int, v: Views, scan: Scan) -> re.Match[str] | None:
    """The first match of ``signal`` in ``v``: tried where one of its literal starts
    stands, if it has those (``str.find`` is cheap), else where RE2 says it may be."""
    text = v.low if signal.raw else v.norm
    if signal.starts is not None:
        for at in sorted(_places(text, signal.starts)):
            if (m := _match(signal, v, text, at)) is not None:
                return m
        return None
    at = scan.next_start(i, 0)
    while at >= 0:
        if (m := _match(signal, v, text, at)) is not None:
            return m
        at = scan.next_start(i, at + 1)
    return None


def _narrowed(index: Index, i: int, found: int) -> list[re.Pattern[str]]:
    """``_narrowing``, kept (up to ``_NARROWINGS`` of them, then started again)."""
    narrowed = index.narrowed.get((i, found))
    if narrowed is None:
        if len(index.narrowed) >= _NARROWINGS:
            index.narrowed.clear()
        narrowed = index.narrowed[(i, found)] = _narrowing(index, i, found)
    return narrowed


def _narrowing(index: Index, i: int, found: int) -> list[re.Pattern[str]]:
    """Word signal ``i``'s pattern as the top-level alternatives whose chains were
    ``found`` (bit n: alternative n; 63: any later one), in their order, each compiled
    alone (at build: compiling them when first tried cost ≈ 0.2 ms each, in the middle
    of a screen, for as long as a worker ran into new ones): the others match nowhere
    in the text, so at any place the first of these that matches there matches the
    words the whole pattern does, and fewer are tried. The whole pattern when every one
    was found. (Compiling a pattern per set of alternatives found cost a compile every
    few hundred texts, and kept one per set, without bound.)"""
    pieces = index.alternatives.get(i) or []
    every = (1 << min(len(pieces), 64)) - 1  # a bit per alternative (none: no pieces)
    if found & every == every:
        return [index.signals[i].pattern]
    patterns = []
    while found:
        n = (found & -found).bit_length() - 1
        found &= found - 1
        for k in range(63, len(pieces)) if n == 63 else range(n, min(n + 1, len(pieces))):
            patterns.append(index.pieces[(i, k)])
    return patterns or [index.signals[i].pattern]


def _first_at(patterns: list[re.Pattern[str]], v: Views, places: list[int]) -> re.Match[str] | None:
    """The first match of a word signal (as ``patterns``, the first of them that matches
    at a place) at one of ``places`` (in order)."""
    norm = v.norm
    for at in places:
        for pattern in patterns:
            if (m := pattern.match(norm, at)) is not None:
                if not _aside(v.low, at):
                    return m
                break
    return None


def _match(signal: Signal, v: Views, text: str, at: int) -> re.Match[str] | None:
    m = signal.pattern.match(text, at)
    return m if m is not None and (signal.raw or not _aside(v.low, at)) else None


def _places(text: str, starts: tuple[str, ...]) -> set[int]:
    places = set()
    for start in starts:
        at = text.find(start)
        while at >= 0:
            places.add(at)
            at = text.find(start, at + 1)
    return places


def _aside(low: str, at: int) -> bool:
    """Whether the words at ``at`` are quoted as an example, or said not to be done."""
    return _quoted(low, at) or _negated(low, at)


def _negated(low: str, at: int) -> bool:
    """Whether the words at ``at`` (a word signal's match starts with the spaces before
    its first word) follow a negation ("do not", "never", "don't") on the same line; the
    pattern reads up to the first letter of the first word, and is searched only after
    one of ``_NEGATION_TAILS``."""
    end, last = at, at
    while end < len(low) and low[end].isspace():
        end += 1
    while last > 0 and low[last - 1].isspace():
        last -= 1
    if last == 0 or not low.endswith(_NEGATION_TAILS, 0, last):
        return False
    return _NEGATED.search(low, max(0, at - _NEGATED_REACH), end + 1) is not None


def _quoted(low: str, at: int) -> bool:
    """Whether the words at ``at`` are quoted as an example ("matches 'ignore …'")."""
    return low[at] in "'\"`" and _MENTION.search(low, _last_word(low, at), at) is not None


def _last_word(low: str, at: int) -> int:
    """Where a ``_MENTION`` ending at ``at`` can start at the earliest: a little before
    the last word before it (the mention is that word's end, after the non-word
    characters before ``at``; "such as" and "e.g." reach a few characters further
    back). Searching from there, not from 0, costs a few characters instead of the
    text's length (a search of the whole text took 20-60 µs). The word is read
    backwards by ``re``, in the reversed characters just before ``at`` (a loop in
    Python cost ≈ 15 opcodes a character), and by that loop only when those are all
    in it."""
    near = max(0, at - _BACK_WINDOW)
    back = _BACKWARDS.match(low[near:at][::-1])  # always a match, maybe an empty one
    start = at - (back.end() if back is not None else 0)
    if start == near and near > 0:  # the runs may go on before the window
        start = _runs_back(low, at)
    return max(0, start - _MENTION_REACH)


def _runs_back(low: str, at: int) -> int:
    """Where the non-word characters before ``at``, and the word before them, start."""
    start = at
    while start > 0 and not _word_char(low[start - 1]):
        start -= 1
    while start > 0 and _word_char(low[start - 1]):
        start -= 1
    return start


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"  # what ``\w`` takes in a ``str`` pattern


def _found(found: Found, weight: float, why: str, words: str) -> None:
    if why not in found or found[why][0] < weight:
        words = " ".join(words.split())
        words = words if len(words) <= _QUOTE else words[:_QUOTE] + "…"
        found[why] = (weight, f'{why} ("{words}")')
