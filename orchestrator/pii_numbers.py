"""Numbers that are PII: phones, cards, national ids, IBANs and IPv4 addresses.

One scan of the text's shape finds the digit runs; each is classified with checksums
(Luhn, IBAN mod 97, DNI mod 23) and the formats of national numbering plans, cheap
tests first. Bare numbers that could be anything (``4155550123``, ``536221478``)
count only after a word that names them. When the C core is compiled
(``orchestrator/_pii.c``), the scan and the rules run there: it leaves out the runs
no rule could take (most runs are dates, versions and counts), and applies the rules
below to the others, handing back to ``_run`` only a run with characters past ASCII
around it (where Python's Unicode rules are not ASCII's).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

try:
    from orchestrator import _pii
except ImportError:  # not compiled (see hatch_build.py): the same scan and rules, in Python
    _pii = None  # type: ignore[assignment]

Span = tuple[str, int, int, int]  # kind, start, end, rank (lower wins a tie)

# A digit run (phones, cards, ids, IPv4), or digits glued to letters as in ``GB82WEST…``,
# found in the text's shape: one byte per character, ``0`` a digit, ``a`` a letter, ``.``
# one of ``.()-``, a space a space, ``x`` anything else. The shape is one ``translate``,
# and a scan of it for a run that starts with a literal ``0`` skips what cannot start
# one at C speed; a character-class scan of the text itself costs several times more.
_SHAPE = (
    bytes(
        48
        if chr(b).isdigit()
        else 97
        if chr(b).isalpha()
        else 32
        if b == 32
        else 46
        if chr(b) in ".()-"
        else 120
        for b in range(128)
    )
    + b"x" * 128
)
_RUN = re.compile(rb"0(?:([0. ]{5,})|0 ?[0a]{4} ?[0a]{4})")
_CARD = re.compile(r"\d(?:[ \-]?\d){12,18}")
_SSN = re.compile(r"(\d{3})([ \-])(\d{2})\2(\d{4})")
_SIN = re.compile(r"\d{3}([ \-])\d{3}\1\d{3}")
_IPV4 = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}")
_US_PHONE = re.compile(r"(?:1[ .\-])?(?:\(\d{3}\) ?|\d{3}([.\-]))\d{3}[ .\-]\d{4}")
_TRUNK_PHONE = re.compile(r"0[1-9]\d{0,3}[ \-]?\d{2,8}(?:[ \-]\d{2,4}){0,2}")
_INTL_PHONE = re.compile(r"\+\d{1,3}(?:[ .\-]?\(?\d{1,5}\)?){2,6}")
_BARE_PHONE = re.compile(r"\d{10}|\d{3}-\d{4}|\d{3} \d{3} \d{4}")
_NINO = re.compile(
    r"(?i)(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
    r"(?![A-Za-z0-9])"
)
_IBAN_HEAD = re.compile(r"[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){10,32}")
_PHONE_WORDS = re.compile(
    r"(?:call|phone|cell|mobile|mob|tel|text|sms|whatsapp|fax|contact|reach|ring|dial|number|ph)\b[^\n\d]{0,16}$"
)
_SSN_WORDS = re.compile(r"(?:ssn|social security(?: number)?|taxpayer id|tin)\b[^\n\d]{0,12}$")
_SIN_WORDS = re.compile(r"(?:sin|social insurance(?: number)?)\b[^\n\d]{0,12}$")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_IBAN_REGISTRY = (  # country code and IBAN length
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 "
    "DK18 DO28 EE20 EG29 ES24 FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 "
    "IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 MC27 MD24 "
    "ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 RO24 RS22 SA24 SC31 "
    "SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20"
)
_IBAN_LENGTHS = {entry[:2]: int(entry[2:]) for entry in _IBAN_REGISTRY.split()}
_CARD_LENGTHS = {
    "2": (16,),
    "3": (14, 15, 16),
    "4": (13, 16, 19),
    "5": (16,),
    "6": (16, 17, 18, 19),
}
_NOT_IP = ("127.", "0.", "255.")


def luhn(digits: str) -> bool:
    """The Luhn check (cards, Canadian SINs)."""
    total, odd = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if odd:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        odd = not odd
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    """The ISO 13616 check: known country, its length, and mod 97 == 1."""
    compact = value.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _card_ok(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    return len(digits) in _CARD_LENGTHS.get(digits[0], ()) and luhn(digits)


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ipv4_ok(value: str) -> bool:
    parts = value.split(".")
    if any(int(p) > 255 or (len(p) > 1 and p[0] == "0") for p in parts):
        return False
    return not value.startswith(_NOT_IP)  # loopback, "this network", netmasks


LETTERED, FREE, GLUED = 1, 2, 4  # what a run is read for (as ``_pii.c`` numbers them)
if _pii is not None:
    _pii.configure(_IBAN_LENGTHS, _CARD_LENGTHS, _DNI_LETTERS)


def numbers(text: str, out: list[Span]) -> None:
    """Add the phones, cards, national ids, IBANs and IPv4 addresses in ``text``."""
    if _pii is not None:
        _pii.find(text, out, _run)  # the same, in C (``_run`` past ASCII)
        return
    for start, end, what in _runs_in_python(text):
        _run(text, start, end, what, out)


def _run(text: str, start: int, end: int, what: int, out: list[Span]) -> None:
    """Add what the rules find in the run ``text[start:end]``, read as ``what``."""
    if what == GLUED:
        _iban(text, start - 2, out)
        return
    if what & LETTERED:
        _lettered(text, start, end, out)
    if what & FREE:
        _classify(text[start:end], start, text[max(0, start - 40) : start].lower(), out)


def _runs_in_python(text: str) -> Iterator[tuple[int, int, int]]:
    """The digit runs in ``text`` as ``(start, end, what)`` (the reference for
    ``_pii.find``'s scan, which also leaves out the runs no rule could take)."""
    shape = text.encode("ascii", "replace").translate(_SHAPE)  # one byte per character
    for m in _RUN.finditer(shape):
        start, end = m.start(), m.end()
        if m.lastindex is None:  # digits glued to letters
            if start >= 2 and text[start - 2 : start].isalpha():
                yield start, end, GLUED
            continue
        while not text[end - 1].isdigit():
            end -= 1
        if start and text[start - 1] in "+(":
            start -= 1
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if before.isalpha() or after.isalnum() or before in "_$#":
            yield start, end, LETTERED
        elif start >= 3 and text[start - 3 : start - 1].isalpha():
            yield start, end, LETTERED | FREE  # "CE 12 34 56 D"
        else:
            yield start, end, FREE


def _classify(run: str, start: int, context: str, out: list[Span]) -> None:
    """A free-standing digit run: IPv4, card, SSN/SIN, or phone; cheap tests first."""
    end, size = start + len(run), len(run)
    if run.count(".") >= 3:
        for m in _IPV4.finditer(run):
            if _ipv4_ok(m.group()):
                out.append(("ip", start + m.start(), start + m.end(), 9))
    if size >= 13:
        for m in _CARD.finditer(run):
            if _card_ok(m.group()):
                out.append(("card", start + m.start(), start + m.end(), 5))
    if size in (9, 11) and _national(run, context):
        out.append(("national_id", start, end, 6))
    if _is_phone(run, context):
        out.append(("phone", start, end, 8))


def _national(run: str, context: str) -> bool:
    """A US SSN (``536-22-1478``; bare after "SSN") or a Canadian SIN after "SIN"."""
    if (m := _SSN.fullmatch(run)) is not None:
        return _ssn_ok(m[1], m[3], m[4])
    if run.isdigit():
        return _SSN_WORDS.search(context) is not None
    sin = _SIN.fullmatch(run) is not None and luhn(run[:3] + run[4:7] + run[8:])
    return sin and _SIN_WORDS.search(context) is not None


def _is_phone(run: str, context: str) -> bool:
    if run[0] == "+":
        return 8 <= sum(c.isdigit() for c in run) <= 15 and _INTL_PHONE.fullmatch(run) is not None
    if run[0] == "0" and 9 <= len(run) <= 16 and _TRUNK_PHONE.fullmatch(run) is not None:
        return 9 <= sum(c.isdigit() for c in run) <= 12
    if _US_PHONE.fullmatch(run) is not None:
        return True
    return _BARE_PHONE.fullmatch(run) is not None and _PHONE_WORDS.search(context) is not None


def _lettered(text: str, start: int, end: int, out: list[Span]) -> None:
    """Numbers glued to letters: IBAN (``DE89…``), NINO (``AB123456C``), DNI/NIE."""
    if start >= 2 and text[start - 2 : start].isalpha():
        _iban(text, start - 2, out)
    if end - start in (6, 8) and start >= 2:
        for m in _NINO.finditer(text, max(0, start - 3), min(len(text), end + 3)):
            if m[1].upper() not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
                out.append(("national_id", m.start(), m.end(), 6))
    after = text[end : end + 2]
    if end - start not in (7, 8) or not after[:1].isalpha() or after[1:].isalnum():
        return
    run, head, letter = text[start:end], text[start - 1 : start].upper(), after[0].upper()
    if run.isdigit() and len(run) == 8 and _DNI_LETTERS[int(run) % 23] == letter:
        out.append(("national_id", start, end + 1, 6))  # Spanish DNI
    elif run.isdigit() and len(run) == 7 and head in ("X", "Y", "Z"):
        number = int(str("XYZ".index(head)) + run)
        if _DNI_LETTERS[number % 23] == letter:  # Spanish NIE
            out.append(("national_id", start - 1, end + 1, 6))


def _iban(text: str, start: int, out: list[Span]) -> None:
    length = _IBAN_LENGTHS.get(text[start : start + 2].upper())
    if length is None or (start and text[start - 1].isalnum()):
        return
    head = _IBAN_HEAD.match(text, start)
    if head is None:
        return
    taken, end = 0, start
    while end < head.end() and taken < length:
        taken += text[end] != " "
        end += 1
    ends = end == len(text) or not text[end].isalnum()
    if taken == length and ends and iban_ok(text[start:end]):
        out.append(("iban", start, end, 4))
