"""The runtime's LLM clients, built from the settings against the local model server
and a real Redis: one client a ``provider:model``, and their connections closed with
the runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.config import Settings
from orchestrator.providers.base import LLMRequest, Message
from orchestrator.providers.errors import ProviderClosed
from tests.llm_api import LLMAPI
from workers import runtime

PING = LLMRequest(model="", messages=(Message("user", "ping"),))


def _settings(tmp_path: Path, redis_url: str, api: LLMAPI, spec: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'firstmate.db'}",
        redis_url=redis_url,
        llm=spec,
        openai_base_url=api.openai_url,
        anthropic_base_url=api.url,
        anthropic_api_key=SecretStr("sk-ant-test"),
    )


@pytest.mark.parametrize("spec", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
def test_closing_the_runtime_closes_its_llm_clients(
    tmp_path: Path, redis_url: str, spec: str
) -> None:
    with LLMAPI() as api:
        rt = runtime.build(_settings(tmp_path, redis_url, api, spec))
        llm = rt.llm()
        try:
            assert rt.llm(spec) is llm  # one client a spec, reused
            completion, _ = llm.complete(PING, use_cache=False)
            assert completion.text == "echo: ping"
        finally:
            rt.close()

        with pytest.raises(ProviderClosed, match="closed"):
            llm.provider.complete(PING, timeout_s=5)
        assert len(api.requests()) == 1  # nothing more was sent
