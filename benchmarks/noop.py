"""The bare-RQ baseline's job: a no-op function (importable by name, as RQ needs)."""


def noop(i: int) -> int:
    return i
