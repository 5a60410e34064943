from collections.abc import Collection, Sequence

class Table:
    def __init__(
        self,
        words: Sequence[str],
        weights: Sequence[float],
        telling: float,
        quiet: Collection[str] = (),
    ) -> None: ...
    def weigh(self, low: str, /) -> tuple[float, list[int]]: ...

def fold(text: str, /) -> tuple[str, str]: ...
def latin(text: str, /) -> str: ...
