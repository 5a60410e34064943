"""Fitting the injection model (``model.json``) on the labelled corpus.

An L2-regularised logistic regression over ``model.features``, fitted by full-batch
Adam in plain Python (no numerical library: a corpus of a few thousand short texts
fits in seconds). The decision threshold is chosen by cross-validation: the lowest
probability at which the out-of-fold false-positive rate on the benign half stays at
or under ``MAX_FPR``. Words seen in fewer than ``MIN_COUNT`` texts are left out, so the
model does not learn a text by heart.

    uv run python -m orchestrator.injection.training   # rewrites model.json, prints CV

Everything is deterministic (fixed fold seed, no sampling): the same corpus and signal
table give the same ``model.json``.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from orchestrator.injection.model import SIGNAL, Model, sigmoid
from orchestrator.injection.scoring import Detector

C = 1.0  # inverse L2 strength (as scikit-learn's ``C``)
MIN_COUNT = 2
MAX_FPR = 0.03
FOLDS = 5
ITERATIONS = 300
_RATE = 0.05
Sample = tuple[frozenset[str], bool]  # features, is an injection
CORPUS = Path(__file__).resolve().parents[2] / "tests" / "data" / "injection.jsonl"
MODEL = Path(__file__).resolve().with_name("model.json")


def samples(rows: Sequence[dict[str, object]], detector: Detector) -> list[Sample]:
    """What the model reads of each labelled row (``detector``: the signals)."""
    return [
        (frozenset(detector.features(str(row["text"]))[0]), row["label"] == "injection")
        for row in rows
    ]


def fit(data: Sequence[Sample], threshold: float = 0.5) -> Model:
    """A model fitted on ``data`` (with the given decision ``threshold``)."""
    counts = Counter(f for feats, _ in data for f in feats)
    vocab = sorted(f for f, n in counts.items() if n >= MIN_COUNT or f.startswith(SIGNAL))
    index = {f: i for i, f in enumerate(vocab)}
    rows = [
        ([index[f] for f in feats if f in index], 1.0 if label else 0.0) for feats, label in data
    ]
    w, bias = _adam(rows, len(vocab))
    weights = {f: round(w[i], 4) for i, f in enumerate(vocab) if abs(w[i]) >= 1e-3}
    return Model(weights, round(bias, 4), threshold)


def _adam(rows: list[tuple[list[int], float]], size: int) -> tuple[list[float], float]:
    w = [0.0] * (size + 1)  # the last one is the bias (not regularised)
    m = [0.0] * (size + 1)
    s = [0.0] * (size + 1)
    b1, b2 = 0.9, 0.999
    for step in range(1, ITERATIONS + 1):
        grad = [x / C for x in w]
        grad[size] = 0.0
        for idx, y in rows:
            z = w[size] + sum(w[i] for i in idx)
            err = sigmoid(z) - y
            for i in idx:
                grad[i] += err
            grad[size] += err
        for i, g in enumerate(grad):
            m[i] = b1 * m[i] + (1 - b1) * g
            s[i] = b2 * s[i] + (1 - b2) * g * g
            mh, sh = m[i] / (1 - b1**step), s[i] / (1 - b2**step)
            w[i] -= _RATE * mh / (math.sqrt(sh) + 1e-8)
    return w[:size], w[size]


def cross_validate(data: Sequence[Sample], folds: int = FOLDS) -> list[tuple[float, bool]]:
    """Each sample's probability from a model fitted without its fold, and its label."""
    order = list(range(len(data)))
    random.Random(0).shuffle(order)  # noqa: S311 - folds, not secrets
    fold_of = {i: k % folds for k, i in enumerate(order)}
    out: list[tuple[float, bool]] = [(0.0, False)] * len(data)
    for fold in range(folds):
        model = fit([d for i, d in enumerate(data) if fold_of[i] != fold])
        for i, (feats, label) in enumerate(data):
            if fold_of[i] == fold:
                out[i] = (model.probability(feats), label)
    return out


def rates(scored: Sequence[tuple[float, bool]], threshold: float) -> tuple[float, float]:
    """Recall over the injections and FPR over the benign, flagging at ``threshold``."""
    hits = [p >= threshold for p, label in scored if label]
    alarms = [p >= threshold for p, label in scored if not label]
    return sum(hits) / max(1, len(hits)), sum(alarms) / max(1, len(alarms))


def choose_threshold(scored: Sequence[tuple[float, bool]], max_fpr: float = MAX_FPR) -> float:
    """The lowest threshold (in steps of 0.05, from 0.5) whose FPR is at most ``max_fpr``."""
    for step in range(10, 20):
        threshold = step / 20
        if rates(scored, threshold)[1] <= max_fpr:
            return threshold
    return 0.95


def main() -> None:
    """Fit on the corpus, choose the threshold by cross-validation, write the model."""
    with CORPUS.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    data = samples(rows, Detector(model=Model({}, 0.0, 0.5)))  # its signals only
    scored = cross_validate(data)
    threshold = choose_threshold(scored)
    recall, fpr = rates(scored, threshold)
    model = fit(data, threshold)
    MODEL.write_text(json.dumps(model.as_json(), indent=0, sort_keys=True) + "\n", "utf-8")
    print(
        f"{len(rows)} texts, {len(model.weights)} weights; {FOLDS}-fold CV at threshold "
        f"{threshold}: recall {recall:.3f}, FPR {fpr:.3f}; wrote {MODEL}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
