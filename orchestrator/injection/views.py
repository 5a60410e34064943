"""The views of a text that screening reads, made once per text (the word view only when needed).

``low`` is the lowered text with a space in front (so every word, the first one too,
follows a space). ``norm`` is the word view: the punctuation that can stand before a
word (``(ignore``, ``'ignore``, ``<|im_start|>``, ``- ignore``) turned into spaces, one
character for one, so offsets in ``low`` and ``norm`` line up.

Zero-width characters are dropped first, so ``i\u200bgnore`` reads as ``ignore``: the
views of such a text do not line up with the text itself. Curly quotes, dashes and a
few other typographic characters become their ASCII look-alikes, one for one.
"""

from __future__ import annotations

import re

_BEFORE_WORD = "\n\t\r'\"`([{<*#-/|>\\="
_WORD_VIEW = bytes(32 if chr(b) in _BEFORE_WORD else b for b in range(256))
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
# Typographic characters and their ASCII stand-ins, one for one (so the views of a
# text that has nothing else outside ASCII take the fast ASCII paths).
_TYPOGRAPHIC = (
    ("\u2019", "'"),
    ("\u2018", "'"),
    ("\u201c", '"'),
    ("\u201d", '"'),
    ("\u2014", "-"),
    ("\u2013", "-"),
    ("\u2010", "-"),
    ("\u2011", "-"),
    ("\u2026", "."),
    ("\u00a0", " "),
    ("\u202f", " "),
    ("\u2022", "*"),
    ("\u00b7", "*"),
    ("\u2192", ">"),
    ("\u00d7", "x"),
)
_SYMBOL = re.compile(r"[^\x00-\x7f](?<!\w)|[\n\t\r'\"`(\[{<*#\-/|>\\=]")


class Views:
    """The lowered text, and its word view (same length, made when first asked for)."""

    __slots__ = ("_norm", "low")

    def __init__(self, low: str) -> None:
        self.low = low
        self._norm = ""

    @property
    def norm(self) -> str:
        """The word view of ``low``."""
        if not self._norm:
            low = self.low
            if low.isascii():
                self._norm = low.encode("ascii").translate(_WORD_VIEW).decode("ascii")
            else:
                self._norm = _SYMBOL.sub(" ", low)
        return self._norm


def views(text: str) -> Views:
    """The views of ``text`` (see the module docstring)."""
    low = " " + text.lower()
    if not low.isascii():
        for ch in _ZERO_WIDTH:
            if ch in low:
                low = low.replace(ch, "")
        for ch, ascii in _TYPOGRAPHIC:
            if ch in low:
                low = low.replace(ch, ascii)
    return Views(low)
