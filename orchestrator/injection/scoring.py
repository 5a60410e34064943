"""The injection score of a text, and why.

The signals that match score ``1 - Π(1 - wᵢ)`` together (two medium signals add up to
a strong one); a payload hidden in an encoding is decoded and scored too, and if it
scores as an injection, that is a reason of its own. The score a text gets is the
learned model's (``model``): its probability, from the text's words and those signals.
The reasons are the signals', strongest first, then the words that weighed most.

A ``Detector`` can carry more RE2 patterns (``gates``) in its prefilter's one pass over
the text, for another detector to read from the same ``Scan``: ``Screener`` gates the
PII families that way, so a screen reads each text once for both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter

from orchestrator.injection import engine, table
from orchestrator.injection.encoded import HINTS, decoded
from orchestrator.injection.model import Model, features, shipped, words
from orchestrator.injection.prefilter import Scan
from orchestrator.injection.views import Views, views

try:
    from orchestrator.injection import _engine as _compiled
except ImportError:  # not compiled (see hatch_build.py): ``_score`` runs in Python
    _compiled = None  # type: ignore[assignment]

Score = tuple[float, tuple[str, ...]]
_LEARNED = "learned model"
_MOST = 4  # the most words the model's reason quotes
# From this probability the model gives a reason even when no word it weighed is one to
# quote (``model.quotable``): a text it leans to calling an injection is never left
# without one (the compiled core has its own copy).
_LEANS = 0.5
_WEIGHT, _REASON = itemgetter(0), itemgetter(1)


class Detector:
    """The signal table compiled, with ``gates`` (name -> RE2 pattern on the lowered
    text) in its prefilter, and the learned ``model`` that weighs words and signals."""

    def __init__(self, gates: Mapping[str, str] | None = None, model: Model | None = None) -> None:
        self.model = shipped() if model is None else model
        signals = table.load()
        extra = {**HINTS, **(gates or {})}
        self._index = engine.build(signals, tuple(extra.values()))
        first = len(self._index.signals)
        self._names = {first + i: name for i, name in enumerate(extra)}
        self._hints = {i: name for i, name in self._names.items() if name in HINTS}
        self._encoded = signals.reasons["encoded"]
        # (not a bound method: the compiled scorer holds it, and cannot be collected)
        self._hidden = functools.partial(_hidden, self._index, self._hints, self._encoded)
        # ``score`` in the compiled core, when it is built (decoding stays in Python)
        self._scorer: _compiled.Scorer | None = None
        parts = self.model.compiled_parts()
        if self._index.matcher is not None and parts is not None:
            hints = sorted(self._hints)
            self._scorer = _compiled.Scorer(
                self._index.matcher, *parts, hints, _LEARNED, _MOST, self._hidden, self._encoded
            )

    def scan(self, v: Views) -> Scan:
        """The prefilter's answer for ``v``."""
        return self._index.prefilter.pick(v.low)

    def gates(self, scan: Scan) -> set[str]:
        """The names of the gates (and hints) found in a scanned text."""
        return set(map(self._names.__getitem__, self._names.keys() & scan.candidates))

    def signals(
        self, text: str, v: Views | None = None, scan: Scan | None = None
    ) -> tuple[engine.Found, Score]:
        """The signals that match ``text`` (reason -> weight, quoted reason), what they
        score together and their reasons, a hidden payload's included."""
        v = views(text) if v is None else v
        scan = self.scan(v) if scan is None else scan
        found = engine.match(v, self._index, scan)
        hinted = self._hints.keys() & scan.candidates
        if hinted and (hidden := self._hidden(text, v.low, hinted)) is not None:
            found[self._encoded] = hidden
        return found, _score(found)

    def features(
        self, text: str, v: Views | None = None, scan: Scan | None = None
    ) -> tuple[set[str], Score]:
        """What the model reads of ``text`` (see ``model.features``; ``training`` fits
        on the same), and what the signals alone make of it."""
        v = views(text) if v is None else v
        found, signals = self.signals(text, v, scan)
        return features(words(v), found, signals[0]), signals

    def score(self, text: str, v: Views | None = None, scan: Scan | None = None) -> Score:
        """The injection score of ``text`` (views ``v``, prefilter answer ``scan``, when
        the caller has them): the model's probability, and the reasons, strongest
        first (the signals', then the words that weighed most)."""
        v = views(text) if v is None else v
        scan = self.scan(v) if scan is None else scan
        if self._scorer is not None:  # in C: the same as below (``weigh_text`` included)
            return self._scorer.score(v.low, v.norm, scan, text)
        found, (signal_score, reasons) = self.signals(text, v, scan)
        probability, evidence = self.model.weigh_text(v, found, signal_score, _MOST)
        if evidence:
            quoted = '"' + '", "'.join(evidence) + '"'
            reasons += (f"{_LEARNED}: {probability:.2f}, weighing the words {quoted}",)
        elif probability >= _LEANS:
            reasons += (f"{_LEARNED}: {probability:.2f}, from the words as a whole",)
        return round(probability, 4), reasons


def _hidden(
    index: engine.Index,
    hints: Mapping[int, str],
    encoded: str,
    text: str,
    low: str,
    hinted: Iterable[int],
) -> tuple[float, str] | None:
    """The signal ``encoded`` for a payload hidden in ``text`` (lowered: ``low``) that
    scores as an injection (the last one, if several do), or None; ``hinted``: the
    prefilter's hints (by index in ``hints``) the text has."""
    out = None
    for hidden in decoded(text, low, {hints[i] for i in hinted}):
        hidden_views = views(hidden)
        scan = index.prefilter.pick(hidden_views.low)
        score, reasons = _score(engine.match(hidden_views, index, scan))
        if score >= 0.5:
            out = (max(0.6, score), f"{encoded}: {reasons[0]}")
    return out


@functools.cache
def _default() -> Detector:
    return Detector()


def score_injection(text: str) -> Score:
    """The text's injection score (0..1) and the reasons, strongest first."""
    return _default().score(text)


def _score_in_python(found: engine.Found) -> Score:
    """``_score`` in Python (the compiled core's ``score`` is the same)."""
    if not found:
        return 0.0, ()
    remaining = 1.0
    for weight, _ in found.values():
        remaining *= 1.0 - weight
    strongest_first = sorted(found.values(), key=_WEIGHT, reverse=True)  # stable: ties keep order
    return round(1.0 - remaining, 4), tuple(map(_REASON, strongest_first))


# What the signals found score together (``1 - Π(1 - wᵢ)``, rounded), and their reasons,
# strongest first (ties in the order found).
_score: Callable[[engine.Found], Score] = _score_in_python if _compiled is None else _compiled.score
