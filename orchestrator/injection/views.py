"""The views of a text that screening reads, made once per text.

``low`` is the lowered text with a space in front (so every word, the first one too,
follows a space). ``norm`` is the word view: the punctuation that can stand before a
word (``(ignore``, ``'ignore``, ``<|im_start|>``, ``- ignore``) turned into spaces, one
character for one, so offsets in ``low`` and ``norm`` line up.

Zero-width characters are dropped first, so ``i\u200bgnore`` reads as ``ignore``: the
views of such a text do not line up with the text itself. Curly quotes, dashes and a
few other typographic characters become their ASCII look-alikes, one for one, and so
do full-width forms (``ｉｇｎｏｒｅ``). In a word that mixes Latin letters with Cyrillic or
Greek ones that look the same (``іgnоrе``, ``IGΝORE``), or is made of such look-alikes
only (``а``, ``και``), those become the Latin letters; a word that has letters of its
own script with no Latin look-alike (most Russian or Greek words) keeps them all.

When the compiled core is built, the lowering, the dropping, the typographic stand-ins
and the word view are one pass in it (``_words.fold``), and so, for a text with
non-ASCII characters, are the full-width forms and look-alikes (``_words.latin``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

try:
    from orchestrator.injection._words import fold, latin
except ImportError:  # not compiled (see hatch_build.py): ``views`` does the same in Python
    fold = None  # type: ignore[assignment]
    latin = None  # type: ignore[assignment]

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
# Cyrillic and Greek letters drawn like a Latin one; read before lowering, since a
# capital Greek Ν is an N where its small ν is a v.
_LOOKALIKES = {
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c",
    "\u0443": "y", "\u0445": "x", "\u0456": "i", "\u0458": "j", "\u0455": "s",
    "\u04bb": "h", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04cf": "l",
    "\u043a": "k", "\u0475": "v", "\u03b1": "a", "\u03bf": "o", "\u03bd": "v",
    "\u03b9": "i", "\u03ba": "k", "\u03c1": "p", "\u03c5": "u", "\u03c7": "x",
    "\u03b5": "e", "\u0131": "i", "\u0261": "g",
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M",
    "\u041d": "H", "\u041e": "O", "\u0420": "P", "\u0421": "C", "\u0422": "T",
    "\u0425": "X", "\u0423": "Y", "\u0406": "I", "\u0408": "J", "\u0405": "S",
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H",
    "\u0399": "I", "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O",
    "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X",
}  # fmt: skip
_LATIN = str.maketrans(_LOOKALIKES)
# One search says whether a text has either (most have neither).
_DISGUISED = re.compile(f"[\uff01-\uff5e\u3000{''.join(_LOOKALIKES)}]")
_LOOKALIKE_WORD = re.compile(f"(?<!\\w)\\w*?[{''.join(_LOOKALIKES)}]\\w*")
_SYMBOL = re.compile(r"[^\x00-\x7f](?<!\w)|[\n\t\r'\"`(\[{<*#\-/|>\\=]")


class Views(NamedTuple):
    """The lowered text, and its word view (same length)."""

    low: str
    norm: str


def views(text: str) -> Views:
    """The views of ``text`` (see the module docstring)."""
    if not text.isascii():
        text = _undisguised(text)
    if fold is not None:
        return tuple.__new__(Views, fold(text))  # as below, in one pass (and no Python frame)
    low = " " + text.lower()
    if low.isascii():
        return Views(low, low.encode("ascii").translate(_WORD_VIEW).decode("ascii"))
    for ch in _ZERO_WIDTH:
        if ch in low:
            low = low.replace(ch, "")
    for ch, ascii in _TYPOGRAPHIC:
        if ch in low:
            low = low.replace(ch, ascii)
    return Views(low, _SYMBOL.sub(" ", low))


def _undisguised(text: str) -> str:
    """``text`` with full-width forms made ASCII and look-alike letters made Latin
    where ``_latin`` says (in one pass in the compiled core when it is built)."""
    if latin is not None:
        return latin(text)  # the same as below
    if _DISGUISED.search(text):
        return _LOOKALIKE_WORD.sub(_latin, text.translate(_FULL_WIDTH))
    return text


def _latin(word: re.Match[str]) -> str:
    """A word with its look-alike letters made Latin, when it mixes them with Latin
    letters or has no other letters (a word with letters of its own script that look
    like no Latin one is left alone)."""
    text = word.group()
    mixed = any(ch.isascii() and ch.isalpha() for ch in text)
    if mixed or all(ch in _LOOKALIKES or not ch.isalpha() for ch in text):
        return text.translate(_LATIN)
    return text
