"""PII numbers in C (``_pii.c``): its scan finds the runs the Python one finds, the
runs it leaves out are ones no rule could take, and its rules find what the Python
rules find."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from benchmarks.screening import load, texts_1kb
from orchestrator import pii_numbers
from orchestrator.pii_numbers import Span, numbers

try:
    from orchestrator import _pii as compiled
except ImportError:  # not compiled (no compiler on this machine)
    compiled = None  # type: ignore[assignment]
needs_c = pytest.mark.skipif(compiled is None, reason="the C core is not compiled")

_PIECES = [
    *"0123456789" * 6,
    *" .-()+",
    *"ABCDXYZ",
    *"abcxyz_$#",
    "\u00e9",  # a letter past ASCII
    "\u0131",  # dotless i: a letter whose capital is ASCII
    "\u017f",  # long s: another, whose capital is "S" (as in "SE", a country)
    "\u0663",  # an Arabic-Indic digit: a digit to ``isdigit``, no digit to the shape
    "\u00b2",  # superscript two: ``isalnum``, not ``isalpha``
    "\U0001f600",  # a character four bytes wide
    "\n",
    "SSN ",
    "call ",
    "SIN ",
    "GB82",
    "DE89 3704 0044 0532 0130 00",
    "JT 98 76 54 A",
    "JT ",
    "jt 98 76 54 d",
    "AB12 34 56 C",
    "1234567Z",
    "987654",
    " A",
    "12345678Z",
    "X1234567L",
    "4111 1111 1111 1111",
    "+44 20 7946 0018",
    "(555) 123-4567",
    "536-22-1478",
    "192.168.1.20",
]
# Only ASCII, so that every run is read by the rules in C (past ASCII, they hand a run
# back to Python): each rule's forms, near misses, and the words that name a number.
_ASCII_PIECES = [
    *(p for p in _PIECES if p.isascii()),
    *"0123456789" * 4,
    *"XYZLT",
    "ssn: ",
    "social security number ",
    "Social Security ",
    "taxpayer id ",
    "martin ",
    "SIN ",
    "social insurance ",
    "phone:",
    "tel ",
    "Call me at ",
    "ring ",
    "text me ",
    "mobile_",
    "number\n",
    "                ",
    "127.",
    "0.",
    "255.",
    "10.0.0.",
    "256.",
    "01.",
    "1.2.3.4.5",
    "+1 ",
    "+44 (0)20 7946 0018",
    "+33 1 42 68 53 00",
    "+1-800-555-0199",
    "1 (555) 123-4567",
    "1.555.123.4567",
    "020 7946 0018",
    "06-12345678",
    "0612 34 56 78",
    "046 454 286",
    "046-454-286",
    "4111111111111111",
    "5500 0000 0000 0004",
    "3782-822463-10005",
    "6011 0009 9013 9424",
    "000-12-3456",
    "666-12-3456",
    "912-12-3456",
    "536-00-1478",
    "536-22-0000",
    "GB82WEST12345698765432",
    "NL91ABNA0417164300",
    "FR14 2004 1010 0505 0001 3M02 606",
    "MT84MALT011000012345MTLCAST001S",
    "de89370400440532013000",
    "QQ 12 34 56 C",
    "BG 12 34 56 A",
    "ab123456c",
    "12345678Z",
    "Y1234567X",
    "z7654321",
]


def _found(text: str) -> list[Span]:
    out: list[Span] = []
    numbers(text, out)
    return out


def _in_python(text: str, monkeypatch: pytest.MonkeyPatch) -> list[Span]:
    """What ``numbers`` finds when every run goes through the rules in Python."""
    with monkeypatch.context() as patched:
        patched.setattr(pii_numbers, "_pii", None)
        return _found(text)


@needs_c
def test_the_compiled_runs_find_what_the_python_ones_do(monkeypatch: pytest.MonkeyPatch) -> None:
    pii, injection = load("pii.jsonl"), load("injection.jsonl")
    texts = [str(r["text"]) for r in pii + injection] + texts_1kb(pii, injection, 400)
    rng = random.Random(11)
    for _ in range(20_000):  # every run length and shape, glued and free-standing
        texts.append("".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 40))))
    found = 0
    for text in texts:
        expected = _in_python(text, monkeypatch)
        assert _found(text) == expected, text
        found += bool(expected)
    assert found > 1_000  # the random texts do reach the rules


@needs_c
def test_the_compiled_rules_find_what_the_python_ones_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(12)
    kinds: Counter[str] = Counter()
    for _ in range(30_000):
        text = "".join(rng.choice(_ASCII_PIECES) for _ in range(rng.randint(1, 30)))
        expected = _in_python(text, monkeypatch)
        assert _found(text) == expected, text
        kinds.update(kind for kind, *_ in expected)
    # every rule is reached, often
    assert min(kinds[k] for k in ("ip", "card", "national_id", "phone", "iban")) > 200, kinds


@needs_c
def test_the_compiled_rules_read_the_naming_words_and_nino_letters_as_python_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    words = [*pii_numbers._PHONE_WORDS.pattern[3:].split(")")[0].split("|"), "ssn", "tin"]
    words += ["social security number", "taxpayer id", "sin", "social insurance number"]
    numbers = ["536221478", "046 454 286", "4155550123", "555-0100", "415 555 0123"]
    texts = [
        f"{word}{filler * gap}{number}"
        for word in [*words, "SSN", "Phone"]
        for filler in (" ", "_", "_ ", ":", "\n", "a", "-", "1")
        for gap in range(19)  # the words may stand up to 12 or 16 characters before
        for number in numbers
    ]
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    texts += [f"{a}{b} 12 34 56 {d}" for a in letters for b in letters for d in "CE"]
    texts += [f"{a}{b}123456{d}" for a in letters.lower() for b in letters for d in "ae"]
    found = 0
    for text in texts:
        expected = _in_python(text, monkeypatch)
        assert _found(text) == expected, text
        found += bool(expected)
    assert 0.2 < found / len(texts) < 0.8  # named and not, a NINO and not


@needs_c
def test_a_run_with_characters_past_ascii_around_it_is_read_in_python() -> None:
    # the 80 characters after the first run are ASCII; the "é" is in the second's
    text = "ssn: 536221478" + " " * 80 + "ssn: 536221478 " + " " * 63 + "caf\u00e9 ssn: 536221478"
    read: list[int] = []

    def fallback(text: str, start: int, end: int, what: int, out: list[Span]) -> None:
        read.append(start)
        pii_numbers._run(text, start, end, what, out)

    out: list[Span] = []
    compiled.find(text, out, fallback)
    runs = [at + 5 for at in range(len(text)) if text.startswith("ssn: ", at)]
    assert read == runs[1:]
    assert out == [("national_id", at, at + 9, 6) for at in runs]


@needs_c
def test_the_compiled_rules_refuse_bad_data_and_keep_what_they_had() -> None:
    with pytest.raises(TypeError):
        compiled.find(b"123", [], pii_numbers._run)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="IBAN"):
        compiled.configure({"gb": 22}, {}, "X" * 23)
    with pytest.raises(ValueError, match="card"):
        compiled.configure({}, {"4": (12,)}, "X" * 23)
    with pytest.raises(ValueError, match="23"):
        compiled.configure({}, {}, "XY")
    assert _found("GB82 WEST 1234 5698 7654 32, 4111 1111 1111 1111, 12345678Z") == [
        ("iban", 0, 27, 4),
        ("card", 29, 48, 5),
        ("national_id", 50, 59, 6),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "call 555-0100",  # 8 characters, a bare phone's form
        "call 4155550123",  # 10 digits
        "call 020 7946 0018",  # a trunk phone
        "SSN 536221478",  # 9 digits
        "ip 1.2.3.4 here",  # 7 characters, three dots
        "+12345678",  # a plus and 8 digits
        "NINO JT 987654 A",  # 6 digits, the letters a space away
        "ES 12345678Z",  # a DNI: 8 digits glued to a letter
        "X1234567L",  # a NIE: 7
        "GB82 WEST 1234 5698 7654 32",  # glued to letters
    ],
)
def test_runs_short_of_what_most_rules_need_are_still_read(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _found(text), text
    assert _found(text) == _in_python(text, monkeypatch)
