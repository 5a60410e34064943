"""Errors of the sandbox package.

    SandboxError
    ├── DockerUnavailable        the Docker engine cannot be reached
    ├── ImageError               the sandbox image is missing or cannot be built
    ├── InvalidLimits            a Limits value is out of range (also a ValueError)
    ├── SandboxClosed            the sandbox was closed, or its container died
    ├── ProtocolError            the supervisor in the container answered nonsense
    └── OperationFailed          the supervisor refused an operation (no such file, …)
        └── WorkspaceSyncError   the workspace could not be copied in or out

Docker SDK errors are translated into these once, where the SDK is called.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every error the sandbox package raises."""


class DockerUnavailable(SandboxError):
    """The Docker engine cannot be reached."""


class ImageError(SandboxError):
    """The sandbox image is missing or could not be built."""


class InvalidLimits(SandboxError, ValueError):
    """A resource limit is out of range."""


class SandboxClosed(SandboxError):
    """The sandbox is closed, or its container is gone."""


class ProtocolError(SandboxError):
    """The supervisor inside the container sent something unexpected."""


class OperationFailed(SandboxError):
    """The supervisor could not carry out a file or workspace operation."""


class WorkspaceSyncError(OperationFailed):
    """The workspace could not be copied into or out of the sandbox."""
