"""Credentials are tried only where their fixed strings stand: the compiled one-pass
search (``_needles.c``) finds every place ``str.find`` does, and what the families
find there is what a search of the whole text finds."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator

import pytest

from benchmarks.screening import load, texts_1kb
from orchestrator import pii_credentials
from orchestrator.pii import GATES
from orchestrator.pii_credentials import FAMILIES, Span, _where, credentials

try:
    from orchestrator._needles import Needles
except ImportError:  # not compiled (no compiler on this machine)
    Needles = None  # type: ignore[assignment,misc]

_TAIL = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl"
_PIECES = [
    *"aA0 _-.:=/@?&;\"'\n",
    "\u017f",  # long s: an "s" to a case-blind pattern, not to ``lower``
    "\u00e9",
    "\U0001f600",
    *(prefix + _TAIL for prefix in ("sk-", "sk_live_", "rk_test_", "whsec_", "ghp_", "gho_")),
    *(prefix + _TAIL for prefix in ("ghu_", "ghs_", "ghr_", "github_pat_", "xoxb-", "xapp-")),
    *(prefix + _TAIL for prefix in ("glpat-", "npm_", "hf_", "AIza", "SG.", "eyJ")),
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAIOSFODNN7EXAMPLE",
    "AKIASIAIOSFODNN7EXAMPLE",  # two prefixes overlapping
    "SG.abcdefghijklmnopqr.abcdefghijklmnopqrstu",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijk",
    "Bearer ",
    "BEARER ",
    "bearer ",
    "Authorization: Bearer ",
    "aws_secret_access_key = ",
    "SecretAccessKey: ",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "https://user:",
    "s3cr3tPassw0rd@",
    "://",
    "?password=",
    "&PASSWD=",
    ";pwd=",
    "?pa\u017f\u017fword=",
    "hunter2secret",
    "password",
    "Password",
    "passphrase",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "credential",
    "DB_PASS",
    ": ",
    "= ",
    ":= ",
    "=> ",
    " is ",
    " was ",
    "mysql -u root -p",
    "mariadb ",
    "--password=",
    "--password ",
    "mysqladmin ",
]


def _texts() -> list[str]:
    pii, injection = load("pii.jsonl"), load("injection.jsonl")
    texts = [str(r["text"]) for r in pii + injection] + texts_1kb(pii, injection, 300)
    rng = random.Random(7)
    for _ in range(6_000):
        texts.append("".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 30))))
    return texts


@pytest.mark.parametrize(
    "needles",
    [
        ("sk-", "ghp_", "gho_", "ab", "aba", "bab", "://", "pass", "password"),
        ("sk-", "ghp_", "gho_", "aba", "bab", "://", "pass", "password"),  # three at least
        tuple(f"{a}{b}" for a in "abs" for b in "abs:/-_kpgho"),  # more heads than fit at once
    ],
)
def test_the_compiled_search_finds_every_place_str_find_does(needles: tuple[str, ...]) -> None:
    if Needles is None:
        pytest.skip("the C core is not compiled (no compiler on this machine)")
    compiled = Needles(needles)
    rng = random.Random(3)
    pieces = [*"abs:/-_kpgho", "\u017f", "\U0001f600", "password", "sk-", "ghp_", "ababa"]
    texts = _texts()[:2_000] + [
        "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(5_000)
    ]
    overlapping = 0
    for text in texts:
        found = compiled.where(text)
        assert found == _where(needles, text), text
        overlapping += any(a[0] < b[0] < a[0] + 3 for a, b in itertools.pairwise(found))
    assert overlapping > 50  # "abab…", "aba": places that overlap are all there


def test_needles_refuse_what_they_cannot_search_for() -> None:
    if Needles is None:
        pytest.skip("the C core is not compiled (no compiler on this machine)")
    for bad in (["a"], ["ok", ""], ["\u017fs"], ["ok", 3]):
        with pytest.raises(ValueError, match="ASCII str of 2 characters or more"):
            Needles(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Needles(["ok"]).where(b"ok")  # type: ignore[arg-type]


def _everywhere(pattern: re.Pattern[str], text: str, *_: object) -> Iterator[re.Match[str]]:
    return pattern.finditer(text)


def _found(text: str) -> list[Span]:
    return list(credentials(text, None, FAMILIES))


def test_the_families_find_at_their_strings_what_a_whole_search_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = _texts()
    with monkeypatch.context() as patched:
        patched.setattr(pii_credentials, "_at", _everywhere)
        patched.setattr(pii_credentials, "_anycase", _everywhere)
        expected = [_found(text) for text in texts]
    kinds: set[str] = set()
    for text, want in zip(texts, expected, strict=True):
        got = _found(text)
        assert got == want, text
        kinds.update(kind for kind, *_ in got)
    assert kinds == {"private_key", "url_password", "api_key", "secret"}
    assert GATES.keys() >= FAMILIES  # (a family named by no gate would never be read)
    # the random texts reach every family, the case-blind ones in other cases
    assert any(
        span[0] == "url_password" and text[span[1] - 10 : span[1]].upper().endswith("PASSWD=")
        for text, spans in zip(texts, expected, strict=True)
        for span in spans
    )
    assert sum(len(spans) for spans in expected) > 3_000
