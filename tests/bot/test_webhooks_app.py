"""The webhook app over real HTTP: uvicorn on a loopback port, httpx as the client, and a
real Bolt ``App`` whose Web API calls (``auth.test``) go to the local fake Slack API."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.webhooks import create_app
from bot.webhooks.slack import slack_endpoint
from tests.slack_api import SlackAPI, signed_headers, slash_body

SECRET = "test-signing-secret"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
FORM = "application/x-www-form-urlencoded"


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn from a background thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for a free port
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started:
            assert thread.is_alive(), "uvicorn exited while starting"
            assert time.monotonic() < deadline, "uvicorn did not start within 5 s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@dataclass
class MateBot:
    """A Bolt app with a ``/mate`` listener that records the text of each command."""

    app: App
    heard: list[str] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def mate_bot(api: SlackAPI, *, hold: bool = False) -> MateBot:
    """With ``hold``, the listener waits (up to 10 s) for ``release`` before it acks."""
    client = WebClient(token="xoxb-test", base_url=api.url)
    bot = MateBot(App(client=client, signing_secret=SECRET, token_verification_enabled=False))

    @bot.app.command("/mate")
    def mate(ack: Ack, command: dict[str, Any]) -> None:
        bot.entered.set()
        if hold:  # before ack(): dispatch() is blocked all this time
            bot.release.wait(10)
        bot.heard.append(command["text"])
        ack(f"on it: {command['text']}")

    return bot


def slash(
    text: str, *, secret: str = SECRET, age_s: int = 0, pad: int = 0
) -> tuple[bytes, dict[str, str]]:
    """A ``/mate`` command body as Slack sends it, and its signed headers."""
    fields = json.loads((FIXTURES / "slash_command_body.json").read_text(encoding="utf-8"))
    body = slash_body(**{**fields, "command": "/mate", "text": text + " " * pad})
    signed = signed_headers(body, secret, timestamp=int(time.time()) - age_s)
    return body, {**signed, "Content-Type": FORM}


def error(response: httpx.Response) -> dict[str, str]:
    """The ``error`` object of a response in the contract's error shape."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])


@pytest.fixture(scope="module")
def api() -> Iterator[SlackAPI]:
    with SlackAPI() as server:
        yield server


# -- health ----------------------------------------------------------------------------


