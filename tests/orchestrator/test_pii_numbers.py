"""The digit runs PII numbers are read from: the compiled scan (``_numbers.c``) finds
what the Python one finds, and the runs it leaves out are ones no rule could take."""

from __future__ import annotations

import random

import pytest

from benchmarks.screening import load, texts_1kb
from orchestrator import pii_numbers
from orchestrator.pii_numbers import Span, numbers

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


def _found(text: str) -> list[Span]:
    out: list[Span] = []
    numbers(text, out)
    return out


def _in_python(text: str, monkeypatch: pytest.MonkeyPatch) -> list[Span]:
    """What ``numbers`` finds when every run goes through the rules in Python."""
    with monkeypatch.context() as patched:
        patched.setattr(pii_numbers, "_numbers", None)
        return _found(text)


def test_the_compiled_runs_find_what_the_python_ones_do(monkeypatch: pytest.MonkeyPatch) -> None:
    if pii_numbers._numbers is None:
        pytest.skip("the C core is not compiled (no compiler on this machine)")
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
