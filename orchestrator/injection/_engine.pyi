import re
from collections.abc import Callable, Sequence
from typing import Any

class Matcher:
    def __init__(
        self,
        # (weight, why, raw, pattern, starts or None): an ``engine.Signal`` each
        signals: Sequence[tuple[float, str, bool, re.Pattern[str], tuple[str, ...] | None]],
        chains: Callable[[str], list[tuple[int, int, list[int]]]],
        narrowed: dict[tuple[int, int], list[re.Pattern[str]]],
        narrowing: Callable[[int, int], list[re.Pattern[str]]],
        mention: re.Pattern[str],
        negated: re.Pattern[str],
        quote: int,
        reach: int,
        negated_reach: int,
        negation_tails: tuple[str, ...],
    ) -> None: ...
    def match(self, low: str, norm: str, scan: Any, /) -> dict[str, tuple[float, str]]: ...

def score(found: dict[str, tuple[float, str]], /) -> tuple[float, tuple[str, ...]]: ...

class Scorer:
    def __init__(
        self,
        matcher: Matcher,
        table: Any,  # a ``_words.Table``
        bias: float,
        signal_weights: dict[str, float],
        some: float,
        flagged: float,
        words: list[str],
        hints: list[int],
        learned: str,
        most: int,
        # (text, low, hints found) -> what a hidden payload adds under ``encoded``, or None
        hidden: Callable[[str, str, list[int]], tuple[float, str] | None],
        encoded: str,
    ) -> None: ...
    def score(
        self, low: str, norm: str, scan: Any, text: str, /
    ) -> tuple[float, tuple[str, ...]]: ...

class Picker:
    def __init__(
        self,
        sets: list[Callable[[bytes], list[int]]],  # each RE2 set's bound ``Match``
        members: list[list[int]],  # per set: the factor of each match id, -1 last (``\z``)
        alone: list[list[int]],  # per factor: the patterns it alone makes candidates
        more: list[list[int]],  # per factor: the patterns with more factors, it the least
        needs: list[list[int]],  # per pattern: its factors
        scan: Callable[[bytes, bool, list[int], Any], Any],  # ``Scan``
        regexes: Any,
    ) -> None: ...
    def pick(self, text: str, /) -> Any: ...
