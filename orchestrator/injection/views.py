"""The views of a text that screening reads, made once per text (the word view only when needed).

``low`` is the lowered text with a space in front (so every word, the first one too,
follows a space). ``norm`` is the word view: the punctuation that can stand before a
word (``(ignore``, ``'ignore``, ``<|im_start|>``, ``- ignore``) turned into spaces, one
character for one, so offsets in ``low`` and ``norm`` line up.

Zero-width characters are dropped first, so ``i\u200bgnore`` reads as ``ignore``: the
views of such a text do not line up with the text itself. Curly quotes, dashes and a
few other typographic characters become their ASCII look-alikes, one for one, and so
do full-width forms (``ｉｇｎｏｒｅ``). In a word that mixes Latin letters with Cyrillic or
Greek ones that look the same (``іgnоrе``), or is made of such look-alikes only, those
become the Latin letters; a Russian or Greek word keeps its letters.
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
# Full-width forms (U+FF01-FF5E) are ASCII 0x21-0x7E shifted; U+3000 is a full-width space.
_FULL_WIDTH = {0xFF01 + i: 0x21 + i for i in range(0x5E)} | {0x3000: 0x20}
# Lowercase Cyrillic and Greek letters drawn like a Latin one (after ``lower()``).
_LOOKALIKES = {
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c",
    "\u0443": "y", "\u0445": "x", "\u0456": "i", "\u0458": "j", "\u0455": "s",
    "\u04bb": "h", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04cf": "l",
    "\u043a": "k", "\u0475": "v", "\u03b1": "a", "\u03bf": "o", "\u03bd": "v",
    "\u03b9": "i", "\u03ba": "k", "\u03c1": "p", "\u03c5": "u", "\u03c7": "x",
    "\u03b5": "e", "\u0131": "i", "\u0261": "g",
}  # fmt: skip
_LATIN = str.maketrans(_LOOKALIKES)
# One search says whether a text has either (most have neither).
_DISGUISED = re.compile(f"[\uff01-\uff5e\u3000{''.join(_LOOKALIKES)}]")
_LOOKALIKE_WORD = re.compile(f"(?<!\\w)\\w*?[{''.join(_LOOKALIKES)}]\\w*")
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
        if _DISGUISED.search(low):
            low = _LOOKALIKE_WORD.sub(_latin, low.translate(_FULL_WIDTH))
    return Views(low)


def _latin(word: re.Match[str]) -> str:
    """A word with its look-alike letters made Latin, when it mixes them with Latin
    letters or has no other letters (a word of its own script is left alone)."""
    text = word.group()
    mixed = any("a" <= ch <= "z" for ch in text)
    if mixed or all(ch in _LOOKALIKES or not ch.isalpha() for ch in text):
        return text.translate(_LATIN)
    return text
