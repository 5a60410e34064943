"""The host end of the supervisor protocol, over a container's attached stdin/stdout.

Docker multiplexes a non-TTY container's output: each frame is an 8-byte header
(stream type, three zero bytes, big-endian length) and its bytes. Stream 1 carries the
protocol (see ``_supervisor.py``); stream 2 is the supervisor's own stderr, kept as a
short tail for error messages.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, cast

from sandbox.errors import OperationFailed, ProtocolError, SandboxClosed

_FRAME = struct.Struct(">BxxxL")
_LENGTH = struct.Struct(">I")
_MAX_HEADER = 1 << 20
_DIAG_TAIL = 16 * 1024
_SEND_CHUNK = 1 << 20


class ChannelTimeout(Exception):
    """No answer before the deadline (internal: the sandbox turns it into a result)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A supervisor's answer: its JSON header and the raw blobs that followed it."""

    header: Mapping[str, object]
    blobs: tuple[bytes, ...]

    def ok(self, what: str) -> Reply:
        """This reply, or OperationFailed naming what failed and why."""
        if self.header.get("ok") is not True:
            raise OperationFailed(f"{what}: {self.header.get('error') or 'failed'}")
        return self


class Channel:
    """Request/response with the supervisor. Not thread-safe: the caller serialises."""

    def __init__(self, handle: object) -> None:
        # docker-py hands back a SocketIO (or an SSL socket) holding the hijacked
        # connection; keep the handle alive and talk to the socket underneath.
        self._handle = handle
        self._sock = cast(socket.socket, getattr(handle, "_sock", handle))
        self._raw = bytearray()
        self._out = bytearray()
        self._diag = bytearray()
        self._stream = 0
        self._frame_left = 0
        self.closed = False

    @property
    def diagnostics(self) -> str:
        """The tail of what the supervisor wrote to its stderr."""
        return self._diag.decode("utf-8", "replace").strip()

    def call(
        self,
        header: Mapping[str, object],
        *,
        deadline: float,
        payload: IO[bytes] | None = None,
        payload_size: int = 0,
    ) -> Reply:
        """Send one request (and its payload); return the reply with its blobs."""
        self._send(header, payload, payload_size, deadline)
        reply = self._read_header(deadline)
        sizes = reply.get("blobs") or []
        if not isinstance(sizes, list):
            raise ProtocolError(f"bad blob list in reply: {sizes!r}")
        blobs = tuple(self._read_exact(int(n), deadline) for n in sizes)
        return Reply(reply, blobs)

    def call_chunked(
        self, header: Mapping[str, object], sink: IO[bytes], *, deadline: float, limit: int
    ) -> Reply:
        """Send a request whose answer streams in chunks into ``sink``; return the trailer.

        A chunk that would take the reply past ``limit`` bytes is not read: the
        channel is closed at once and ProtocolError raised (the caller then kills the
        sandbox), so a runaway reply costs no more than ``limit``.
        """
        first = self.call(header, deadline=deadline).ok(str(header.get("op")))
        if first.header.get("chunked") is not True:
            raise ProtocolError(f"expected a chunked reply, got {dict(first.header)!r}")
        written = 0
        while True:
            (size,) = _LENGTH.unpack(self._read_exact(_LENGTH.size, deadline))
            if size == 0:
                break
            if written + size > limit:
                self.close()
                raise ProtocolError(f"reply is over the limit of {limit} bytes; hung up")
            sink.write(self._read_exact(size, deadline))
            written += size
        return Reply(self._read_header(deadline), ())

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        close = getattr(self._handle, "close", None)
        if callable(close):
            with contextlib.suppress(OSError):
                close()

    # -- sending -----------------------------------------------------------------

    def _send(
        self,
        header: Mapping[str, object],
        payload: IO[bytes] | None,
        size: int,
        deadline: float,
    ) -> None:
        body = json.dumps({**header, "payload": size}).encode()
        self._sendall(_LENGTH.pack(len(body)) + body, deadline)
        sent = 0
        while payload is not None and sent < size:
            chunk = payload.read(min(_SEND_CHUNK, size - sent))
            if not chunk:
                raise ProtocolError(f"payload ended after {sent} of {size} bytes")
            self._sendall(chunk, deadline)
            sent += len(chunk)

    def _sendall(self, data: bytes, deadline: float) -> None:
        self._settimeout(deadline)
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise ChannelTimeout from exc
        except OSError as exc:
            self.closed = True
            raise SandboxClosed(f"the sandbox hung up: {exc}") from exc

    # -- receiving ---------------------------------------------------------------

    def _read_header(self, deadline: float) -> dict[str, object]:
        (size,) = _LENGTH.unpack(self._read_exact(_LENGTH.size, deadline))
        if size > _MAX_HEADER:
            raise ProtocolError(f"reply header of {size} bytes is too large")
        try:
            header = json.loads(self._read_exact(size, deadline))
        except ValueError as exc:
            raise ProtocolError(f"reply header is not JSON: {exc}") from exc
        if not isinstance(header, dict):
            raise ProtocolError(f"reply header is not an object: {header!r}")
        return header

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._out) < n:
            self._fill(deadline)
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    def _fill(self, deadline: float) -> None:
        self._settimeout(deadline)
        try:
            data = self._sock.recv(1 << 20)
        except TimeoutError as exc:
            raise ChannelTimeout from exc
        except OSError as exc:
            self.closed = True
            raise SandboxClosed(f"the sandbox hung up: {exc}") from exc
        if not data:
            self.closed = True
            raise SandboxClosed("the sandbox hung up (its container stopped)")
        self._demux(data)

    def _demux(self, data: bytes) -> None:
        self._raw += data
        while self._raw:
            if self._frame_left == 0:
                if len(self._raw) < _FRAME.size:
                    return
                self._stream, self._frame_left = _FRAME.unpack_from(self._raw)
                del self._raw[: _FRAME.size]
                continue
            take = min(self._frame_left, len(self._raw))
            chunk = self._raw[:take]
            del self._raw[:take]
            self._frame_left -= take
            if self._stream == 1:
                self._out += chunk
            else:
                self._diag += chunk
                del self._diag[:-_DIAG_TAIL]

    def _settimeout(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChannelTimeout
        self._sock.settimeout(left)
