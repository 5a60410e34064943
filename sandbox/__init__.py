"""Hardened Docker sandboxes with a warm pool.

Knows Docker and nothing of runs, Slack or RQ. The public face::

    with SandboxPool(image="firstmate-sandbox:latest", size=2) as pool:
        with pool.acquire(limits=Limits(memory_mb=512), workspace=Path("repo")) as sb:
            result = sb.exec("python3 -m pytest -q", timeout=120)
"""

from sandbox.container import DEFAULT_IMAGE, connect
from sandbox.errors import (
    DockerUnavailable,
    ImageError,
    InvalidLimits,
    OperationFailed,
    ProtocolError,
    SandboxClosed,
    SandboxError,
    WorkspaceSyncError,
)
from sandbox.image import build_image, image_exists
from sandbox.limits import Limits
from sandbox.pool import PoolStats, SandboxPool
from sandbox.reaper import kill_sandboxes, reap_orphans
from sandbox.result import ExecResult
from sandbox.sandbox import Sandbox
from sandbox.workspace import SyncReport

__all__ = [
    "DEFAULT_IMAGE",
    "DockerUnavailable",
    "ExecResult",
    "ImageError",
    "InvalidLimits",
    "Limits",
    "OperationFailed",
    "PoolStats",
    "ProtocolError",
    "Sandbox",
    "SandboxClosed",
    "SandboxError",
    "SandboxPool",
    "SyncReport",
    "WorkspaceSyncError",
    "build_image",
    "connect",
    "image_exists",
    "kill_sandboxes",
    "reap_orphans",
]
