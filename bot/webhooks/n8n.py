"""``POST /webhooks/n8n/{playbook}``: an n8n workflow starts a playbook run.

n8n's HTTP Request node sends ``Authorization: Bearer <FIRSTMATE_N8N_TOKEN>`` (Header
Auth), ``Idempotency-Key: {{$execution.id}}`` and ``{"inputs": {…}, "callback_url":
"{{$execution.resumeUrl}}"}``. The answer is ``202 {"run_id": …}`` as soon as the run is
recorded; the run's result is POSTed to ``callback_url`` when it ends (the ``callback``
channel of the notifier), which resumes the workflow's Wait node. The same
``Idempotency-Key`` again (n8n retrying the node) answers with the same run.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Depends, Header
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.webhooks.errors import ApiError, ErrorBody
from bot.webhooks.intake import RunRequest, start
from bot.webhooks.ratelimit import RateLimiter
from workers.runtime import Runtime

SOURCE = "n8n"
REPLY_TO = "callback"  # the notifier channel that POSTs the result to callback_url
MAX_URL = 2048


class N8nNotConfigured(ApiError):
    """404 n8n_not_configured: the server was started without ``FIRSTMATE_N8N_TOKEN``."""

    def __init__(self) -> None:
        super().__init__(
            404, "n8n_not_configured", "n8n is not configured: set FIRSTMATE_N8N_TOKEN"
        )


class Unauthorized(ApiError):
    """401 ``missing_token`` or ``invalid_token``: not the configured bearer token."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(401, code, message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class N8nRun(BaseModel):
    """The request body: the playbook's inputs, and where its result goes."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)
    callback_url: str | None = Field(default=None, max_length=MAX_URL)

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL, e.g. {{$execution.resumeUrl}}")
        return value


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("no bearer token, or not FIRSTMATE_N8N_TOKEN"),
    404: _error("no such playbook, or n8n not configured (n8n_not_configured)"),
    422: _error("the body or the playbook's inputs are not valid"),
    429: _error("too many runs started by this workflow just now: see Retry-After"),
}


class Accepted(BaseModel):
    """``202``: the run that this request started (or had started before)."""

    run_id: str


def n8n_router(rt: Runtime, limiter: RateLimiter) -> APIRouter:
    """The n8n webhook, authenticated by ``FIRSTMATE_N8N_TOKEN``."""
    router = APIRouter()
    token = rt.settings.n8n_token.get_secret_value() if rt.settings.n8n_token else None

    def authenticated(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise N8nNotConfigured()
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthorized(
                "missing_token",
                "send Authorization: Bearer <FIRSTMATE_N8N_TOKEN> (n8n: a Header Auth credential)",
            )
        # Constant time, on bytes (compare_digest refuses non-ASCII str).
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise Unauthorized("invalid_token", "the bearer token is not FIRSTMATE_N8N_TOKEN")

    @router.post(
        "/webhooks/n8n/{playbook}",
        status_code=202,
        dependencies=[Depends(authenticated)],
        responses=_RESPONSES,
        summary="Start a playbook run from n8n",
        tags=["webhooks"],
    )
    def run_playbook(
        playbook: str,
        body: Annotated[N8nRun | None, Body()] = None,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
        ] = None,
        workflow: Annotated[str | None, Header(alias="X-N8N-Workflow", max_length=100)] = None,
    ) -> Accepted:
        """Start a run of ``playbook``; its result is POSTed to ``callback_url`` when it
        ends. The same ``Idempotency-Key`` again answers with the same run."""
        body = body or N8nRun()  # no body at all: the playbook's default inputs
        origin: dict[str, Any] = {"idempotency_key": idempotency_key}
        if body.callback_url is not None:
            origin["callback_url"] = body.callback_url
        started = start(
            rt,
            limiter,
            RunRequest(
                playbook=playbook,
                source=SOURCE,
                requester=workflow or SOURCE,
                delivery=idempotency_key,
                inputs=body.inputs,
                origin=origin,
                reply_to=REPLY_TO if body.callback_url is not None else None,
                queued=True,  # 202 within milliseconds: a worker records the run
            ),
        )
        return Accepted(run_id=started.run_id)

    return router
