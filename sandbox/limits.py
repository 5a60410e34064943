"""Resource limits of a sandbox."""

from __future__ import annotations

from dataclasses import dataclass, fields

from sandbox.errors import InvalidLimits

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one sandbox may use.

    Memory, CPUs, pids, tmpfs sizes, network and ulimits are fixed when the container
    is created; ``timeout_s`` and ``output_bytes`` apply to each command and are
    enforced by the supervisor inside the container. tmpfs pages (``/tmp``, home and
    the workspace) count against ``memory_mb``.
    """

    memory_mb: int = 1024
    cpus: float = 1.0
    pids: int = 256
    timeout_s: float = 600.0
    output_bytes: int = MIB
    tmpfs_mb: int = 64
    workspace_mb: int = 512
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
