class Scanner:
    def __init__(
        self,
        conds: list[tuple[str, int]],  # (text, kind): 0 prefix, 1 exact, 2 inside
        uses: list[list[tuple[int, int]]],
        # (signal, gaps, lead, alternative, same: bit j when word j may share a token)
        chains: list[tuple[int, tuple[int, ...], int, int, int]],
    ) -> None: ...
    def scan(self, norm: str, /) -> list[tuple[int, int, list[int]]]: ...
