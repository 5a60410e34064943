"""The Anthropic Messages adapter: Anthropic's API and Anthropic models on AWS Bedrock.

``system`` is sent as one text block marked ``cache_control: ephemeral``, so the tools and
the system prompt (the stable prefix of every call of an agent) are read from Anthropic's
prompt cache after the first call. Tools are Anthropic tools; tool results go back as
``tool_result`` blocks in a user turn. A ``schema`` becomes a forced tool named
``schema_name`` whose input is the answer: its JSON is the completion's text. The SDK's
retries are off, and its errors become ``providers.errors`` here, once.

``request.temperature`` is not sent: API version 2026-10-21 (what anthropic ≥ 2 sends)
answers 400 to any sampling parameter, and the SDK no longer has them.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
from anthropic.types import Message as AnthropicMessage
from anthropic.types import (
    MessageParam,
    TextBlock,
    TextBlockParam,
    ToolChoiceToolParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlock,
    ToolUseBlockParam,
)

from orchestrator.providers.base import (
    Completion,
    LLMRequest,
    Message,
    StopReason,
    Tool,
    ToolCall,
    Usage,
)
from orchestrator.providers.errors import (
    BadOutput,
    LLMError,
    LLMNotConfigured,
    ProviderClosed,
    Unavailable,
)
from orchestrator.providers.registry import error_for_status

__all__ = ["AnthropicProvider", "aws_credentials_found"]

Client = anthropic.Anthropic | anthropic.AnthropicBedrock
_STOPS: dict[str, StopReason] = {
    "end_turn": "end",
    "stop_sequence": "end",
    "tool_use": "tool_calls",
    "max_tokens": "max_tokens",
}


class AnthropicProvider:
    """A :class:`~orchestrator.providers.base.Provider` over an ``anthropic.Anthropic``
    or ``anthropic.AnthropicBedrock`` client."""

    def __init__(self, client: Client, *, name: str = "anthropic") -> None:
        self.name = name
        self._client = client

    @classmethod
    def direct(cls, *, api_key: str, base_url: str | None, timeout_s: float) -> AnthropicProvider:
        """Anthropic's own API (or a proxy of it at ``base_url``)."""
        try:
            client = anthropic.Anthropic(
                api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
            )
        except (anthropic.AnthropicError, ValueError) as exc:
            raise LLMNotConfigured(f"anthropic: {exc}") from exc
        return cls(client, name="anthropic")

    @classmethod
    def bedrock(
        cls,
        *,
        region: str,
        access_key: str | None,
        secret_key: str | None,
        session_token: str | None,
        base_url: str | None,
        timeout_s: float,
    ) -> AnthropicProvider:
        """Bedrock: signed with these AWS keys, or else with what AWS's usual credential
        chain finds (see :func:`aws_credentials_found`)."""
        try:
            client = anthropic.AnthropicBedrock(
                aws_region=region,
                aws_access_key=access_key,
                aws_secret_key=secret_key,
                aws_session_token=session_token,
                base_url=base_url,
                timeout=timeout_s,
                max_retries=0,
            )
        except (anthropic.AnthropicError, ValueError) as exc:
            raise LLMNotConfigured(f"bedrock: {exc}") from exc
        return cls(client, name="bedrock")

    def complete(self, request: LLMRequest, *, timeout_s: float) -> Completion:
        """One Messages call; raises only ``LLMError``s."""
        if self._client.is_closed():
            raise ProviderClosed(self.name)
        tools = [_tool(t) for t in request.tools]
        forced: ToolChoiceToolParam | None = None
        if request.schema is not None:
            tools.append(_schema_tool(request))
            forced = {"type": "tool", "name": request.schema_name}
        try:
            message = self._client.messages.create(
                model=request.model,
                max_tokens=request.max_tokens,
                messages=_messages(request.messages),
                system=_system(request.system) or anthropic.omit,
                tools=tools or anthropic.omit,
                tool_choice=forced or anthropic.omit,
                timeout=timeout_s,
            )
        except anthropic.AnthropicError as exc:
            raise self._translated(exc, timeout_s) from exc
        return _completion(message, request, self.name)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def _translated(self, exc: anthropic.AnthropicError, timeout_s: float) -> LLMError:
        if isinstance(exc, anthropic.APIStatusError):
            return error_for_status(
                exc.status_code, exc.message, exc.response.headers, provider=self.name
            )
        if isinstance(exc, anthropic.APITimeoutError):
            return Unavailable(f"{self.name}: no answer within {timeout_s:g}s")
        if isinstance(exc, anthropic.APIConnectionError):
            return Unavailable(f"{self.name}: cannot connect: {exc}")
        if isinstance(exc, anthropic.APIResponseValidationError):
            return BadOutput(f"{self.name}: the answer does not parse: {exc}")
        return LLMError(f"{self.name}: {exc}")


