LETTERED: int
FREE: int
GLUED: int

def runs(text: str, /) -> list[tuple[int, int, int]]: ...
