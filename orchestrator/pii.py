"""PII and credential detection: where the values are, and of which kind.

``find_pii(text)`` returns candidate spans ``(kind, start, end, rank)``; they may
overlap, and ``Screener.redact`` keeps one per region (lower rank wins a tie). This is
on the path of every text sent to a model, so each family is tried only when its gate
(``GATES``: an RE2 pattern that matches wherever the family could find something) is
found in the lowered text, all gates in one pass: ``Screener`` runs them in the same
RE2 set as the injection signals; alone, ``find_pii`` runs a set of its own. Digit runs
are the exception: nearly every text has some, and ``pii_numbers`` finds them in one
cheap scan of the text's shape. Credentials are in ``pii_credentials``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator, Set

from orchestrator.injection.prefilter import Prefilter
from orchestrator.pii_credentials import FAMILIES, credentials
from orchestrator.pii_numbers import Span, numbers

try:
    from orchestrator._pii import emails as _compiled_emails
except ImportError:  # not compiled (see hatch_build.py): ``_emails`` does the same
    _compiled_emails = None  # type: ignore[assignment]

__all__ = ["GATES", "Span", "find_pii"]

_ANY = r"\x{80}-\x{10ffff}"  # Python's \w and \s take non-ASCII characters; RE2's do not
# RE2 syntax, on the lowered text: each matches wherever its family could find a value.
GATES = {
    "private_key": r"private key",
    "url": r"://[^\s:/@?#'\"<>]*:[^\s@/?#'\"<>]+@|[?&;](?:password|passwd|pwd)=",
    "api_key": (
        r"(?:^|[^a-z0-9])(?:sk-[a-z0-9_\-]{20}|[sr]k_(?:live|test)_|whsec_|gh[pousr]_"
        r"|github_pat_|xox[abposre]-|xapp-|a(?:kia|sia)[a-z0-9]{16}|aiza[0-9a-z_\-]{35}"
        r"|eyj[a-z0-9_\-]{8}|glpat-|npm_[a-z0-9]{36}|hf_[a-z0-9]{30}|sg\.[a-z0-9_\-]{16})"
        r"|bearer[\s" + _ANY + r"]|secret_?access_?key"
    ),
    "assigned": (
        r"(?:pass|pwd|secret|token|api_key|api-key|apikey|credential)[a-z]*[\w.\-"
        + _ANY
        + r"]*[\"']?[ \t]*(?::=|=>|[:=])|pass(?:word|phrase|code)(?: [\w"
        + _ANY
        + r"]+)?"
        r" (?:is|was) |mysql|mariadb|--password"
    ),
    "email": r"[a-z0-9._%+'\-]@[a-z0-9]",
    "ipv6": r"(?:^|[^\w:.])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?:$|[^\w:])",
}


def find_pii(text: str, gates: Set[str] | None = None, low: str | None = None) -> list[Span]:
    """Every PII or credential candidate in ``text``: ``(kind, start, end, rank)``;
    ``gates``: the names of the ``GATES`` found in the lowered text, if known; ``low``:
    ``text.lower()``, if the caller has it."""
    gates = _gates(text) if gates is None else gates
    found: list[Span] = []
    if not gates.isdisjoint(FAMILIES):
        found += credentials(text, low, gates)
    if "email" in gates:
        if _compiled_emails is None:
            found += _emails(text)
        else:
            _compiled_emails(text, found)
    numbers(text, found)
    if "ipv6" in gates:
        _ipv6(text, found)
    return found


@functools.cache
def _prefilter() -> Prefilter:
    names = list(GATES.values())
    return Prefilter(names, [[g] for g in names])


def _gates(text: str) -> set[str]:
    names = list(GATES)
    return {names[i] for i in _prefilter().pick(" " + text.lower()).candidates}


# --- email ---------------------------------------------------------------------------

# A local part, read backwards from the "@" (in the reversed 64 characters before it):
# searching forwards for a run that ends at the "@" tries every place in the window.
_LOCAL_BACKWARDS = re.compile(r"[A-Za-z0-9._%+'\-]+")
_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)


def _emails(text: str) -> Iterator[Span]:
    """The e-mail addresses in ``text`` (``_pii.emails``' reference)."""
    at = text.find("@")
    while at >= 0:
        local = _LOCAL_BACKWARDS.match(text[max(0, at - 64) : at][::-1])
        domain = _DOMAIN.match(text, at + 1)
        if local is not None and domain is not None:
            start = at - local.end()
            while start < at and not text[start].isalnum():
                start += 1
            before = text[start - 1] if start else " "
            scp_remote = (
                text.startswith(":", domain.end())
                and text[domain.end() + 1 : domain.end() + 2].isalpha()
            )
            userinfo = before in "/:" and not text.endswith("mailto:", 0, start)
            if start < at and not scp_remote and not userinfo:
                yield "email", start, domain.end(), 7
        at = text.find("@", at + 1)


# --- IPv6 ----------------------------------------------------------------------------

_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


# A colon that may start a cluster: ``::``, or 6 more colons close after it (each gap at
# most 29 characters, which 7 colons within 36 have): one ``re`` scan, instead of a
# look at every colon in Python (a log or JSON text has dozens).
_CLUSTER = re.compile(r":(?=:|(?:[^:]{0,29}:){6})")


def _ipv6(text: str, out: list[Span]) -> None:
    # Only where colons cluster (``::``, or 7 colons within an address's length):
    # log timestamps have colons too, but never that many that close.
    done = 0
    for colon in _CLUSTER.finditer(text):
        at = colon.start()
        if at >= done and (text.startswith(":", at + 1) or text.count(":", at, at + 36) >= 7):
            done = at + 1
            for m in _IPV6.finditer(text, max(0, at - 40), at + 80):
                done = max(done, m.end())
                if not text.startswith(".", m.end()) and _ipv6_ok(m.group()):
                    out.append(("ip", m.start(), m.end(), 9))


def _ipv6_ok(value: str) -> bool:
    if sum(1 for g in value.split(":") if g) < 3:
        return False  # "x[1::2]", "[::1]", "::ffff:192…"
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)
