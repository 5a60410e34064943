class Scanner:
    def __init__(
        self,
        conds: list[tuple[str, bool]],
        uses: list[list[tuple[int, int]]],
        chains: list[tuple[int, tuple[int, ...], int, int]],
    ) -> None: ...
    def scan(self, norm: str, /) -> list[tuple[int, int, list[int]]]: ...
