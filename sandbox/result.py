"""The result of a command run in a sandbox."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a command did.

    ``exit_code`` follows the shell: 128 + N when a signal N killed the command (137
    for a timeout or an OOM kill). ``stdout``/``stderr`` keep the head and the tail of
    each stream when it was longer than the output cap, with a marker between them,
    and ``truncated`` is then true.
    """

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    oom_killed: bool
    truncated: bool
    duration_s: float
    image_digest: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out
