"""Credentials: private keys, passwords in URLs, provider API keys (each family has a
fixed prefix), and values assigned to secret-looking keys (``password=…``,
``DB_PASS: "…"``, ``"api_key": "…"``, "the password is …", ``mysql -p…``).

Every family but the private key and the URL query starts at a fixed string (a
prefix such as ``sk-``, a key word such as ``password``): one pass finds all those
strings (``Needles``, in C when it is compiled), and each family's pattern is tried
only where one of its strings stands, not searched for through the whole text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set

try:
    from orchestrator import _needles
except ImportError:  # not compiled (see hatch_build.py): ``_where`` does the same
    _needles = None  # type: ignore[assignment]

Span = tuple[str, int, int, int]  # kind, start, end, rank (lower wins a tie)

_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
_URL_USERINFO = re.compile(r"://[^\s:/@?#'\"<>]*:([^\s@/?#'\"<>]+)@")
_URL_QUERY = re.compile(r"[?&;](?:password|passwd|pwd)=([^&\s#;'\"]+)", re.IGNORECASE)
# (the fixed prefixes a match starts with, pattern): each token family has one or a few,
# and its pattern is tried only where one of them stands (``_IN_TEXT``).
_KEY_END = r"(?![A-Za-z0-9_\-])"
_KEYS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (tuple(needles.split()), re.compile(pattern + _KEY_END))
    for needles, pattern in (
        ("sk-", r"sk-(?:ant-(?:api|admin)\d\d-|proj-|svcacct-|None-)?[A-Za-z0-9_\-]{20,}"),
        ("sk_", r"sk_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("rk_", r"rk_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("whsec_", r"whsec_[A-Za-z0-9+/=]{24,}"),
        ("ghp_ gho_ ghu_ ghs_ ghr_", r"gh[pousr]_[A-Za-z0-9]{30,}"),
        ("github_pat_", r"github_pat_[A-Za-z0-9_]{40,}"),
        ("xox", r"xox[abposre]-[A-Za-z0-9\-]{10,}"),
        ("xapp-", r"xapp-[A-Za-z0-9\-]{10,}"),
        ("AKIA ASIA", r"A(?:KIA|SIA)[A-Z0-9]{16}"),
        ("AIza", r"AIza[0-9A-Za-z_\-]{35}"),
        ("eyJ", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
        ("glpat-", r"glpat-[A-Za-z0-9_\-]{20,}"),
        ("npm_", r"npm_[A-Za-z0-9]{36}"),
        ("hf_", r"hf_[A-Za-z0-9]{30,}"),
        ("SG.", r"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}"),
    )
)
_BEARER = re.compile(r"(?i)bearer\s+([A-Za-z0-9_\-.~+/]{20,}=*)")
_AWS_SECRET = re.compile(
    r"(?i)secret_?access_?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
)
# ``password=…``, ``DB_PASS: "…"``, ``"api_key": "…"``: matched in the lowered text at
# each place a key word occurs (``str.find`` is far cheaper than a regex scan).
_KEY_WORDS = ("pass", "pwd", "secret", "token", "api_key", "api-key", "apikey", "credential")
_ASSIGNED = re.compile(
    r"[a-z]*[\w.-]*[\"']?[ \t]*(?::=|=>|[:=])[ \t]*"
    r"(?:\"([^\"\n]{1,200})\"|'([^'\n]{1,200})'|([^\s\"',;&`]+))"
)
_SAID = re.compile(r"(?:password|passphrase|passcode)(?: \w+)? (?:is|was) :? ?(\S+)")
_FLAG = re.compile(r"\b(?:mysql\w*|mariadb)\b[^\n]*?\s-p([^\s'\"]\S*)|--password[ =](\S+)")
_PLACEHOLDER_WORDS = (
    "true false null none nil required optional redacted hidden changeme example string secret "
    "password undefined empty masked"
)
_NOT_SECRET = frozenset(_PLACEHOLDER_WORDS.split())
_ATTRIBUTE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+[\[(]?|.*[\[(]")


def _secret_ok(value: str) -> bool:
    """Whether a value assigned to a secret-looking key looks like a real secret and
    not a reference to one (``${VAR}``, ``os.environ[…]``, ``<token>``, ``****``)."""
    if len(value) < 6 or value[0] in "$<{[%*(#@\\" or "..." in value or "…" in value:
        return False
    if len(set(value)) <= 2 or value.lower() in _NOT_SECRET or value.startswith("http"):
        return False
    if value.isalpha() and value.islower() and len(value) < 12:
        return False  # a word ("bearer", "required") is an enum value, not a password
    return _ATTRIBUTE.fullmatch(value) is None


def _where(needles: tuple[str, ...], text: str) -> list[tuple[int, int]]:
    """Each place ``at`` where needle ``k`` stands in ``text`` (overlapping ones too),
    as ``(at, k)``, by place, then needle: ``_needles.Needles.where``'s reference."""
    out = []
    for k, needle in enumerate(needles):
        at = text.find(needle)
        while at >= 0:
            out.append((at, k))
            at = text.find(needle, at + 1)
    out.sort()
    return out


class Needles:
    """Fixed strings in groups (``groups[name]``: the strings), found in one pass."""

    def __init__(self, groups: Mapping[str, Sequence[str]]) -> None:
        needles = tuple(needle for strings in groups.values() for needle in strings)
        self._group = [name for name, strings in groups.items() for _ in strings]
        self._where: Callable[[str], list[tuple[int, int]]] = (
            functools.partial(_where, needles)
            if _needles is None
            else _needles.Needles(needles).where
        )

    def places(self, text: str) -> dict[str, list[int]]:
        """Where the strings of each group stand in ``text`` (groups with none left
        out), in order."""
        out: dict[str, list[int]] = {}
        for at, k in self._where(text):
            out.setdefault(self._group[k], []).append(at)
        return out


