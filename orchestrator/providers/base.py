"""What every provider speaks: a request, a completion, and the one-method interface.

The adapters (``openai_compat``, ``anthropic_sdk``) translate these to and from their
SDK; ``client.LLM`` wraps a provider with what every call needs (retries, the rate
limiter, the circuit breaker, the response cache and the cost of each call). Nothing
outside ``orchestrator/providers`` imports an LLM SDK.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asks for: the provider's id for it, a tool name, JSON arguments."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of the conversation. ``tool`` messages answer ``tool_call_id``; an
    ``assistant`` message may carry the ``tool_calls`` it made."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call: its name, what it does, its arguments' JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One call. ``system`` is the stable prefix (provider prompt caching keys on it:
    Anthropic gets a ``cache_control`` mark there; OpenAI caches a repeated prefix).
    With ``schema`` (a JSON schema), the answer is JSON that follows it."""

    model: str
    messages: tuple[Message, ...]
    system: str = ""
    tools: tuple[Tool, ...] = ()
    schema: dict[str, Any] | None = None
    schema_name: str = "answer"
    max_tokens: int = 2048
    temperature: float = 0.0

    def key(self, provider: str) -> str:
        """A digest of everything that decides the answer (the response cache's key)."""
        document = {"provider": provider, **asdict(self)}
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call: ``input_tokens`` counts every prompt token, of which
    ``cached_tokens`` were read from the provider's prompt cache and
    ``cache_write_tokens`` written to it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


StopReason = Literal["end", "tool_calls", "max_tokens", "other"]


@dataclass(frozen=True, slots=True)
class Completion:
    """What the model answered."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    stop: StopReason = "end"


class Provider(Protocol):
    """One model endpoint, through its SDK. Makes exactly one attempt (the SDK's own
    retries are off) and raises only ``providers.errors.LLMError`` (``ProviderClosed``
    once closed)."""

    name: str  # the FIRSTMATE_LLM prefix: openai, azure, anthropic, bedrock, …

    def complete(self, request: LLMRequest, *, timeout_s: float) -> Completion: ...

    def close(self) -> None:
        """Close its connections (a closed provider is not used again)."""
