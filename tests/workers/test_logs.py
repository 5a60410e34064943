"""JSON log lines: context from ``bind``, secrets and token shapes scrubbed everywhere."""

from __future__ import annotations

import json
import logging

import pytest

from workers import logs


@pytest.fixture
def lines() -> list[str]:
    return []


def _logger(lines: list[str], secrets: list[str]) -> logging.Logger:
    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logs.JSONFormatter(logs.Scrubber(secrets)))
    logger = logging.getLogger("test.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_a_line_is_json_with_the_bound_run_and_step(lines: list[str]) -> None:
    log = _logger(lines, [])
    with logs.bind(run_id="r1"), logs.bind(step="build"):
        log.info("started %s", "build")
    log.info("outside")
    inside, outside = (json.loads(x) for x in lines)
    assert inside["run_id"] == "r1" and inside["step"] == "build"
    assert inside["message"] == "started build" and inside["level"] == "info"
    assert "run_id" not in outside


def test_secrets_and_token_shapes_are_scrubbed_from_messages_and_tracebacks(
    lines: list[str],
) -> None:
    log = _logger(lines, ["s3cret-signing-value"])
    log.info("secret %s and token %s", "s3cret-signing-value", "xoxb-123-456-abcdef")
    try:
        raise RuntimeError("Authorization: Bearer abcdefghijklmnop failed")
    except RuntimeError:
        log.exception("call failed with ghp_abcdefghijklmnopqrstuvwxyz0123")
    first, second = (json.loads(x) for x in lines)
    assert first["message"] == "secret *** and token ***"
    assert "abcdefghijklmnop" not in second["exception"]
    assert "ghp_" not in second["message"]
    assert "***" in second["exception"]