def aws_credentials_found(region: str) -> bool:
    """Whether AWS's usual chain (environment, profile, SSO, container or instance role)
    finds credentials, as ``AnthropicBedrock`` will look for them without keys."""
    import boto3  # type: ignore[import-untyped]  # the [bedrock] extra; no stubs installed

    return boto3.Session(region_name=region).get_credentials() is not None


# -- our request → Messages ---------------------------------------------------------------


def _system(system: str) -> list[TextBlockParam]:
    if not system:
        return []
    return [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]


def _tool(tool: Tool) -> ToolParam:
    return {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}


def _schema_tool(request: LLMRequest) -> ToolParam:
    return {
        "name": request.schema_name,
        "description": f"Give the answer as {request.schema_name!r}, following its schema.",
        "input_schema": request.schema or {},
    }


def _messages(messages: tuple[Message, ...]) -> list[MessageParam]:
    """Our turns as Anthropic's: consecutive tool results share one user turn."""
    turns: list[MessageParam] = []
    results: list[ToolResultBlockParam] = []
    for message in messages:
        if message.role == "tool":
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id or "",
                    "content": message.content,
                }
            )
            continue
        if results:
            turns.append({"role": "user", "content": results})
            results = []
        turns.append(_turn(message))
    if results:
        turns.append({"role": "user", "content": results})
    return turns


def _turn(message: Message) -> MessageParam:
    if message.role == "user":
        return {"role": "user", "content": message.content}
    if not message.tool_calls:
        return {"role": "assistant", "content": message.content}
    blocks: list[TextBlockParam | ToolUseBlockParam] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
        for c in message.tool_calls
    ]
    return {"role": "assistant", "content": blocks}


# -- Messages → our completion ------------------------------------------------------------


def _completion(message: AnthropicMessage, request: LLMRequest, provider: str) -> Completion:
    text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
    uses = [b for b in message.content if isinstance(b, ToolUseBlock)]
    stop = _STOPS.get(message.stop_reason or "", "other")
    if request.schema is not None:
        text, uses = _structured(uses, request.schema_name, provider), []
        stop = "end" if stop == "tool_calls" else stop
    return Completion(
        text=text,
        tool_calls=tuple(_call(u, provider) for u in uses),
        usage=_usage(message),
        model=message.model,
        stop=stop,
    )


def _structured(uses: list[ToolUseBlock], name: str, provider: str) -> str:
    """The forced tool's input, as JSON text."""
    for use in uses:
        if use.name == name:
            return json.dumps(use.input)
    raise BadOutput(f"{provider}: the answer did not use the {name!r} tool it was forced to")


def _call(use: ToolUseBlock, provider: str) -> ToolCall:
    arguments: Any = use.input
    if not isinstance(arguments, dict):
        raise BadOutput(f"{provider}: tool call {use.name!r}: input is not an object")
    return ToolCall(id=use.id, name=use.name, arguments=arguments)


def _usage(message: AnthropicMessage) -> Usage:
    """Anthropic's ``input_tokens`` leaves out the tokens read from or written to the
    cache; ours counts every prompt token."""
    usage = message.usage
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=usage.input_tokens + read + written,
        output_tokens=usage.output_tokens,
        cached_tokens=read,
        cache_write_tokens=written,
    )
