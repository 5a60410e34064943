"""The FastAPI app that ``firstmate serve`` runs.

For now: liveness (``/healthz``), readiness (``/readyz``) and Slack (``/slack/events``).
Errors use the contract's shape (see :mod:`bot.webhooks.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel
from slack_bolt import App
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.webhooks.errors import (
    BodyTooLarge,
    SlackNotConfigured,
    error_response,
    install_error_handlers,
)
from bot.webhooks.slack import slack_endpoint

logger = logging.getLogger(__name__)

Check = Callable[[], None]
"""A readiness check: returns when its dependency answers, raises when it does not."""

# A check that hangs must not hang the probe; its thread is abandoned, not killed.
CHECK_TIMEOUT_S = 5.0


class Health(BaseModel):
    """``GET /healthz``: the process is up."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """``GET /readyz``: each check's outcome, ``"ok"`` or why it failed."""

    status: Literal["ready", "unready"]
    checks: dict[str, str]


def create_app(
    *,
    slack: App | None = None,
    checks: Mapping[str, Check] | None = None,
    routers: Sequence[APIRouter] = (),
    max_body: int = 1 << 20,
) -> FastAPI:
    """Build the app.

    ``slack`` serves ``POST /slack/events`` (without it, that route answers 404
    ``slack_not_configured``); ``checks`` (name → callable that raises on failure, e.g.
    ``"database"``, ``"redis"``) decide readiness; bodies over ``max_body`` bytes get 413.
    """
    # FastAPI's own max_body_size is left off: its early 413 is plain text, not our shape.
    app = FastAPI(title="Firstmate")
    _add_health_routes(app, dict(checks or {}))
    _add_slack_route(app, slack, max_body)
    for router in routers:  # GitHub, n8n, the REST API: each a router of its own
        app.include_router(router)
    app.add_middleware(_BodyLimit, max_body=max_body)
    install_error_handlers(app)  # last, so its catch-all wraps the body limit too
    return app


def _add_health_routes(app: FastAPI, checks: dict[str, Check]) -> None:
    @app.get("/healthz")
    async def healthz() -> Health:
        # Liveness only: no I/O, so a slow dependency never gets the process restarted.
        return Health()

    @app.get("/readyz")
    async def readyz(response: Response) -> Readiness:
        outcomes = await _run_checks(checks)
        ready = all(error is None for error in outcomes.values())
        response.status_code = 200 if ready else 503
        return Readiness(
            status="ready" if ready else "unready",
            checks={name: error or "ok" for name, error in outcomes.items()},
        )


def _add_slack_route(app: FastAPI, slack: App | None, max_body: int) -> None:
    if slack is not None:
        app.add_route("/slack/events", slack_endpoint(slack, max_body=max_body), ["POST"])
        return

    async def slack_not_configured(request: Request) -> Response:
        raise SlackNotConfigured()

    app.add_route("/slack/events", slack_not_configured, ["POST"])


async def _run_checks(checks: Mapping[str, Check]) -> dict[str, str | None]:
    """Each check's error message (``None`` if it passed), run concurrently in threads."""
    outcomes: dict[str, str | None] = {}

    async def run(name: str, check: Check) -> None:
        outcomes[name] = await _run_check(name, check)

    async with anyio.create_task_group() as group:
        for name, check in checks.items():
            group.start_soon(run, name, check)
    return {name: outcomes[name] for name in checks}


async def _run_check(name: str, check: Check) -> str | None:
    with anyio.move_on_after(CHECK_TIMEOUT_S) as deadline:
        try:
            # Checks do blocking I/O (a database ping, a Redis PING): never on the loop.
            await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
        except Exception as exc:
            logger.warning("readiness check %r failed", name, exc_info=True)
            return str(exc) or type(exc).__name__
    if deadline.cancelled_caught:
        logger.warning("readiness check %r timed out", name)
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    return None


class _BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_body`` bytes with 413.

    Content-Length is checked before the app runs; the bytes are counted as the app reads
    them too, since the header can be absent (chunked) or disagree with the body.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await _too_large(self.max_body)(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # An HTTPException: the error handlers turn it into the 413.
                    raise BodyTooLarge(self.max_body)
            return message

        await self.app(scope, receive_limited, send)


def _too_large(limit: int) -> Response:
    error = BodyTooLarge(limit)
    return error_response(error.status_code, error.code, error.message)
