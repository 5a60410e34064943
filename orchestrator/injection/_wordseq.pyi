class Scanner:
    def __init__(
        self,
        conds: list[tuple[str, int]],  # (text, kind): 0 prefix, 1 exact, 2 inside
        # (parent or -1, gap, same: it may share the parent's token, [cond, ...])
        nodes: list[tuple[int, int, bool, list[int]]],
        # (signal, last node, first node, span, lead, alternative, anchor node: the
        # word of the chain, on its path, a text is least likely to have)
        chains: list[tuple[int, int, int, int, int, int, int]],
    ) -> None: ...
    def scan(self, norm: str, /) -> list[tuple[int, int, list[int]]]: ...
