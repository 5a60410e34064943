"""Payloads hidden by base64, hex, rot13 or ``\\u`` escapes, decoded so they can be
scored again. Looked for only when the prefilter's pass over the lowered text found
a hint (``HINTS``): a word such as "base64" or "decode", ``==`` padding, "hex",
"rot13", an escape. Scanning every text for base64 runs is not cheap (and a run
pattern in the prefilter would make its DFA far larger); decoding what is found is."""

from __future__ import annotations

import base64
import binascii
import codecs
import re

from orchestrator.injection.prefilter import Finder

# RE2 syntax, on the lowered text: what makes decoding worth it, by name.
HINTS = {
    "base64": r"base64|b64|atob|decod|encoded|[a-z0-9+/]==",
    "hex": r"hex",
    "rot13": r"rot-?13",
    "escape": r"\\[ux][0-9a-f]{2}",
}
_B64 = Finder(r"[A-Za-z0-9+/]{24,}={0,2}")
_HEX = Finder(r"\b(?:[0-9a-f]{2}){12,}\b")
_ESCAPE = re.compile(r"\\(?:u([0-9a-f]{4})|x([0-9a-f]{2}))")


def decoded(text: str, low: str, hints: set[str]) -> list[str]:
    """Texts hidden in ``text`` (lowered: ``low``), decoded; only readable ones.
    ``hints``: the names of the ``HINTS`` found in ``low``."""
    out: list[str] = []
    if "base64" in hints:
        out += [_b64(run) for run in _B64.findall(text)]
    if "hex" in hints:
        out += [bytes.fromhex(run).decode("utf-8", "replace") for run in _HEX.findall(low)]
    if "rot13" in hints:
        out.append(codecs.decode(text, "rot13"))
    if "escape" in hints:
        out.append(_ESCAPE.sub(lambda m: chr(int(m[1] or m[2], 16)), low))
    return [t for t in out if " " in t and sum(map(str.isprintable, t)) > 0.95 * len(t)]


def _b64(value: str) -> str:
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", "replace")