def test_healthz_answers_ok() -> None:
    with serving(create_app()) as url:
        response = httpx.get(f"{url}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def _off_the_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def test_readyz_runs_every_check_in_a_thread() -> None:
    threads: dict[str, bool] = {}
    checks = {
        "database": lambda: threads.__setitem__("database", _off_the_loop()),
        "redis": lambda: threads.__setitem__("redis", _off_the_loop()),
    }
    with serving(create_app(checks=checks)) as url:
        response = httpx.get(f"{url}/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    assert threads == {"database": True, "redis": True}


def test_readyz_answers_503_naming_the_failing_check() -> None:
    def redis_down() -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    checks: dict[str, Callable[[], None]] = {"database": lambda: None, "redis": redis_down}
    with serving(create_app(checks=checks)) as url:
        response = httpx.get(f"{url}/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unready",
        "checks": {
            "database": "ok",
            "redis": "Error 111 connecting to 127.0.0.1:6379. Connection refused.",
        },
    }


# -- errors ----------------------------------------------------------------------------


def test_unknown_route_and_wrong_method_use_the_error_shape() -> None:
    with serving(create_app()) as url:
        missing = httpx.get(f"{url}/nope")
        wrong = httpx.get(f"{url}/slack/events")
    assert missing.status_code == 404
    assert error(missing) == {"code": "not_found", "message": "Not Found: GET /nope"}
    assert wrong.status_code == 405
    assert error(wrong)["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "POST"


def test_invalid_parameters_answer_422_in_the_error_shape() -> None:
    app = create_app()

    @app.get("/square")
    async def square(n: int) -> int:
        return n * n

    with serving(app) as url:
        response = httpx.get(f"{url}/square", params={"n": "seven"})
    assert response.status_code == 422
    assert error(response)["code"] == "invalid_request"
    assert "query.n" in error(response)["message"]


def test_an_unexpected_error_is_a_logged_500_that_leaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2")

    with caplog.at_level(logging.ERROR, logger="bot.webhooks"), serving(app) as url:
        response = httpx.get(f"{url}/boom")
    assert response.status_code == 500
    assert error(response) == {"code": "internal", "message": "internal error"}
    assert "hunter2" not in response.text
    [record] = [r for r in caplog.records if r.name.startswith("bot.webhooks")]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


# -- Slack -----------------------------------------------------------------------------


def test_a_signed_slash_command_reaches_the_listener(api: SlackAPI) -> None:
    bot = mate_bot(api)
    body, headers = slash("help")
    with serving(create_app(slack=bot.app)) as url:
        response = httpx.post(f"{url}/slack/events", content=body, headers=headers)
    assert (response.status_code, response.text) == (200, "on it: help")
    assert response.headers["content-type"] == "text/plain;charset=utf-8"  # Bolt's own
    assert bot.heard == ["help"]


@pytest.mark.parametrize(
    ("secret", "age_s"),
    [("not-the-secret", 0), (SECRET, 6 * 60)],
    ids=["bad-signature", "six-minutes-old"],
)
def test_an_unverified_request_is_refused_before_any_listener(
    api: SlackAPI, secret: str, age_s: int
) -> None:
    bot = mate_bot(api)
    body, headers = slash("help", secret=secret, age_s=age_s)
    with serving(create_app(slack=bot.app)) as url:
        response = httpx.post(f"{url}/slack/events", content=body, headers=headers)
    assert response.status_code == 401
    assert error(response)["code"] == "invalid_signature"
    assert bot.heard == []
    assert not bot.entered.is_set()


def _in_chunks(body: bytes, size: int = 64) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_max_body_is_refused_with_413(api: SlackAPI, chunked: bool) -> None:
    bot = mate_bot(api)
    body, headers = slash("help", pad=600)
    assert len(body) > 512
    content = _in_chunks(body) if chunked else body  # a generator: no Content-Length
    with serving(create_app(slack=bot.app, max_body=512)) as url:
        response = httpx.post(f"{url}/slack/events", content=content, headers=headers)
    assert response.status_code == 413
    assert error(response)["code"] == "body_too_large"
    assert bot.heard == []


def test_slack_endpoint_limits_the_body_on_its_own(api: SlackAPI) -> None:
    bot = mate_bot(api)
    app = FastAPI()  # not create_app: no body-limit middleware in front of the endpoint
    app.add_route("/slack/events", slack_endpoint(bot.app, max_body=512), ["POST"])
    body, headers = slash("help", pad=600)
    small_body, small_headers = slash("hi")
    with serving(app) as url:
        declared = httpx.post(f"{url}/slack/events", content=body, headers=headers)
        chunked = httpx.post(f"{url}/slack/events", content=_in_chunks(body), headers=headers)
        small = httpx.post(f"{url}/slack/events", content=small_body, headers=small_headers)
    assert (declared.status_code, chunked.status_code, small.status_code) == (413, 413, 200)
    assert bot.heard == ["hi"]


def test_slack_events_without_slack_configured_is_404() -> None:
    with serving(create_app()) as url:
        response = httpx.post(f"{url}/slack/events", content=b"{}")
    assert response.status_code == 404
    assert error(response) == {
        "code": "slack_not_configured",
        "message": "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET",
    }


def test_a_slow_listener_does_not_stall_other_routes(api: SlackAPI) -> None:
    # No latency threshold: the listener is held until /healthz has been answered, and
    # the test checks that dispatch() had not returned by then. Were dispatch() run on the
    # event loop, /healthz would be answered only after it gave up waiting for ack() (3 s
    # in Bolt) and returned.
    bot = mate_bot(api, hold=True)
    dispatching = threading.Event()
    dispatch = bot.app.dispatch

    def watched(request: Any) -> Any:
        dispatching.set()
        try:
            return dispatch(request)
        finally:
            dispatching.clear()

    bot.app.dispatch = watched  # type: ignore[method-assign]
    body, headers = slash("slow")
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(httpx.post(f"{url}/slack/events", content=body, headers=headers, timeout=20))

    with serving(create_app(slack=bot.app)) as url, httpx.Client(base_url=url, timeout=5) as client:
        poster = threading.Thread(target=post)
        poster.start()
        try:
            assert bot.entered.wait(5), "the listener never started"
            statuses = [client.get("/healthz").status_code for _ in range(5)]
            in_flight = dispatching.is_set() and not bot.heard
        finally:
            bot.release.set()
            poster.join(20)
    assert statuses == [200] * 5
    assert in_flight, "/healthz was answered only after the slow listener's dispatch returned"
    [answer] = answers
    assert (answer.status_code, answer.text) == (200, "on it: slow")
