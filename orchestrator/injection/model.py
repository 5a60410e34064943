"""The learned half of injection scoring: a logistic regression over the words of a
text and the signals that matched in it.

The signal table (``engine``) says *why* a text looks like an injection; it is precise
but only knows the phrasings it was written for. The model weighs the words around
them as well ("earlier guidance no longer applies", "your actual job is"), and it
weighs the signals themselves, so a signal that hard negatives also trip ("developer
mode" on a phone) counts for less than one that only attacks trip. Its weights,
vocabulary and decision threshold are data (``model.json``), made from the labelled
corpus by ``orchestrator.injection.training``; nothing here learns.
"""

from __future__ import annotations

import functools
import json
import math
import operator
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from importlib import resources
from itertools import chain, repeat

from orchestrator.injection.views import Views

try:
    from orchestrator.injection import _words
except ImportError:  # not compiled (see hatch_build.py): ``words`` and a set do the same
    _words = None  # type: ignore[assignment]

# Every ASCII character that is not a letter, digit or underscore becomes a space.
_TOKEN_VIEW = bytes(b if chr(b).isalnum() or b == 95 else 32 for b in range(128)) + bytes(
    range(128, 256)
)
SIGNAL = "signal: "  # a feature naming a matched signal (its reason)
FLAGGED = "signals: flagged"  # the signals alone score 0.5 or more
SOME = "signals: some"  # some signal matched
_TELLING = 0.2  # a word that weighs more than this is quoted as evidence (if ``quotable``)
# Words the model weighs but a reason never quotes: they tell a reader nothing of why a
# text looks like an injection (function words, and the pieces of "you'll", "we've";
# ``quotable`` leaves out single characters, the "t" of "don't" among them).
_UNQUOTED = frozenset(
    (
        "an", "the", "and", "or", "but", "so", "of", "to", "in", "on", "at", "by", "for",
        "from", "with", "as", "into", "about", "is", "are", "was", "were", "be", "been",
        "being", "am", "it", "its", "this", "that", "these", "those", "me", "my", "you",
        "your", "yours", "we", "our", "us", "he", "him", "his", "she", "her", "they", "them",
        "their", "do", "does", "did", "have", "has", "had", "not", "no", "if", "then", "than",
        "there", "here", "what", "which", "who", "whom", "when", "where", "how", "why", "all",
        "any", "every", "each", "just", "now", "also", "very", "too", "can", "will", "would",
        "could", "may", "might", "ll", "re", "ve",
    )
)  # fmt: skip


def words(v: Views) -> set[str]:
    """The distinct words of a text, lowered: split at spaces and ASCII punctuation
    (one ``translate`` of its UTF-8 bytes, which leaves other characters as they are)."""
    return set(v.low.encode().translate(_TOKEN_VIEW).decode().split())


def features(text_words: set[str], reasons: Iterable[str], signal_score: float) -> set[str]:
    """What the model reads of a text: its ``words`` (see ``words``; the set is
    extended in place), and the signals that matched (by reason) with how much they
    scored."""
    text_words.update(signal_features(reasons, signal_score))
    return text_words


def signal_features(reasons: Iterable[str], signal_score: float) -> list[str]:
    """The features that say which signals matched (by reason) and how much they
    scored: ``features`` but the words."""
    out = list(map(SIGNAL.__add__, reasons))
    if signal_score > 0:
        out.append(SOME)
    if signal_score >= 0.5:
        out.append(FLAGGED)
    return out


def quotable(word: str) -> bool:
    """Whether a reason may quote ``word`` as evidence: not a single character, not a
    number, not one of ``_UNQUOTED``."""
    return len(word) > 1 and not word.isdigit() and word not in _UNQUOTED


def sigmoid(z: float) -> float:
    """The logistic function (0 far below zero, without overflowing)."""
    return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0


