"""Screening quality on the labelled corpora, and its speed, measured in one run.

Quality. ``tests/data/pii.jsonl``: every labelled value is located in its text, and a
redaction (a ``Finding``) matches it when it covers the value or overlaps at least 80%
of it, whatever kind it names (a redacted value is what matters). Recall is per
labelled value, precision per redaction; both are printed overall and per kind.
``tests/data/injection.jsonl``: a text is flagged when ``Screener.injection`` says so;
recall over the injections, FPR over the benign texts, precision over the flagged.
The learned model was fitted on that corpus, so the benchmark also cross-validates it
(5 folds, each scored by a model fitted without it), the corpus figure it has not seen.
The corpus is also scored in disguise: every text written in full-width forms, and
with a third of its letters that have a Cyrillic look-alike (small or capital) swapped
for it (``DISGUISES``).
Every ``tests/data/injection_holdout*.jsonl`` is scored the same way, each on its own:
those are written apart from the detector and never used to tune it, so only their
figures are reported, never their texts (not even with ``--json``).

Speed. 1 KB texts are built from the corpora (seeded): mostly clean texts (benign
requests, code and log pastes, PII look-alikes), one in ten with a PII text in it, one
in ten with an injection. A process's first screens are slower (RE2 builds its DFA
states as texts come): the first ``--texts`` screened are the warm-up, reported apart
as the cold start. Then each round screens ``--texts`` texts never screened before,
single-threaded, as a long-running worker sees them: the median round gives screens/s,
all rounds give p50/p99 latency of one ``screen``. A baseline runs over the same texts
in the same process — ``lower()`` plus one ``re.search`` for "ignore previous
instructions" — and the ratio says what the screening costs on top.

    uv run python benchmarks/screening.py [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.injection import training, wordseq
from orchestrator.injection.model import Model, shipped
from orchestrator.injection.scoring import Detector
from orchestrator.screening import Screener

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
TARGETS = {
    "pii_recall": 0.95,
    "pii_precision": 0.90,
    "injection_recall": 0.80,
    "injection_fpr": 0.05,
    "screens_per_s": 20_000,
    "p99_ms": 1.0,
}
Span = tuple[int, int]


def load(name: str) -> list[dict[str, object]]:
    """The rows of ``tests/data/<name>``."""
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def matches(predicted: Span, labelled: Span) -> bool:
    """A redaction matches a labelled value when it covers it or overlaps >= 80% of it."""
    (ps, pe), (ls, le) = predicted, labelled
    if ps <= ls and pe >= le:
        return True
    return max(0, min(pe, le) - max(ps, ls)) >= 0.8 * (le - ls)


def locate(text: str, values: Iterable[str]) -> list[Span]:
    """Where each labelled value is in ``text`` (a repeated value: its next occurrence)."""
    spans: list[Span] = []
    for value in values:
        start = text.find(value)
        while start >= 0 and (start, start + len(value)) in spans:
            start = text.find(value, start + 1)
        if start < 0:
            raise ValueError(f"labelled value {value!r} is not in its text {text!r}")
        spans.append((start, start + len(value)))
    return spans


@dataclass
class Tally:
    """Labelled values found or missed, and redactions right or wrong, for one kind."""

    found: int = 0
    missed: int = 0
    right: int = 0
    wrong: int = 0
    misses: list[str] = field(default_factory=list)
    wrongs: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / (self.found + self.missed) if self.found + self.missed else 1.0

    @property
    def precision(self) -> float:
        return self.right / (self.right + self.wrong) if self.right + self.wrong else 1.0


def _labels(row: dict[str, object]) -> list[tuple[str, str]]:
    spans = row["spans"]
    assert isinstance(spans, list), row
    return [(str(span["kind"]), str(span["value"])) for span in spans]


def pii_scores(rows: Sequence[dict[str, object]], screener: Screener) -> dict[str, Tally]:
    """Per kind and ``"all"``: recall over labelled values, precision over redactions."""
    tallies: dict[str, Tally] = {"all": Tally()}
    for row in rows:
        text = str(row["text"])
        labels = _labels(row)
        spans = locate(text, (value for _, value in labels))
        _, _, findings = screener.redact(text)
        predicted = [(f.start, f.end) for f in findings]
        for (kind, value), span in zip(labels, spans, strict=True):
            hit = any(matches(p, span) for p in predicted)
            for key in ("all", kind):
                tally = tallies.setdefault(key, Tally())
                tally.found += hit
                tally.missed += not hit
                if not hit:
                    tally.misses.append(value)
        for finding, p in zip(findings, predicted, strict=True):
            ok = any(matches(p, span) for span in spans)
            for key in ("all", finding.kind):
                tally = tallies.setdefault(key, Tally())
                tally.right += ok
                tally.wrong += not ok
                if not ok:
                    tally.wrongs.append(text[p[0] : p[1]])
    return tallies


@dataclass
class InjectionScore:
    """Flagged injections and benign texts, with the ones that went the wrong way."""

    recall: float
    precision: float
    fpr: float
    missed: list[str]
    false_alarms: list[str]


def injection_scores(rows: Sequence[dict[str, object]], screener: Screener) -> InjectionScore:
    """Recall over the injections, FPR over the benign texts, precision over the flagged."""
    flagged: Counter[str] = Counter()
    total: Counter[str] = Counter()
    missed: list[str] = []
    false_alarms: list[str] = []
    for row in rows:
        text, label = str(row["text"]), str(row["label"])
        hit = screener.injection(text).flagged
        total[label] += 1
        flagged[label] += hit
        if label == "injection" and not hit:
            missed.append(text)
        if label != "injection" and hit:
            false_alarms.append(text)
    benign = total.total() - total["injection"]
    alarms = flagged.total()
    return InjectionScore(
        recall=flagged["injection"] / total["injection"],
        precision=flagged["injection"] / alarms if alarms else 1.0,
        fpr=(alarms - flagged["injection"]) / benign,
        missed=missed,
        false_alarms=false_alarms,
    )


def full_width(text: str) -> str:
    """``text`` in full-width forms (U+FF01-FF5E, U+3000 for a space)."""
    return "".join(_WIDE.get(c, c) for c in text)


def look_alikes(text: str) -> str:
    """``text`` with each of its letters that has a Cyrillic look-alike swapped for it
    when it stands at a position divisible by three (about a third of them)."""
    return "".join(_CYRILLIC.get(c, c) if i % 3 == 0 else c for i, c in enumerate(text))


_WIDE = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {" ": "\u3000"}
_CYRILLIC = dict(
    zip(
        "aeopcxysAEOPCXTHM",
        "\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u0455\u0410\u0415\u041e\u0420\u0421\u0425\u0422\u041d\u041c",
        strict=True,
    )
)
DISGUISES: dict[str, Callable[[str], str]] = {"full-width": full_width, "look-alikes": look_alikes}


def texts_1kb(
    pii: Sequence[dict[str, object]], injection: Sequence[dict[str, object]], n: int
) -> list[str]:
    """``n`` texts of about 1 KB: clean, one in ten with PII, one in ten an injection."""
    rng = random.Random(7)
    clean = [str(r["text"]) for r in injection if r["label"] != "injection"]
    clean += [str(r["text"]) for r in pii if not r["spans"]]
    with_pii = [str(r["text"]) for r in pii if r["spans"]]
    attacks = [str(r["text"]) for r in injection if r["label"] == "injection"]
    out = []
    for i in range(n):
        parts = [rng.choice(with_pii if i % 10 == 1 else attacks)] if i % 10 in (1, 2) else []
        while sum(len(p) + 1 for p in parts) < 1000:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(clean))
        out.append("\n".join(parts)[:1024])
    return out


def timed(fn: Callable[[str], object], batches: Sequence[Sequence[str]]) -> tuple[float, list[int]]:
    """Calls per second (the median batch's), and every call's latency in ns."""
    rates, latencies = [], []
    clock = time.perf_counter_ns
    for texts in batches:
        started = clock()
        for text in texts:
            t0 = clock()
            fn(text)
            latencies.append(clock() - t0)
        rates.append(len(texts) / ((clock() - started) / 1e9))
    return statistics.median(rates), latencies


def percentile(values: list[int], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank), in ms."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


@dataclass
class Speed:
    """Screens per second (median round of new texts), latency quantiles, the
    baseline's rate, the cold start (a fresh process's first texts), and whether the
    compiled core weighed the model's words and found the word chains."""

    texts: int
    mean_bytes: float
    screens_per_s: float
    p50_ms: float
    p99_ms: float
    baseline_per_s: float
    cold_per_s: float
    cold_p99_ms: float
    compiled: bool

    @property
    def slower_than_baseline(self) -> float:
        return self.baseline_per_s / self.screens_per_s


