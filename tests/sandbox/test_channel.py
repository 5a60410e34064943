"""The host end of the supervisor protocol, against a scripted peer on a socketpair.

The peer writes what Docker would: 8-byte frame headers around stdout and stderr
bytes, split at awkward places, so the demultiplexer is exercised without Docker.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sandbox._channel import Channel, ChannelTimeout
from sandbox.errors import ProtocolError, SandboxClosed
from sandbox.sandbox import _compose


def _frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def _message(header: dict[str, object], *blobs: bytes) -> bytes:
    body = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
    return struct.pack(">I", len(body)) + body + b"".join(blobs)


def _read_request(sock: socket.socket) -> dict[str, object]:
    size = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))[0]
    return dict(json.loads(sock.recv(size, socket.MSG_WAITALL)))


Peer = Callable[[Callable[[socket.socket], None]], Channel]


@pytest.fixture
def peer() -> Iterator[Peer]:
    sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(script: Callable[[socket.socket], None]) -> Channel:
        ours, theirs = socket.socketpair()
        sockets.extend([ours, theirs])
        thread = threading.Thread(target=script, args=(theirs,), daemon=True)
        thread.start()
        threads.append(thread)
        return Channel(ours)

    yield start
    for t in threads:
        t.join(timeout=5)
    for s in sockets:
        s.close()


def test_reply_with_blobs_split_across_frames_and_stderr_noise(peer: Peer) -> None:
    def script(sock: socket.socket) -> None:
        request = _read_request(sock)
        assert request["op"] == "exec"
        message = _message({"ok": True, "exit_code": 0}, b"out", b"", b"err", b"tail")
        sock.sendall(_frame(2, b"supervisor warning\n"))
        for i in range(0, len(message), 7):  # frames cut mid-header and mid-blob
            sock.sendall(_frame(1, message[i : i + 7]))

    channel = peer(script)
    reply = channel.call({"op": "exec"}, deadline=time.monotonic() + 5)
    assert reply.header["exit_code"] == 0
    assert reply.blobs == (b"out", b"", b"err", b"tail")
    assert channel.diagnostics == "supervisor warning"


def test_chunked_reply_within_the_limit_arrives_whole(peer: Peer) -> None:
    def script(sock: socket.socket) -> None:
        _read_request(sock)
        chunks = b"".join(struct.pack(">I", 4) + b"abcd" for _ in range(3))
        sock.sendall(_frame(1, _message({"ok": True, "chunked": True})))
        sock.sendall(_frame(1, chunks + struct.pack(">I", 0) + _message({"ok": True})))

    channel = peer(script)
    sink = io.BytesIO()
    trailer = channel.call_chunked({"op": "get_tar"}, sink, deadline=time.monotonic() + 5, limit=12)
    assert trailer.header["ok"] is True
    assert sink.getvalue() == b"abcd" * 3
    assert not channel.closed


def test_a_chunked_reply_over_the_limit_is_cut_off_not_drained(peer: Peer) -> None:
    """A runaway reply costs the host its limit, not the gigabytes that follow."""
    sent: list[int] = []
    chunk = struct.pack(">I", 1 << 16) + b"z" * (1 << 16)

    def script(sock: socket.socket) -> None:
        _read_request(sock)
        sock.sendall(_frame(1, _message({"ok": True, "chunked": True})))
        try:
            for _ in range(4096):  # 256 MiB, if anyone kept reading
                sock.sendall(_frame(1, chunk))
                sent.append(len(chunk))
        except OSError:  # the host hung up: what this test wants
            pass

    channel = peer(script)
    sink = io.BytesIO()
    with pytest.raises(ProtocolError, match="over the limit"):
        channel.call_chunked(
            {"op": "get_tar"}, sink, deadline=time.monotonic() + 5, limit=3 * (1 << 16) + 10
        )
    assert channel.closed
    assert len(sink.getvalue()) == 3 * (1 << 16)  # whole chunks up to the limit, no more
    time.sleep(0.2)
    assert sum(sent) < 32 * (1 << 20)  # the peer was stopped long before the end


def test_silence_is_a_timeout_and_hanging_up_is_closed(peer: Peer) -> None:
    gate = threading.Event()

    def script(sock: socket.socket) -> None:
        _read_request(sock)
        gate.wait(5)
        sock.shutdown(socket.SHUT_WR)

    channel = peer(script)
    with pytest.raises(ChannelTimeout):
        channel.call({"op": "ping"}, deadline=time.monotonic() + 0.2)
    gate.set()
    with pytest.raises(SandboxClosed):
        channel.call({"op": "ping"}, deadline=time.monotonic() + 5)
    assert channel.closed


def test_a_header_that_is_not_json_is_a_protocol_error(peer: Peer) -> None:
    def script(sock: socket.socket) -> None:
        _read_request(sock)
        sock.sendall(_frame(1, struct.pack(">I", 5) + b"nope!"))

    channel = peer(script)
    with pytest.raises(ProtocolError, match="not JSON"):
        channel.call({"op": "ping"}, deadline=time.monotonic() + 5)


def test_compose_marks_what_was_dropped() -> None:
    assert _compose(b"abc", b"", 3) == ("abc", False)
    text, cut = _compose(b"head", b"tail", 1000)
    assert cut
    assert text == "head\n…[992 bytes truncated]…\ntail"
    assert _compose(b"\xff", b"", 1) == ("\ufffd", False)
