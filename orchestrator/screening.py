"""Screening: what is checked and changed before any text reaches a model.

``Screener.screen`` redacts PII and configured secrets (replacing each value with a
stable placeholder such as ``[EMAIL_1]``, kept in a vault so a final answer can be
restored for the person allowed to see it) and scores prompt injection, with the
reasons. No I/O: it runs on every request, reply, webhook body and tool output fed back
to a model, so it reads each text once for both (one RE2 pass, ``orchestrator.injection``
``Detector`` with the PII gates; the word signals' chains in one more, in C) before
any ``re`` pattern runs. What counts as PII is
in ``orchestrator.pii``, what looks like an injection in ``orchestrator.injection``;
``benchmarks/screening.py`` measures both against ``tests/data``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from orchestrator.injection import Detector, views
from orchestrator.pii import GATES, find_pii


class Finding(NamedTuple):
    """One redacted value: its kind, its span in the original text, its placeholder."""

    kind: str
    start: int
    end: int
    placeholder: str


class Injection(NamedTuple):
    """How much a text looks like a prompt injection (0..1), and why."""

    score: float
    flagged: bool
    reasons: tuple[str, ...]


class Screened(NamedTuple):
    """A text as it may be sent to a model, with what was found in it."""

    text: str
    findings: tuple[Finding, ...]
    vault: dict[str, str]
    injection: Injection

    @property
    def clean(self) -> bool:
        """Nothing was redacted and nothing looks like an injection."""
        return not self.findings and not self.injection.flagged


_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")
_DETECTOR = Detector(GATES)  # built once per process: compiling the signals takes a while


class Screener:
    """Redacts PII and ``secrets`` (exact values, never to leave) and scores injection."""

    def __init__(
        self, secrets: Iterable[str] = (), *, injection_threshold: float | None = None
    ) -> None:
        values = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, values))) if values else None
        if injection_threshold is None:
            injection_threshold = _DETECTOR.model.threshold
        self.injection_threshold = injection_threshold

    def screen(self, text: str, *, vault: dict[str, str] | None = None) -> Screened:
        """``text`` redacted (placeholders from ``vault``, extended in place) and scored."""
        v = views(text)
        scan = _DETECTOR.scan(v)
        low = v.low[1:] if text.isascii() else None  # an ASCII text's views change nothing
        redacted, vault, findings = self._redact(text, vault, _DETECTOR.gates(scan), low)
        score, reasons = _DETECTOR.score(text, v, scan)
        # ``tuple.__new__`` makes the results without a NamedTuple's ``__new__`` frame
        injection = tuple.__new__(Injection, (score, score >= self.injection_threshold, reasons))
        return tuple.__new__(Screened, (redacted, findings, vault, injection))

    def injection(self, text: str) -> Injection:
        """How much ``text`` looks like a prompt injection, and why."""
        score, reasons = _DETECTOR.score(text)
        return Injection(score, score >= self.injection_threshold, reasons)

    def redact(
        self, text: str, *, vault: dict[str, str] | None = None
    ) -> tuple[str, dict[str, str], tuple[Finding, ...]]:
        """The text with every finding replaced by its placeholder, the vault (extended
        in place when given), and the findings in text order."""
        return self._redact(text, vault, None, None)

    def _redact(
        self, text: str, vault: dict[str, str] | None, gates: set[str] | None, low: str | None
    ) -> tuple[str, dict[str, str], tuple[Finding, ...]]:
        vault = {} if vault is None else vault
        spans = self._spans(text, gates, low)
        if not spans:
            return text, vault, ()
        spans.sort(key=_order)
        kept: list[tuple[str, int, int]] = []
        end = -1
        for kind, start, stop, _rank in spans:
            if start >= end:
                kept.append((kind, start, stop))
                end = stop
        if not kept:
            return text, vault, ()
        reverse = {v: k for k, v in vault.items()}
        out: list[str] = []
        findings: list[Finding] = []
        at = 0
        for kind, start, stop in kept:
            value = text[start:stop]
            placeholder = reverse.get(value) or _new_placeholder(vault, kind)
            vault[placeholder] = value
            reverse[value] = placeholder
            out += [text[at:start], placeholder]
            findings.append(Finding(kind, start, stop, placeholder))
            at = stop
        out.append(text[at:])
        return "".join(out), vault, tuple(findings)

    def _spans(
        self, text: str, gates: set[str] | None, low: str | None
    ) -> list[tuple[str, int, int, int]]:
        spans = [
            (kind, start, stop, rank)
            for kind, start, stop, rank in find_pii(text, gates, low)
            if "[" not in text[start:stop] or not _PLACEHOLDER.fullmatch(text[start:stop])
        ]
        if self._secrets is not None:
            spans += [("secret", m.start(), m.end(), -1) for m in self._secrets.finditer(text)]
        return spans


def _order(span: tuple[str, int, int, int]) -> tuple[int, int, int]:
    """Earliest first, then longest, then the more specific kind (a ``ghp_`` token
    inside ``https://user:…@`` is a URL password, a ``sk-`` value after ``KEY=`` is an
    API key rather than a generic secret)."""
    return span[1], -span[2], span[3]


def _new_placeholder(vault: Mapping[str, str], kind: str) -> str:
    prefix = f"[{kind.upper()}_"
    n = sum(1 for k in vault if k.startswith(prefix)) + 1
    return f"{prefix}{n}]"


def shareable(vault: Mapping[str, str]) -> dict[str, str]:
    """The vault without configured secrets: what may be put back into text a person
    sees (their own values), never a secret."""
    return {k: v for k, v in vault.items() if not k.startswith("[SECRET")}


def restore(text: str, vault: Mapping[str, str]) -> str:
    """``text`` with the vault's placeholders put back (others left as they are)."""
    if not vault or "[" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: vault.get(m.group(0), m.group(0)), text)
