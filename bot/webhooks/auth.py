"""Bearer tokens for the REST API (``FIRSTMATE_API_TOKENS``).

A request names its caller with ``Authorization: Bearer <token>``. Tokens are compared
in constant time; a caller is known by a digest of its token (``token-1a2b3c``), never by
the token itself, in rate limits and in who decided what. With no tokens configured the
API is closed, not open.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.webhooks.errors import ApiError

_bearer = HTTPBearer(
    auto_error=False,  # our own 401 in the contract's shape, not FastAPI's 403
    description="One of the tokens in FIRSTMATE_API_TOKENS.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class Unauthorized(ApiError):
    """401: no token, a wrong one, or no tokens configured at all."""

    def __init__(self, code: str, message: str, challenge: str = "Bearer") -> None:
        super().__init__(401, code, message)
        self.headers = {"WWW-Authenticate": challenge}


def identity(token: str) -> str:
    """Who a token is, for rate limits and the audit trail (the token is not shown)."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:6]


def bearer_auth(tokens: Collection[str]) -> Callable[[Credentials], str]:
    """A dependency that admits a caller holding one of ``tokens`` and returns its
    :func:`identity`."""
    known = [token.encode() for token in tokens]

    def authenticate(credentials: Credentials) -> str:
        if not known:
            raise Unauthorized(
                "api_not_configured",
                "the API is closed: FIRSTMATE_API_TOKENS is not set on the server "
                "(comma-separated bearer tokens)",
            )
        if credentials is None:
            raise Unauthorized("missing_token", "send Authorization: Bearer <token>")
        given = credentials.credentials.encode()
        # Every token is compared, matched or not: the time taken says nothing about which.
        matched = [hmac.compare_digest(given, token) for token in known]
        if not any(matched):
            raise Unauthorized(
                "invalid_token",
                "the bearer token is not one of FIRSTMATE_API_TOKENS",
                'Bearer error="invalid_token"',
            )
        return identity(credentials.credentials)

    return authenticate
