"""The LLM layer's errors. SDK errors are translated once, in the adapters.

FirstmateError
└── LLMError                 retryable, retry_after_s say whether and when to try again
    ├── LLMNotConfigured     FIRSTMATE_LLM or a provider's credentials are missing or wrong
    ├── RateLimited          429 (retryable, with the provider's Retry-After)
    ├── Unavailable          5xx, a timeout, a connection that failed (retryable)
    ├── Refused              400/404/422: the request itself is wrong (never retried)
    ├── AuthFailed           401/403: the credentials are wrong (never retried)
    ├── CircuitOpen          the provider failed too often just now: not even tried
    ├── BadOutput            the answer does not follow the requested schema
    └── BudgetReached        the run has spent its LLM budget
"""

from __future__ import annotations

from orchestrator.errors import ConfigError, FirstmateError


class LLMError(FirstmateError):
    """Base of the LLM layer's errors."""

    retryable = False

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LLMNotConfigured(LLMError, ConfigError):
    """``FIRSTMATE_LLM`` or a provider's credentials are missing or invalid."""


class RateLimited(LLMError):
    """The provider said 429."""

    retryable = True


class Unavailable(LLMError):
    """A 5xx, a timeout or a failed connection."""

    retryable = True


class Refused(LLMError):
    """The provider refused the request as malformed (400, 404, 422)."""


class AuthFailed(LLMError):
    """The provider refused the credentials (401, 403)."""


class CircuitOpen(LLMError):
    """The provider failed too often just now; calls fail fast until it is tried again."""

    retryable = True


class BadOutput(LLMError):
    """The model's answer does not parse or does not follow the schema asked for.
    ``answer`` is its text and ``call`` (a ``client.Call``) what it cost, when known:
    the answer was paid for even though it is unusable."""

    answer: str = ""
    call: object | None = None


class BudgetReached(LLMError):
    """The run has spent its LLM budget (``spent_usd`` of ``budget_usd``)."""

    def __init__(self, spent_usd: float, budget_usd: float) -> None:
        super().__init__(f"LLM budget reached: ${spent_usd:.4f} spent of ${budget_usd:.4f}")
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd


class ProviderClosed(RuntimeError):
    """A provider used after ``close()``: a mistake in the caller, not an outage, so it
    is not an ``LLMError`` (nothing retries it, no breaker counts it)."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"{provider}: this client was closed; build a new one")