@dataclass
class Result:
    """Everything one run measured."""

    pii: dict[str, Tally]
    injection: InjectionScore
    speed: Speed
    held_out: dict[str, InjectionScore] = field(default_factory=dict)
    cross_validated: tuple[float, float] = (0.0, 0.0)  # recall, FPR
    disguised: dict[str, InjectionScore] = field(default_factory=dict)

    def measured(self) -> dict[str, float]:
        """The value behind each target in ``TARGETS``."""
        return {
            "pii_recall": self.pii["all"].recall,
            "pii_precision": self.pii["all"].precision,
            "injection_recall": self.injection.recall,
            "injection_fpr": self.injection.fpr,
            "screens_per_s": self.speed.screens_per_s,
            "p99_ms": self.speed.p99_ms,
        }

    def verdicts(self) -> dict[str, bool]:
        """Whether each target is met."""
        lower_is_better = ("injection_fpr", "p99_ms")
        return {
            k: v <= TARGETS[k] if k in lower_is_better else v >= TARGETS[k]
            for k, v in self.measured().items()
        }

    def as_json(self) -> dict[str, object]:
        """A JSON-able view, targets included."""
        met = self.verdicts()
        return {
            "pii": {
                k: {"recall": t.recall, "precision": t.precision, "values": t.found + t.missed}
                for k, t in sorted(self.pii.items())
            },
            "pii_misses": self.pii["all"].misses,
            "pii_wrong": self.pii["all"].wrongs,
            "injection": asdict(self.injection),
            "injection_cross_validated": dict(
                zip(("recall", "fpr"), self.cross_validated, strict=True)
            ),
            "injection_disguised": {
                name: {"recall": h.recall, "precision": h.precision, "fpr": h.fpr}
                for name, h in self.disguised.items()
            },
            "injection_held_out": {
                name: {"recall": h.recall, "precision": h.precision, "fpr": h.fpr}
                for name, h in self.held_out.items()
            },
            "speed": asdict(self.speed) | {"slower_than_baseline": self.speed.slower_than_baseline},
            "targets": {k: {"value": v, "met": met[k]} for k, v in self.measured().items()},
        }


