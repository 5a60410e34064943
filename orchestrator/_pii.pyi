from collections.abc import Callable, Mapping, Sequence

LETTERED: int
FREE: int
GLUED: int

def configure(
    iban_lengths: Mapping[str, int], card_lengths: Mapping[str, Sequence[int]], dni_letters: str, /
) -> None: ...
def find(
    text: str,
    out: list[tuple[str, int, int, int]],
    fallback: Callable[[str, int, int, int, list[tuple[str, int, int, int]]], None],
    /,
) -> None: ...
def emails(text: str, out: list[tuple[str, int, int, int]], /) -> None: ...
