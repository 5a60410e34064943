"""The OpenAI Chat Completions adapter: OpenAI, Azure OpenAI, and OpenAI-compatible
endpoints (Gemini, Mistral, OpenRouter, and local servers such as Ollama, vLLM or
llama.cpp through ``OPENAI_BASE_URL``).

``system`` goes first as a system message, so every call of an agent starts with the same
prefix (OpenAI caches a repeated prefix of 1024 tokens or more by itself). Tools use
native tool calling; a ``schema`` asks for ``response_format: json_schema`` and the
answer's text is the JSON. The SDK's retries are off: one call, one attempt, and its
errors become ``providers.errors`` here, once.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallUnion,
)
from openai.types.shared_params import ResponseFormatJSONSchema

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

__all__ = ["OpenAIProvider"]

LengthParam = Literal["max_tokens", "max_completion_tokens"]
_STOPS: dict[str, StopReason] = {"stop": "end", "tool_calls": "tool_calls", "length": "max_tokens"}


class OpenAIProvider:
    """A :class:`~orchestrator.providers.base.Provider` over an ``openai.OpenAI`` client
    (or ``AzureOpenAI``). ``length_param`` is the parameter that carries ``max_tokens``:
    OpenAI's own models want ``max_completion_tokens``, compatible servers ``max_tokens``."""

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        name: str = "openai",
        length_param: LengthParam = "max_tokens",
    ) -> None:
        self.name = name
        self._client = client
        self._length_param = length_param

    @classmethod
    def compatible(
        cls,
        name: str,
        *,
        api_key: str,
        base_url: str | None,
        timeout_s: float,
        length_param: LengthParam = "max_tokens",
    ) -> OpenAIProvider:
        """OpenAI itself (``base_url`` None) or an OpenAI-compatible endpoint."""
        try:
            client = openai.OpenAI(
                api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise LLMNotConfigured(f"{name}: {exc}") from exc
        return cls(client, name=name, length_param=length_param)

    @classmethod
    def azure(
        cls, *, api_key: str, endpoint: str, api_version: str, timeout_s: float
    ) -> OpenAIProvider:
        """Azure OpenAI: the request's model is the deployment's name."""
        try:
            client = openai.AzureOpenAI(
                api_key=api_key,
                azure_endpoint=endpoint,
                api_version=api_version,
                timeout=timeout_s,
                max_retries=0,
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise LLMNotConfigured(f"azure: {exc}") from exc
        return cls(client, name="azure", length_param="max_completion_tokens")

    def complete(self, request: LLMRequest, *, timeout_s: float) -> Completion:
        """One Chat Completions call; raises only ``LLMError``s."""
        if self._client.is_closed():
            raise ProviderClosed(self.name)
        limit = request.max_tokens
        try:
            response = self._client.chat.completions.create(
                model=request.model,
                messages=_messages(request),
                tools=[_tool(t) for t in request.tools] or openai.omit,
                response_format=_response_format(request) or openai.omit,
                temperature=request.temperature,
                max_tokens=limit if self._length_param == "max_tokens" else openai.omit,
                max_completion_tokens=limit if self._length_param != "max_tokens" else openai.omit,
                timeout=timeout_s,
            )
        except openai.OpenAIError as exc:
            raise self._translated(exc, timeout_s) from exc
        return _completion(response, self.name)

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def _translated(self, exc: openai.OpenAIError, timeout_s: float) -> LLMError:
        if isinstance(exc, openai.APIStatusError):
            return error_for_status(
                exc.status_code, exc.message, exc.response.headers, provider=self.name
            )
        if isinstance(exc, openai.APITimeoutError):
            return Unavailable(f"{self.name}: no answer within {timeout_s:g}s")
        if isinstance(exc, openai.APIConnectionError):
            return Unavailable(f"{self.name}: cannot connect: {exc}")
        if isinstance(exc, openai.APIResponseValidationError):
            return BadOutput(f"{self.name}: the answer does not parse: {exc}")
        return LLMError(f"{self.name}: {exc}")


# -- our request → Chat Completions ------------------------------------------------------


def _messages(request: LLMRequest) -> list[ChatCompletionMessageParam]:
    system: list[ChatCompletionMessageParam] = (
        [{"role": "system", "content": request.system}] if request.system else []
    )
    return system + [_message(m) for m in request.messages]


def _message(message: Message) -> ChatCompletionMessageParam:
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content,
        }
    if message.role == "user":
        return {"role": "user", "content": message.content}
    if not message.tool_calls:
        return {"role": "assistant", "content": message.content}
    return {
        "role": "assistant",
        "content": message.content or None,
        "tool_calls": [_call(c) for c in message.tool_calls],
    }


def _call(call: ToolCall) -> ChatCompletionMessageFunctionToolCallParam:
    arguments = json.dumps(call.arguments)
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _tool(tool: Tool) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def _response_format(request: LLMRequest) -> ResponseFormatJSONSchema | None:
    if request.schema is None:
        return None
    return {
        "type": "json_schema",
        "json_schema": {
            "name": request.schema_name,
            "schema": request.schema,
            "strict": _strict(request.schema),
        },
    }


def _strict(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts ``schema``: every object closed
    (``additionalProperties: false``) with all of its properties required."""
    if isinstance(schema, list):
        return all(_strict(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        closed = schema.get("additionalProperties") is False
        if not closed or set(schema.get("required", ())) != set(properties):
            return False
    return all(_strict(value) for value in schema.values())


# -- Chat Completions → our completion ---------------------------------------------------


def _completion(response: ChatCompletion, provider: str) -> Completion:
    if not response.choices:
        raise BadOutput(f"{provider}: the answer has no choices")
    choice = response.choices[0]
    calls = tuple(_tool_call(c, provider) for c in choice.message.tool_calls or ())
    return Completion(
        text=choice.message.content or "",
        tool_calls=calls,
        usage=_usage(response),
        model=response.model,
        stop=_STOPS.get(choice.finish_reason or "", "other"),
    )


def _tool_call(call: ChatCompletionMessageToolCallUnion, provider: str) -> ToolCall:
    if not isinstance(call, ChatCompletionMessageFunctionToolCall):
        raise BadOutput(f"{provider}: a {call.type!r} tool call, where a function was expected")
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except ValueError as exc:
        raise BadOutput(f"{provider}: tool call {call.function.name!r}: bad JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise BadOutput(f"{provider}: tool call {call.function.name!r}: arguments not an object")
    return ToolCall(id=call.id, name=call.function.name, arguments=arguments)


def _usage(response: ChatCompletion) -> Usage:
    usage = response.usage
    if usage is None:
        return Usage()
    details = usage.prompt_tokens_details
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=(details.cached_tokens or 0) if details else 0,
        cache_write_tokens=(details.cache_write_tokens or 0) if details else 0,
    )