def run(rounds: int, n: int) -> Result:
    """Score both corpora, then time ``screen`` and the baseline on ``n`` 1 KB texts."""
    screener = Screener()
    pii, injection = load("pii.jsonl"), load("injection.jsonl")
    texts = texts_1kb(pii, injection, n * (rounds + 1))
    warm_up, rounds_of = texts[:n], [texts[n * (r + 1) : n * (r + 2)] for r in range(rounds)]
    cold_rate, cold_latencies = timed(screener.screen, [warm_up])
    baseline_pattern = re.compile(r"ignore (?:all )?previous instructions")
    base_rate, _ = timed(lambda t: baseline_pattern.search(t.lower()), rounds_of)
    rate, latencies = timed(screener.screen, rounds_of)
    speed = Speed(
        texts=n,
        mean_bytes=statistics.mean(len(t.encode()) for t in texts),
        screens_per_s=rate,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        baseline_per_s=base_rate,
        cold_per_s=cold_rate,
        cold_p99_ms=percentile(cold_latencies, 0.99),
        compiled=shipped().compiled and wordseq.COMPILED,
    )
    held_out = {
        path.name: injection_scores(load(path.name), screener)
        for path in sorted(DATA.glob("injection_holdout*.jsonl"))
    }
    disguised = {
        name: injection_scores(
            [{**r, "text": disguise(str(r["text"]))} for r in injection], screener
        )
        for name, disguise in DISGUISES.items()
    }
    return Result(
        pii_scores(pii, screener),
        injection_scores(injection, screener),
        speed,
        held_out,
        cross_validated(injection),
        disguised,
    )


