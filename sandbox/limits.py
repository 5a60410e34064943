"""Resource limits of a sandbox."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sandbox.errors import InvalidLimits

MIB = 1024 * 1024
# What the supervisor, the command's own memory and the page cache need beyond the
# tmpfs pages, which count against the memory limit.
HEADROOM_MB = 64
MIN_TMPFS_MB = 8
DEFAULT_TMPFS_MB = 64
DEFAULT_WORKSPACE_MB = 512


@dataclass(frozen=True, slots=True)
class Limits:
    """What one sandbox may use.

    Memory, CPUs, pids, tmpfs sizes, network and ulimits are fixed when the container
    is created; ``timeout_s`` and ``output_bytes`` apply to each command and are
    enforced by the supervisor inside the container. tmpfs pages (``/tmp``, home and
    the workspace) count against ``memory_mb``: a command that fills them all must
    still leave room, so ``memory_mb`` must be at least ``workspace_mb + 3 × tmpfs_mb
    + 64`` (``/tmp``, home and ``/dev/shm`` are ``tmpfs_mb`` each). ``for_memory``
    builds limits that fit a given memory size.
    """

    memory_mb: int = 1024
    cpus: float = 1.0
    pids: int = 256
    timeout_s: float = 600.0
    output_bytes: int = MIB
    tmpfs_mb: int = DEFAULT_TMPFS_MB
    workspace_mb: int = DEFAULT_WORKSPACE_MB
    network: bool = False
    nofile: int = 1024
    fsize_mb: int = 512

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "network" and not value > 0:
                raise InvalidLimits(f"Limits.{f.name} must be positive, got {value!r}")
        if self.memory_mb < 16:
            raise InvalidLimits(f"Limits.memory_mb must be at least 16, got {self.memory_mb}")
        if self.output_bytes < 64:
            raise InvalidLimits(f"Limits.output_bytes must be at least 64, got {self.output_bytes}")
        self._check_memory_holds_tmpfs()

    def _check_memory_holds_tmpfs(self) -> None:
        need = _memory_needed(self.workspace_mb, self.tmpfs_mb)
        if self.memory_mb < need:
            raise InvalidLimits(
                f"Limits.memory_mb={self.memory_mb} cannot hold the tmpfs mounts: "
                f"Limits.workspace_mb={self.workspace_mb} + 3 × Limits.tmpfs_mb="
                f"{self.tmpfs_mb} + {HEADROOM_MB} needs memory_mb >= {need}, or a command "
                "that fills them gets the supervisor OOM-killed. Raise memory_mb, lower "
                f"workspace_mb or tmpfs_mb, or use Limits.for_memory({self.memory_mb})."
            )

    @classmethod
    def for_memory(cls, memory_mb: int, **overrides: Any) -> Limits:
        """Limits for ``memory_mb`` with the tmpfs sizes scaled down to fit in it.

        ``workspace_mb`` becomes at most half the memory and ``tmpfs_mb`` at most a
        sixteenth (at least 8), both no larger than their defaults and small enough
        that the memory holds them; ``overrides`` set any field, these two included.
        """
        tmpfs = max(MIN_TMPFS_MB, min(DEFAULT_TMPFS_MB, memory_mb // 16))
        room = memory_mb - _memory_needed(0, tmpfs)
        workspace = min(DEFAULT_WORKSPACE_MB, memory_mb // 2, room)
        if workspace < 1 and "workspace_mb" not in overrides:
            least = _memory_needed(1, MIN_TMPFS_MB)
            raise InvalidLimits(
                f"Limits.memory_mb={memory_mb} is too small for a sandbox: "
                f"it needs at least {least} MB (a workspace, three {MIN_TMPFS_MB} MB tmpfs "
                f"and {HEADROOM_MB} MB of headroom)"
            )
        chosen: dict[str, Any] = {"tmpfs_mb": tmpfs, "workspace_mb": workspace}
        return cls(**{"memory_mb": memory_mb, **chosen, **overrides})

    def container_key(self) -> tuple[object, ...]:
        """The part of the limits fixed at container creation: warm containers match on it."""
        return (
            self.memory_mb,
            self.cpus,
            self.pids,
            self.tmpfs_mb,
            self.workspace_mb,
            self.network,
            self.nofile,
            self.fsize_mb,
        )


def _memory_needed(workspace_mb: int, tmpfs_mb: int) -> int:
    return workspace_mb + 3 * tmpfs_mb + HEADROOM_MB
