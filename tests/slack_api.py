"""A local fake of the Slack Web API, for the real ``slack_sdk.WebClient`` to talk to.

Slack cannot be reached from this machine (nor from CI), so integration tests point a real
client at this server instead: ``WebClient(token="xoxb-test", base_url=api.url)``. The
client then builds, sends and parses real HTTP requests, and its retry handlers and errors
behave as they do against Slack. The server answers the handful of methods Firstmate uses,
records every request as a :class:`Call`, keeps posted messages so that ``chat.update``
can edit them, and can be told to fail (429, 503 or an ``ok: false`` error) on demand.

It also serves ``/response/<name>`` as a fake ``response_url``, and the module builds
signed request bodies as Slack sends them to our app (:func:`signed_headers`,
:func:`slash_body`, :func:`interactive_body`).

    with SlackAPI(groups={"S1": ["U1"]}) as api:
        client = WebClient(token="xoxb-test", base_url=api.url)
        client.chat_postMessage(channel="C1", text="hi")
        api.wait_for("chat.postMessage")
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["Call", "SlackAPI", "interactive_body", "signed_headers", "slash_body"]

# Fields that slack_sdk sends JSON-encoded inside a form body.
_JSON_FIELDS = ("blocks", "attachments", "view")
_FIRST_TS = 1_700_000_000_000_101  # microseconds: the first ts is "1700000000.000101"

Params = dict[str, Any]
Predicate = Callable[["Call"], bool]


@dataclass(frozen=True)
class Call:
    """One request the fake received, and the HTTP status it answered with."""

    method: str
    params: Params
    token: str | None
    at: float
    answered: int = 200
    path: str = ""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Params
    headers: tuple[tuple[str, str], ...] = ()


def _ok(**fields: Any) -> _Answer:
    return _Answer(200, {"ok": True, **fields})


def _error(error: str, status: int = 200) -> _Answer:
    return _Answer(status, {"ok": False, "error": error})


class SlackAPI:
    """The fake Web API server; start it with ``with SlackAPI() as api``."""

    def __init__(
        self,
        *,
        groups: dict[str, list[str]] | None = None,
        expired_triggers: Iterable[str] = (),
    ) -> None:
        self.groups: dict[str, list[str]] = dict(groups or {})
        self.expired_triggers: set[str] = set(expired_triggers)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._calls: list[Call] = []
        self._injected: dict[str, deque[_Answer]] = {}
        self._outage = False
        self._lock = threading.RLock()
        self._ts = itertools.count(_FIRST_TS)
        self._view_ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[Params], _Answer]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "views.open": self._views_open,
            "usergroups.users.list": self._usergroup_users,
            "apps.connections.open": lambda _: _error("not_allowed_token_type"),
        }

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Listen on a free loopback port, serving from a background thread."""
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-slack-api",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SlackAPI:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The ``base_url`` for ``WebClient``, with the trailing slash it needs."""
        return f"{self._origin}/api/"

    def response_url(self, name: str) -> str:
        """A fake ``response_url``; POSTs to it are recorded as ``"response_url"`` calls."""
        return f"{self._origin}/response/{name}"

    @property
    def _origin(self) -> str:
        if self._server is None:
            raise RuntimeError("SlackAPI is not running: use it as `with SlackAPI() as api`")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- failure injection -----------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429 and ``Retry-After``."""
        answer = _Answer(
            429,
            {"ok": False, "error": "ratelimited"},
            (("Retry-After", str(retry_after)),),
        )
        self._inject(method, answer, times)

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}``."""
        self._inject(method, _error(error), times)

    def outage(self, on: bool) -> None:
        """While on, answer every request with HTTP 503."""
        with self._lock:
            self._outage = on

    def _inject(self, method: str, answer: _Answer, times: int) -> None:
        with self._lock:
            self._injected.setdefault(method, deque()).extend([answer] * times)

    # -- what was recorded -----------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        """Every call so far, oldest first; only those of ``method`` when given."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
        predicate: Predicate | None = None,
    ) -> list[Call]:
        """Wait until at least ``count`` calls of ``method`` (matching ``predicate``) exist."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls(method) if predicate is None or predicate(c)]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(self._missing(method, count, len(found), timeout))
            time.sleep(0.01)

    def _missing(self, method: str, count: int, found: int, timeout: float) -> str:
        recorded = "\n".join(
            f"  {c.method} -> {c.answered} {json.dumps(c.params, default=str)[:200]}"
            for c in self.calls()
        )
        return (
            f"waited {timeout}s for {count} {method!r} call(s) and saw {found};"
            f" the fake Slack API recorded:\n{recorded or '  nothing'}"
        )

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The replies posted in ``channel`` under ``thread_ts``, in the order posted."""
        with self._lock:
            return [
                m
                for (ch, _), m in self.messages.items()
                if ch == channel and m.get("thread_ts") == thread_ts
            ]

    # -- answering -------------------------------------------------------------------

    def _handle(self, method: str, params: Params, token: str | None, path: str) -> _Answer:
        with self._lock:
            answer = self._answer(method, params)
            self._calls.append(Call(method, params, token, time.monotonic(), answer.status, path))
            return answer

    def _answer(self, method: str, params: Params) -> _Answer:
        if self._outage:
            return _error("service_unavailable", 503)
        injected = self._injected.get(method)
        if injected:
            return injected.popleft()
        if method == "response_url":
            return _ok()
        handler = self._methods.get(method)
        return handler(params) if handler else _error("unknown_method")

    def _next_ts(self) -> str:
        n = next(self._ts)
        return f"{n // 1_000_000}.{n % 1_000_000:06d}"

    def _auth_test(self, _: Params) -> _Answer:
        return _ok(user_id="UBOT", bot_id="BBOT", team_id="T111", user="firstmate", team="Test")

    def _post_message(self, params: Params) -> _Answer:
        channel = params.get("channel")
        if not channel:
            return _error("channel_not_found")
        ts = self._next_ts()
        message: dict[str, Any] = {
            "channel": channel,
            "ts": ts,
            "text": params.get("text"),
            "blocks": params.get("blocks"),
            "thread_ts": params.get("thread_ts"),
            "edits": 0,
        }
        self.messages[(channel, ts)] = message
        shown = {"text": message["text"], "blocks": message["blocks"] or [], "ts": ts}
        if message["thread_ts"]:
            shown["thread_ts"] = message["thread_ts"]
        return _ok(channel=channel, ts=ts, message=shown)

    def _update(self, params: Params) -> _Answer:
        channel, ts = str(params.get("channel")), str(params.get("ts"))
        message = self.messages.get((channel, ts))
        if message is None:
            return _error("message_not_found")
        for field in ("text", "blocks"):
            if field in params:
                message[field] = params[field]
        message["edits"] += 1
        return _ok(channel=channel, ts=ts, text=message["text"])

    def _post_ephemeral(self, _: Params) -> _Answer:
        return _ok(message_ts=self._next_ts())

    def _permalink(self, params: Params) -> _Answer:
        channel, ts = params.get("channel", ""), str(params.get("message_ts", ""))
        link = f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return _ok(channel=channel, permalink=link)

    def _views_open(self, params: Params) -> _Answer:
        if params.get("trigger_id") in self.expired_triggers:
            return _error("expired_trigger_id")
        view = params.get("view")
        submitted = view if isinstance(view, dict) else {}
        return _ok(view={**submitted, "id": f"V{next(self._view_ids):08d}"})

    def _usergroup_users(self, params: Params) -> _Answer:
        users = self.groups.get(str(params.get("usergroup")))
        return _error("no_such_subteam") if users is None else _ok(users=list(users))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: SlackAPI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet; every request is recorded as a Call instead

    def _serve(self) -> None:
        split = urlsplit(self.path)
        method = _route(split.path)
        if method is None:
            self._send(_error("not_found", 404))
            return
        params = {**dict(parse_qsl(split.query, keep_blank_values=True)), **self._body()}
        api = cast(_Server, self.server).api
        self._send(api._handle(method, _decode_json_fields(params), self._token(), split.path))

    def _body(self) -> Params:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not raw:
            return {}
        if self.headers.get_content_type() == "application/json":
            decoded = json.loads(raw)
            return decoded if isinstance(decoded, dict) else {"body": decoded}
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def _send(self, answer: _Answer) -> None:
        body = json.dumps(answer.body).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _route(path: str) -> str | None:
    """The Slack method (or ``"response_url"``) a request path names, if any."""
    if path.startswith("/api/") and len(path) > len("/api/"):
        return path.removeprefix("/api/")
    if path.startswith("/response/"):
        return "response_url"
    return None


def _decode_json_fields(params: Params) -> Params:
    decoded = dict(params)
    for key in _JSON_FIELDS:
        value = decoded.get(key)
        if isinstance(value, str):
            with contextlib.suppress(json.JSONDecodeError):  # not JSON: keep what was sent
                decoded[key] = json.loads(value)
    return decoded


# -- requests as Slack sends them to our app ----------------------------------------


def signed_headers(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body``, as Slack signs.

    The caller adds the ``Content-Type``.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{ts}:".encode() + body
    digest = hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def slash_body(**fields: str) -> bytes:
    """A slash command body: the fields, ``application/x-www-form-urlencoded``."""
    return urlencode(fields).encode("utf-8")


def interactive_body(payload: dict[str, Any]) -> bytes:
    """An interactivity body: one form field ``payload`` holding the JSON."""
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")
