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
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from importlib import resources

from orchestrator.injection.views import Views

# Every ASCII character that is not a letter, digit or underscore becomes a space.
_TOKEN_VIEW = bytes(b if chr(b).isalnum() or b == 95 else 32 for b in range(128)) + bytes(
    range(128, 256)
)
SIGNAL = "signal: "  # a feature naming a matched signal (its reason)
FLAGGED = "signals: flagged"  # the signals alone score 0.5 or more
SOME = "signals: some"  # some signal matched
_TELLING = 0.2  # a word that weighs more than this is quoted as evidence


def words(v: Views) -> set[str]:
    """The distinct words of a text, lowered: split at spaces and ASCII punctuation
    (one ``translate`` of its UTF-8 bytes, which leaves other characters as they are)."""
    return set(v.low.encode().translate(_TOKEN_VIEW).decode().split())


def features(text_words: set[str], reasons: Iterable[str], signal_score: float) -> set[str]:
    """What the model reads of a text: its ``words`` (see ``words``; the set is
    extended in place), and the signals that matched (by reason) with how much they
    scored."""
    text_words.update(SIGNAL + r for r in reasons)
    if signal_score > 0:
        text_words.add(SOME)
    if signal_score >= 0.5:
        text_words.add(FLAGGED)
    return text_words


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
        return frozenset(
            f for f, w in self.weights.items() if w > _TELLING and not f.startswith("signal")
        )

    def probability(self, feats: AbstractSet[str]) -> float:
        """The model's probability that a text with ``feats`` is an injection."""
        return self.weigh(feats)[0]

    def weigh(self, feats: AbstractSet[str], most: int = 4) -> tuple[float, list[str]]:
        """The probability, and the words that pushed it up most (``most`` of them)."""
        present = feats & self._known  # one pass over the text's features
        weight = self.weights.__getitem__
        z = self.bias + sum(map(weight, present))
        evidence = sorted(present & self._telling, key=lambda f: (-weight(f), f))[:most]
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
