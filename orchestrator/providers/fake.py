"""A Provider that answers from a script (unit tests), beside the real adapters."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from orchestrator.providers.base import Completion, LLMRequest, Usage
from orchestrator.providers.errors import LLMError, ProviderClosed


class ScriptedProvider:
    """Answers each call with the next scripted completion, or raises the next scripted
    error; records every request. With the script exhausted, it answers ``default``."""

    def __init__(
        self,
        script: Iterable[Completion | LLMError] = (),
        *,
        name: str = "fake",
        default: Completion | None = None,
    ) -> None:
        self.name = name
        self.script: deque[Completion | LLMError] = deque(script)
        self.default = default or Completion("ok", usage=Usage(10, 2))
        self.requests: list[LLMRequest] = []
        self.closed = False

    def push(self, *replies: Completion | LLMError) -> None:
        self.script.extend(replies)

    def complete(self, request: LLMRequest, *, timeout_s: float) -> Completion:
        if self.closed:
            raise ProviderClosed(self.name)
        self.requests.append(request)
        reply = self.script.popleft() if self.script else self.default
        if isinstance(reply, LLMError):
            raise reply
        return reply

    def close(self) -> None:
        self.closed = True
