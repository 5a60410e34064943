"""``LLM``: the one layer between the code that needs a model and a ``Provider``.

It owns, in this order, for each logical call: the budget check, the response cache,
the circuit breaker, the rate limiter, the attempts and their retries, and the cost.
Every wait is bounded: retries, Retry-After and the rate limiter together never wait
past ``max_wait_s`` (counting the time the attempts took), so a job is never stuck for
minutes inside an SDK; the last error is raised instead, with ``retry_after_s`` set so
the caller can reschedule.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.config import Settings
from orchestrator.providers.base import Completion, LLMRequest, Provider, Usage
from orchestrator.providers.breaker import CircuitBreaker, breaker_for, is_outage
from orchestrator.providers.cost import PriceTable
from orchestrator.providers.errors import BadOutput, BudgetReached, LLMError, RateLimited
from orchestrator.providers.ports import RATE_LIMIT_SETTING, RateLimiter, ResponseCache

__all__ = ["LLM", "MAX_ATTEMPTS", "Call", "breaker_for"]

T = TypeVar("T", bound=BaseModel)

log = logging.getLogger(__name__)

# A backstop under max_wait_s: providers that answer "retry after 0 s" forever.
MAX_ATTEMPTS = 10
_RAW_SHOWN = 500  # characters of a bad answer quoted in BadOutput


@dataclass(frozen=True, slots=True)
class Call:
    """The accounting of one logical call (all its attempts, or a cache hit)."""

    provider: str
    model: str
    usage: Usage
    cost_usd: float
    priced: bool
    note: str
    cache_hit: bool
    tokens_saved: int  # on a hit: the cached answer's input + output tokens, not billed again
    attempts: int
    duration_s: float

    def as_event(self) -> dict[str, object]:
        """JSON-able, for a run event ``llm.call``."""
        return {
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cached_tokens": self.usage.cached_tokens,
            "cache_write_tokens": self.usage.cache_write_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "priced": self.priced,
            "note": self.note,
            "cache_hit": self.cache_hit,
            "tokens_saved": self.tokens_saved,
            "attempts": self.attempts,
            "duration_s": round(self.duration_s, 3),
        }


class _Waits:
    """What one call has waited so far: its sleeps, or the time since it started if more
    (that counts the attempts themselves). No wait may take it past ``max_s``."""

    def __init__(
        self, max_s: float, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> None:
        self.max_s = max_s
        self.slept = 0.0
        self._sleep = sleep
        self._clock = clock
        self.started = clock()

    def allows(self, delay: float) -> bool:
        spent = max(self.slept, self._clock() - self.started)
        return spent + delay <= self.max_s

    def wait(self, delay: float) -> None:
        if delay > 0:
            self._sleep(delay)
            self.slept += delay

    def elapsed(self) -> float:
        return max(0.0, self._clock() - self.started)


class LLM:
    """A provider and a default model, with retries, pacing, the breaker, the cache and
    the cost of each call. Thread-safe if its limiter, cache and breaker are."""

    def __init__(
        self,
        provider: Provider,
        model: str,
        *,
        prices: PriceTable,
        limiter: RateLimiter | None = None,
        cache: ResponseCache | None = None,
        breaker: CircuitBreaker | None = None,
        timeout_s: float = 60,
        max_wait_s: float = 120,
        cache_ttl_s: int = 3600,
        base_delay_s: float = 0.5,
        max_delay_s: float = 20,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.model = model
        self.prices = prices
        self.limiter = limiter
        self.cache = cache
        self.breaker = breaker
        self.timeout_s = timeout_s
        self.max_wait_s = max_wait_s
        self.cache_ttl_s = cache_ttl_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random()  # noqa: S311 (jitter, not secrets)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        provider: Provider,
        model: str,
        *,
        limiter: RateLimiter | None = None,
        cache: ResponseCache | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> LLM:
        """With the ``FIRSTMATE_LLM_*`` settings; ``breaker`` defaults to this process's
        breaker for the provider. ``limiter`` None means no limiter: the process wiring
        passes ``workers.llm.limiter_from(...)``."""
        return cls(
            provider,
            model,
            prices=PriceTable.load(settings.llm_prices),
            limiter=limiter,
            cache=cache,
            breaker=breaker if breaker is not None else breaker_for(provider.name),
            timeout_s=settings.llm_timeout_s,
            max_wait_s=settings.llm_max_wait_s,
            cache_ttl_s=settings.llm_cache_ttl_s,
        )

    @property
    def provider_name(self) -> str:
        return self.provider.name

    def close(self) -> None:
        """Close the provider's connections."""
        self.provider.close()

    def complete(
        self, request: LLMRequest, *, budget_left_usd: float | None = None, use_cache: bool = True
    ) -> tuple[Completion, Call]:
        """One logical call: the answer, and its accounting. Raises ``BudgetReached``
        (nothing sent) when no budget is left, ``CircuitOpen`` while the provider is
        down, and the provider's ``LLMError`` when retrying is over or pointless."""
        return self._answer(request, budget_left_usd, use_cache, _accept)

    def structured(
        self, request: LLMRequest, answer: type[T], *, budget_left_usd: float | None = None
    ) -> tuple[T, Completion, Call]:
        """Ask for JSON following ``answer``'s schema and parse it; ``BadOutput`` when the
        answer does not follow it (such an answer is not cached)."""
        request = replace(
            request, schema=answer.model_json_schema(), schema_name=answer.__name__[:64]
        )
        completion, call = self._answer(request, budget_left_usd, True, lambda c: _parse(answer, c))
        return _parse(answer, completion), completion, call

    def _answer(
        self,
        request: LLMRequest,
        budget_left_usd: float | None,
        use_cache: bool,
        check: Callable[[Completion], object],
    ) -> tuple[Completion, Call]:
        if budget_left_usd is not None and budget_left_usd <= 0:
            raise _no_budget(budget_left_usd)
        if not request.model:
            request = replace(request, model=self.model)
        cache = self.cache if use_cache and self.cache_ttl_s > 0 else None
        key = request.key(self.provider_name)
        waits = _Waits(self.max_wait_s, self._sleep, self._clock)
        if cache is not None and (hit := cache.get(key)) is not None:
            check(hit)
            return hit, self._hit(request, hit, waits.elapsed())
        completion, attempts = self._attempts(request, waits)
        call = self._account(request, completion, attempts, waits.elapsed())
        try:
            check(completion)  # an answer that fails it is not cached
        except BadOutput as exc:
            exc.answer, exc.call = completion.text, call  # paid for: the caller counts it
            raise
        if cache is not None and completion.stop != "max_tokens":
            cache.put(key, completion, self.cache_ttl_s)
        return completion, call

    def _attempts(self, request: LLMRequest, waits: _Waits) -> tuple[Completion, int]:
        """Attempts until one succeeds, an error is not worth retrying, or the next wait
        would cross ``max_wait_s`` (then the last error is raised)."""
        attempt = 0
        while True:
            if self.breaker is not None:
                self.breaker.before()
            self._pace(waits)
            attempt += 1
            try:
                completion = self.provider.complete(request, timeout_s=self.timeout_s)
            except LLMError as error:
                self._record(error)
                delay = self._delay(error, attempt)
                if delay is None or attempt >= MAX_ATTEMPTS or not waits.allows(delay):
                    if error.retryable and error.retry_after_s is None:
                        error.retry_after_s = self._ceiling(attempt)
                    raise
                log.info("%s: %s; retrying in %.2fs", self.provider_name, error, delay)
                waits.wait(delay)
                continue
            if self.breaker is not None:
                self.breaker.success()
            return completion, attempt

    def _pace(self, waits: _Waits) -> None:
        """Take a token from the rate limiter, waiting for one within ``max_wait_s``."""
        if self.limiter is None:
            return
        while (delay := self.limiter.acquire(self.provider_name)) > 0:
            if not waits.allows(delay):
                raise RateLimited(
                    f"{self.provider_name}: our own rate limit ({RATE_LIMIT_SETTING}) has no "
                    f"call left for {delay:.1f}s, past the {self.max_wait_s:g}s a call may wait",
                    retry_after_s=delay,
                )
            waits.wait(delay)

    def _record(self, error: LLMError) -> None:
        if self.breaker is None:
            return
        if is_outage(error):
            self.breaker.failure()
        else:  # the provider answered (a 429, a 400, …): it is up
            self.breaker.success()

    def _delay(self, error: LLMError, attempt: int) -> float | None:
        """How long to wait before the next attempt; None: do not retry."""
        if not error.retryable:
            return None
        if error.retry_after_s is not None:
            return max(0.0, error.retry_after_s)
        return self._random.uniform(0, self._ceiling(attempt))  # full jitter

    def _ceiling(self, attempt: int) -> float:
        """The backoff's upper bound after the ``attempt``-th attempt failed."""
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))

    def _account(
        self, request: LLMRequest, completion: Completion, attempts: int, duration_s: float
    ) -> Call:
        model = completion.model or request.model
        cost = self.prices.cost(self.provider_name, model, completion.usage)
        return Call(
            self.provider_name,
            model,
            completion.usage,
            cost.usd,
            cost.priced,
            cost.note,
            cache_hit=False,
            tokens_saved=0,
            attempts=attempts,
            duration_s=duration_s,
        )

    def _hit(self, request: LLMRequest, hit: Completion, duration_s: float) -> Call:
        saved = hit.usage.input_tokens + hit.usage.output_tokens
        return Call(
            self.provider_name,
            hit.model or request.model,
            Usage(),
            0.0,
            True,
            "cache hit: not billed",
            cache_hit=True,
            tokens_saved=saved,
            attempts=0,
            duration_s=duration_s,
        )


def _accept(completion: Completion) -> None:
    """``complete`` takes any answer."""


def _parse(answer: type[T], completion: Completion) -> T:
    text = _unfenced(completion.text)
    try:
        return answer.model_validate_json(text)
    except ValidationError as exc:
        cut = " (the answer was cut at max_tokens)" if completion.stop == "max_tokens" else ""
        raw = text if len(text) <= _RAW_SHOWN else text[:_RAW_SHOWN] + "…"
        raise BadOutput(
            f"the answer does not follow {answer.__name__}{cut}: {exc}\nthe answer: {raw!r}"
        ) from exc


def _unfenced(text: str) -> str:
    """The JSON inside a Markdown code fence, which some models add unasked."""
    stripped = text.strip()
    if not stripped.startswith("```"):
        return stripped
    body = stripped.split("\n", 1)[1] if "\n" in stripped else ""
    return body.rsplit("```", 1)[0].strip()


def _no_budget(left_usd: float) -> BudgetReached:
    error = BudgetReached(spent_usd=max(0.0, -left_usd), budget_usd=0.0)
    # Only the caller knows the run's totals; say what this layer knows.
    error.args = (f"LLM budget reached: ${left_usd:.4f} left, so nothing was sent",)
    return error
