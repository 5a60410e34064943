"""Errors of the HTTP edge, and the one place they become responses.

Every error leaves as ``{"error": {"code": …, "message": …}}`` (the contract's shape):

HTTPException (starlette)      routing's 404 and 405, and any raised by a route
└── ApiError                   a caller's mistake with a code of its own
    ├── InvalidBody            400 invalid_body: the body cannot be decoded
    ├── SlackNotConfigured     404 slack_not_configured
    └── BodyTooLarge           413 body_too_large
RequestValidationError         422 invalid_request (FastAPI's parameter validation)
anything else                  500 internal, logged with its traceback, no details sent
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    """What went wrong: a stable machine-readable ``code`` and a message for people."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(HTTPException):
    """An error the caller caused, with its status, ``code`` and message.

    It is a starlette ``HTTPException`` so that FastAPI re-raises it untouched (from body
    parsing too) and it reaches the handler installed by :func:`install_error_handlers`.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail=message)
        self.code = code
        self.message = message


class InvalidBody(ApiError):
    """The request body cannot be decoded (Slack bodies are UTF-8)."""

    def __init__(self, why: str) -> None:
        super().__init__(400, "invalid_body", f"the request body is not valid: {why}")


class SlackNotConfigured(ApiError):
    """``/slack/events`` was called on a server started without Slack settings."""

    def __init__(self) -> None:
        super().__init__(
            404,
            "slack_not_configured",
            "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET",
        )


class BodyTooLarge(ApiError):
    """The request body is larger than the server accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, "body_too_large", f"the request body is larger than the limit of {limit} bytes"
        )


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A response in the contract's error shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error ``app`` answers use the contract's shape.

    Unexpected exceptions are caught by a middleware rather than an ``Exception``
    handler: Starlette re-raises after calling such a handler, so the server would log
    the same traceback a second time.
    """
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(InternalErrors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # registered for HTTPException only
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, exc.message, exc.headers)
    phrase = _phrase(exc.status_code)
    message = str(exc.detail)
    if message == phrase:  # starlette's default detail: say which request it was about
        message = f"{phrase}: {request.method} {request.url.path}"
    return error_response(exc.status_code, _code(phrase), message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # registered for it only
    # Location and reason only: echoing the input could send a secret back.
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return error_response(422, "invalid_request", problems or "the request is invalid")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def _code(phrase: str) -> str:
    return phrase.lower().replace(" ", "_").replace("-", "_")


class InternalErrors:
    """ASGI middleware: an unexpected exception becomes a logged 500 ``internal`` error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if started:  # too late for a 500: let the server drop the connection
                raise
            await error_response(500, "internal", "internal error")(scope, receive, send)