def _at(pattern: re.Pattern[str], text: str, places: Iterable[int]) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` for a pattern whose every match starts at one of
    ``places`` (in order): tried only there, past the last match."""
    end = 0
    for at in places:
        if at >= end and (m := pattern.match(text, at)) is not None:
            yield m
            end = m.end()


# In the text: each provider's prefixes and a URL's "://". In the lowered text: the key
# words, the client commands that take a password, the AWS secret's key, and the words
# the case-blind patterns start with (a URL's password parameter one character after
# its ``?``; "bearer", so that "BEARER" is searched for as "Bearer" is).
_KEY_GROUPS = [(f"key {k}", pattern) for k, (_, pattern) in enumerate(_KEYS)]
_IN_TEXT = Needles({f"key {k}": needles for k, (needles, _) in enumerate(_KEYS)} | {"url": ["://"]})
_IN_LOW = Needles(
    {word: [word] for word in _KEY_WORDS}
    | {"flag": ["mysql", "mariadb", "--password"], "aws": ["accesskey", "access_key"]}
    | {"query": ["password=", "passwd=", "pwd="], "bearer": ["bearer"]}
)
FAMILIES = frozenset(("private_key", "url", "api_key", "assigned"))  # (their gates' names)
_FIXED = FAMILIES - {"private_key"}  # the families found after their strings


def _anycase(
    pattern: re.Pattern[str], text: str, folded: dict[str, list[int]] | None, group: str, back: int
) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` for a case-blind pattern whose every match starts
    ``back`` characters before a string of ``group`` in the lowered text: tried only
    there when the lowered text's places (``folded``) are an ASCII text's, else searched
    for (Unicode case folding matches what lowering does not show: ``ſ`` is an ``s``)."""
    if folded is None:
        return pattern.finditer(text)
    return _at(pattern, text, [at - back for at in folded.get(group, ()) if at >= back])


def credentials(text: str, low: str | None, gates: Set[str]) -> Iterator[Span]:
    """The credentials in ``text`` (lowered: ``low``, made here when it is None and
    some family in ``gates`` reads it), for the families in ``gates``."""
    if "private_key" in gates:
        for m in _PRIVATE_KEY.finditer(text):
            yield "private_key", m.start(), m.end(), 0
    if gates.isdisjoint(_FIXED):
        return
    if low is None and ("api_key" in gates or "assigned" in gates or text.isascii()):
        low = text.lower()  # (≈ 8 µs a KB past ASCII: only when a family reads it)
    in_text = _IN_TEXT.places(text) if "url" in gates or "api_key" in gates else {}
    in_low = _IN_LOW.places(low) if low is not None else {}
    folded = in_low if text.isascii() else None
    if "url" in gates:
        for m in _at(_URL_USERINFO, text, in_text.get("url", ())):
            if _secret_ok(m.group(1)) or m.group(1).isalnum():
                yield "url_password", m.start(1), m.end(1), 1
        for m in _anycase(_URL_QUERY, text, folded, "query", 1):
            yield "url_password", m.start(1), m.end(1), 1
    if "api_key" in gates:
        yield from _keys(text, in_text, in_low, folded)
    if "assigned" in gates and low is not None and len(low) == len(text):  # (same offsets)
        yield from _assigned(text, low, in_low)


def _keys(
    text: str,
    in_text: dict[str, list[int]],
    in_low: dict[str, list[int]],
    folded: dict[str, list[int]] | None,
) -> Iterator[Span]:
    for group, pattern in _KEY_GROUPS:
        if group not in in_text:
            continue
        for m in _at(pattern, text, in_text[group]):
            if m.start() == 0 or not text[m.start() - 1].isalnum():
                yield "api_key", m.start(), m.end(), 2
    if "bearer" in in_low:
        for m in _anycase(_BEARER, text, folded, "bearer", 0):
            if not m.group(1).startswith("ey") or "." not in m.group(1):
                yield "api_key", m.start(1), m.end(1), 2
    if "aws" in in_low:
        for m in _anycase(_AWS_SECRET, text, folded, "secret", 0):
            yield "api_key", m.start(1), m.end(1), 2


def _matches(low: str, in_low: dict[str, list[int]]) -> Iterator[tuple[re.Match[str], bool]]:
    for word in _KEY_WORDS:
        for at in in_low.get(word, ()):
            bounded = word not in ("pass", "pwd") or not (
                low[at - 1 : at].isalpha() or low[at + len(word) : at + len(word) + 1].isalpha()
            )
            if (m := _ASSIGNED.match(low, at + len(word))) is not None and (
                bounded or low.startswith(("word", "wd", "phrase"), at + len(word))
            ):
                yield m, False
    yield from ((m, True) for m in _at(_SAID, low, in_low.get("pass", ())))
    yield from ((m, False) for m in _at(_FLAG, low, in_low.get("flag", ())))


def _assigned(text: str, low: str, in_low: dict[str, list[int]]) -> Iterator[Span]:
    for m, said in _matches(low, in_low):
        group = m.lastindex or 0
        start, end = m.start(group), m.end(group)
        if said:
            while end > start and text[end - 1] in ".,;:)\"'":
                end -= 1
            if text[start:end].isalpha():
                continue  # "the password is stored in Vault" names no password
        value = text[start:end]
        if _secret_ok(value) and not _PLACEHOLDER.search(value):
            yield "secret", start, end, 3
