"""Credentials: private keys, passwords in URLs, provider API keys (each family has a
fixed prefix), and values assigned to secret-looking keys (``password=…``,
``DB_PASS: "…"``, ``"api_key": "…"``, "the password is …", ``mysql -p…``)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Set

Span = tuple[str, int, int, int]  # kind, start, end, rank (lower wins a tie)

_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
_URL_USERINFO = re.compile(r"://[^\s:/@?#'\"<>]*:([^\s@/?#'\"<>]+)@")
_URL_QUERY = re.compile(r"[?&;](?:password|passwd|pwd)=([^&\s#;'\"]+)", re.IGNORECASE)
# (substring that must be present, pattern): each token family has a fixed prefix.
_KEY_END = r"(?![A-Za-z0-9_\-])"
_KEYS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (needle, re.compile(pattern + _KEY_END))
    for needle, pattern in (
        ("sk-", r"sk-(?:ant-(?:api|admin)\d\d-|proj-|svcacct-|None-)?[A-Za-z0-9_\-]{20,}"),
        ("sk_", r"sk_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("rk_", r"rk_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("whsec_", r"whsec_[A-Za-z0-9+/=]{24,}"),
        ("_", r"gh[pousr]_[A-Za-z0-9]{30,}"),
        ("github_pat_", r"github_pat_[A-Za-z0-9_]{40,}"),
        ("xox", r"xox[abposre]-[A-Za-z0-9\-]{10,}"),
        ("xapp-", r"xapp-[A-Za-z0-9\-]{10,}"),
        ("A", r"A(?:KIA|SIA)[A-Z0-9]{16}"),
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


def credentials(text: str, low: str | None, gates: Set[str]) -> Iterator[Span]:
    """The credentials in ``text`` (lowered: ``low``, made here when it is None and
    some family in ``gates`` reads it), for the families in ``gates``."""
    if "private_key" in gates:
        for m in _PRIVATE_KEY.finditer(text):
            yield "private_key", m.start(), m.end(), 0
    if "url" in gates:
        for m in _URL_USERINFO.finditer(text):
            if _secret_ok(m.group(1)) or m.group(1).isalnum():
                yield "url_password", m.start(1), m.end(1), 1
        for m in _URL_QUERY.finditer(text):
            yield "url_password", m.start(1), m.end(1), 1
    if "api_key" in gates or "assigned" in gates:
        if low is None:  # a text with non-ASCII characters: ≈ 8 µs a KB, so only here
            low = text.lower()
        if "api_key" in gates:
            yield from _keys(text, low)
        if "assigned" in gates and len(low) == len(text):  # offsets in ``low`` are in ``text``
            yield from _assigned(text, low)


def _keys(text: str, low: str) -> Iterator[Span]:
    for needle, pattern in _KEYS:
        if needle in text:
            for m in pattern.finditer(text):
                if m.start() == 0 or not text[m.start() - 1].isalnum():
                    yield "api_key", m.start(), m.end(), 2
    if "earer" in text:
        for m in _BEARER.finditer(text):
            if not m.group(1).startswith("ey") or "." not in m.group(1):
                yield "api_key", m.start(1), m.end(1), 2
    if "accesskey" in low or "access_key" in low:
        for m in _AWS_SECRET.finditer(text):
            yield "api_key", m.start(1), m.end(1), 2


def _matches(low: str) -> Iterator[tuple[re.Match[str], bool]]:
    for word in _KEY_WORDS:
        at = low.find(word)
        while at >= 0:
            bounded = word not in ("pass", "pwd") or not (
                low[at - 1 : at].isalpha() or low[at + len(word) : at + len(word) + 1].isalpha()
            )
            if (m := _ASSIGNED.match(low, at + len(word))) is not None and (
                bounded or low.startswith(("word", "wd", "phrase"), at + len(word))
            ):
                yield m, False
            at = low.find(word, at + 1)
    if "pass" in low:
        yield from ((m, True) for m in _SAID.finditer(low))
    if "mysql" in low or "mariadb" in low or "--password" in low:
        yield from ((m, False) for m in _FLAG.finditer(low))


def _assigned(text: str, low: str) -> Iterator[Span]:
    for m, said in _matches(low):
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
