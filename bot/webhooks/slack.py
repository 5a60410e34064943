"""``POST /slack/events``: Slack's HTTP requests handed to a sync Bolt ``App``.

Bolt ships a Starlette adapter, but for the sync ``App`` it calls ``dispatch()`` on the
event loop, and ``dispatch()`` blocks until the listener acks: one slow listener would
stall every other route (FIELD-NOTES, Slack). This adapter runs ``dispatch()`` in a worker
thread instead, and translates Bolt's error answers into the contract's error shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio
import anyio.to_thread
from slack_bolt import App, BoltRequest, BoltResponse
from starlette.requests import Request
from starlette.responses import Response

from bot.webhooks.errors import BodyTooLarge, InvalidBody, error_response

# Slack requests in flight at once per app. Their own limiter, not anyio's default one
# (40 threads, shared with sync routes): a burst of slow listeners cannot starve them.
MAX_DISPATCHES = 64

# Bolt's error answers, as the contract's (code, message). Bolt answers 401 for a bad
# signature or a timestamp more than 5 minutes off, and 404 when no listener matches.
_BOLT_ERRORS: dict[int, tuple[str, str]] = {
    401: (
        "invalid_signature",
        "the request is not signed by Slack or its timestamp is more than 5 minutes off"
        " (check SLACK_SIGNING_SECRET and the server clock)",
    ),
    404: ("unhandled_request", "no listener handles this Slack request"),
}

Endpoint = Callable[[Request], Awaitable[Response]]


def slack_endpoint(app: App, *, max_body: int) -> Endpoint:
    """An async Starlette/FastAPI endpoint that dispatches each request to ``app``.

    Bodies over ``max_body`` bytes are refused with 413 before Bolt sees them.
    """
    limiter = anyio.CapacityLimiter(MAX_DISPATCHES)

    async def slack_events(request: Request) -> Response:
        bolt_request = _to_bolt_request(request, await _read_body(request, max_body))
        bolt_response = await anyio.to_thread.run_sync(app.dispatch, bolt_request, limiter=limiter)
        return _to_response(bolt_response)

    return slack_events


async def _read_body(request: Request, max_body: int) -> bytes:
    """The raw body, refused as soon as it is known to be too large.

    Content-Length is checked first, then the bytes themselves: the header can be
    absent (a chunked body) or disagree with what is sent.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise BodyTooLarge(max_body)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise BodyTooLarge(max_body)
        chunks.append(chunk)
    return b"".join(chunks)


def _to_bolt_request(request: Request, body: bytes) -> BoltRequest:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidBody("it is not UTF-8") from exc
    # Bolt takes each header as a list of its values (a header can repeat).
    grouped: dict[str, list[str]] = {}
    for name, value in request.headers.items():  # every pair, repeats included
        grouped.setdefault(name, []).append(value)
    headers: dict[str, str | Sequence[str]] = {name: values for name, values in grouped.items()}
    return BoltRequest(body=text, query=request.url.query, headers=headers)


def _to_response(bolt_response: BoltResponse) -> Response:
    if bolt_response.status >= 400:
        return _error(bolt_response)
    response = Response(content=bolt_response.body, status_code=bolt_response.status)
    for name, values in bolt_response.headers.items():
        for value in values:  # append, not set: Set-Cookie and friends can repeat
            response.headers.append(name, value)
    return response


def _error(bolt_response: BoltResponse) -> Response:
    status = bolt_response.status
    if status >= 500:  # Bolt has logged the listener's exception already
        return error_response(status, "internal", "internal error")
    code, message = _BOLT_ERRORS.get(
        status, ("slack_request_refused", f"the Slack app refused the request ({status})")
    )
    return error_response(status, code, message)