def cross_validated(rows: Sequence[dict[str, object]]) -> tuple[float, float]:
    """Recall and FPR on the corpus when each fold is scored by a model fitted without
    it (at the shipped model's threshold): the corpus figure the model has not seen."""
    data = training.samples(rows, Detector(model=Model({}, 0.0, 0.5)))
    return training.rates(training.cross_validate(data), shipped().threshold)


def report(result: Result) -> None:
    """Print the result for a person."""
    print("PII (span-level: a redaction covers the value or overlaps >= 80% of it)")
    print(f"  {'kind':<14}{'recall':>8}{'precision':>11}{'values':>8}")
    for kind, t in sorted(result.pii.items()):
        print(f"  {kind:<14}{t.recall:>8.3f}{t.precision:>11.3f}{t.found + t.missed:>8}")
    if result.pii["all"].misses or result.pii["all"].wrongs:
        print(f"  missed: {result.pii['all'].misses}  wrong: {result.pii['all'].wrongs}")
    inj = result.injection
    print(f"Injection (flagged = the model's probability >= {shipped().threshold})")
    print(f"  recall {inj.recall:.3f}  precision {inj.precision:.3f}  FPR {inj.fpr:.3f}")
    cv_recall, cv_fpr = result.cross_validated
    print(f"  cross-validated (5 folds): recall {cv_recall:.3f}  FPR {cv_fpr:.3f}")
    for text in inj.missed:
        print(f"  missed: {text[:100]!r}")
    for text in inj.false_alarms:
        print(f"  false alarm: {text[:100]!r}")
    for name, hidden in result.disguised.items():
        print(
            f"  in disguise ({name}): recall {hidden.recall:.3f}"
            f"  precision {hidden.precision:.3f}  FPR {hidden.fpr:.3f}"
        )
    for name, held in result.held_out.items():
        # Written apart from the detector and never used to tune it: the honest figure
        # for texts the signals were not shaped on (the corpus above was seen while
        # tuning). Figures only: printing the texts would let them shape the signals.
        print(
            f"  held out (tests/data/{name}): recall {held.recall:.3f}"
            f"  precision {held.precision:.3f}  FPR {held.fpr:.3f}"
        )
    s = result.speed
    print(
        f"Speed (rounds of {s.texts} new texts of {s.mean_bytes:.0f} bytes on average, one"
        f" thread; words weighed and chains found in"
        f" {'C' if s.compiled else 'Python: the core is not built'})"
    )
    print(f"  screen    {s.screens_per_s:>10,.0f}/s  p50 {s.p50_ms:.3f} ms  p99 {s.p99_ms:.3f} ms")
    print(
        f"  cold start{s.cold_per_s:>10,.0f}/s  p99 {s.cold_p99_ms:.3f} ms"
        f"  (a fresh process's first {s.texts})"
    )
    print(f"  baseline  {s.baseline_per_s:>10,.0f}/s  (lower() + one re.search)")
    print(f"  a screen costs {s.slower_than_baseline:.0f}x the baseline")
    print("Targets")
    met = result.verdicts()
    for name, value in result.measured().items():
        sign = "<=" if name in ("injection_fpr", "p99_ms") else ">="
        verdict = "met" if met[name] else "NOT met"
        print(f"  {name:<17}{value:>12.3f}  (target {sign} {TARGETS[name]})  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.rounds, args.texts)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        report(result)


if __name__ == "__main__":
    main()