@dataclass(frozen=True)
class Model:
    """Weights per feature (absent: 0), the bias, and the probability from which a
    text is flagged (chosen by cross-validation on the corpus, see ``training``)."""

    weights: dict[str, float]
    bias: float
    threshold: float

    @functools.cached_property
    def _known(self) -> frozenset[str]:
        return frozenset(self.weights)

    @functools.cached_property
    def _telling(self) -> frozenset[str]:
        """The words worth quoting as evidence (signals are reasons already)."""
        return frozenset(w for w in self._word_names if self.weights[w] > _TELLING and quotable(w))

    @functools.cached_property
    def _word_names(self) -> list[str]:
        """The features that are words (the others have a space in their name), the
        heaviest first: the order evidence is quoted in."""
        return sorted((f for f in self.weights if " " not in f), key=self._evidence_order)

    def _evidence_order(self, feature: str) -> tuple[float, str]:
        return -self.weights[feature], feature

    @functools.cached_property
    def _table(self) -> _words.Table | None:
        """The word weights in the compiled core (``_words.c``), if it is built."""
        if _words is None:
            return None
        names = self._word_names
        quiet = frozenset(w for w in names if not quotable(w))
        return _words.Table(names, [self.weights[w] for w in names], _TELLING, quiet)

    @functools.cached_property
    def _signal_weights(self) -> dict[str, float]:
        """The weights of the features naming a matched signal, by its reason (so that a
        screen makes no feature names)."""
        return {f[len(SIGNAL) :]: w for f, w in self.weights.items() if f.startswith(SIGNAL)}

    def compiled_parts(
        self,
    ) -> tuple[_words.Table, float, dict[str, float], float, float, list[str]] | None:
        """What a compiled scorer reads of the model (``_engine.Scorer``): the word table,
        the bias, the weights of the signals by reason, of "signals: some" and "signals:
        flagged", and the words the table's indexes name; None when it is not built."""
        if self._table is None:
            return None
        some, flagged = (self.weights.get(f, 0.0) for f in (SOME, FLAGGED))
        return self._table, self.bias, self._signal_weights, some, flagged, self._word_names

    @property
    def compiled(self) -> bool:
        """Whether texts are weighed by the compiled core (else in Python, slower)."""
        return self._table is not None

    def weigh_text(
        self, v: Views, reasons: Iterable[str], signal_score: float, most: int = 4
    ) -> tuple[float, list[str]]:
        """``weigh`` for a text (views ``v``) on which the signals with ``reasons``
        matched and scored ``signal_score`` together: its words weighed in one pass
        by the compiled core, or as ``features`` and ``weigh`` do when it is not built."""
        table = self._table
        if table is None:
            return self.weigh(features(words(v), reasons, signal_score), most)
        total, telling = table.weigh(v.low)
        z = self.bias + total
        if reasons or signal_score > 0:  # ``signal_features``' weights, added in its order
            per_reason = map(self._signal_weights.get, reasons, repeat(0.0))
            summary = map(self.weights.get, signal_features((), signal_score), repeat(0.0))
            # left to right, as ``_engine.Scorer`` adds them (``sum`` compensates from 3.12)
            z += functools.reduce(operator.add, chain(per_reason, summary), 0.0)
        if not telling:
            return sigmoid(z), []
        return sigmoid(z), list(map(self._word_names.__getitem__, sorted(telling)[:most]))

    def probability(self, feats: AbstractSet[str]) -> float:
        """The model's probability that a text with ``feats`` is an injection."""
        return self.weigh(feats)[0]

    def weigh(self, feats: AbstractSet[str], most: int = 4) -> tuple[float, list[str]]:
        """The probability, and the words that pushed it up most (``most`` of them)."""
        present = feats & self._known  # one pass over the text's features
        weight = self.weights.__getitem__
        z = self.bias + sum(map(weight, present))
        evidence = sorted(present & self._telling, key=self._evidence_order)[:most]
        return sigmoid(z), evidence

    def as_json(self) -> dict[str, object]:
        """What ``model.json`` holds."""
        return {"bias": self.bias, "threshold": self.threshold, "weights": self.weights}


def from_json(data: dict[str, object]) -> Model:
    """A model from what ``Model.as_json`` wrote."""
    weights = data["weights"]
    assert isinstance(weights, dict)
    return Model(
        {str(k): float(v) for k, v in weights.items()},
        float(str(data["bias"])),
        float(str(data["threshold"])),
    )


@functools.cache
def shipped() -> Model:
    """The model in ``orchestrator/injection/model.json``."""
    source = resources.files(__package__ or "orchestrator.injection") / "model.json"
    return from_json(json.loads(source.read_text(encoding="utf-8")))
