"""The supervisor's own protocol edges, against a real sandbox."""

from __future__ import annotations

import json
import struct
import threading
import time

import pytest

from sandbox import SandboxPool

pytestmark = pytest.mark.docker


def test_bytes_that_arrive_during_a_command_are_kept_for_the_next_request(
    pool: SandboxPool,
) -> None:
    """stdin is watched during a command (for the host hanging up): nothing read is lost.

    The host never sends while a command runs; this one does, on purpose: a ping
    whose answer must come right after the command's.
    """
    with pool.acquire() as sb:
        channel = sb._channel
        body = json.dumps({"op": "ping", "payload": 0}).encode()

        def send_early() -> None:
            time.sleep(0.3)
            channel._sock.sendall(struct.pack(">I", len(body)) + body)

        early = threading.Thread(target=send_early)
        early.start()
        slept = sb.exec("sleep 1")
        early.join()
        answer = channel._read_header(time.monotonic() + 5)
        after = sb.exec("echo fine")
    assert slept.exit_code == 0
    assert (answer["ok"], answer["pid"]) == (True, 1)
    assert after.stdout == "fine\n"
