"""``GET /metrics`` over real HTTP, read from a real SQLite database that the engine wrote."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from bot.webhooks.metrics import metrics_router
from tests.bot.test_webhooks_app import serving
from tests.orchestrator.test_engine import Harness


def scrape(h: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    app = FastAPI()
    app.include_router(metrics_router(h.store))
    with serving(app) as url:
        response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def call(
    provider: str, model: str, tokens_in: int, tokens_out: int, **more: object
) -> dict[str, object]:
    return {
        "provider": provider,
        "model": model,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "cache_hit": False,
        "tokens_saved": 0,
        **more,
    }


def test_llm_tokens_calls_and_cost_are_counted_by_provider_and_model(h: Harness) -> None:
    first = h.engine.submit_request("lint it")
    second = h.engine.submit_request("test it")
    h.engine.record_llm_call(
        first, None, call("openai", "gpt-4o", 1200, 300, cached_tokens=1000), 0.01
    )
    h.engine.record_llm_call(
        first, None, call("openai", "gpt-4o", 0, 0, cache_hit=True, tokens_saved=1500), 0.0
    )
    h.engine.record_llm_call(second, None, call("anthropic", "claude-sonnet-4", 800, 200), 0.02)
    h.engine.record_llm_call(second, None, {"usage": {}}, 0.0)  # an old event: no fields

    figures = scrape(h)

    def tokens(provider: str, model: str, kind: str) -> float:
        labels = (("kind", kind), ("model", model), ("provider", provider))
        return figures.get(("firstmate_llm_tokens_total", labels), 0.0)

    assert tokens("openai", "gpt-4o", "input") == 1200
    assert tokens("openai", "gpt-4o", "output") == 300
    assert tokens("openai", "gpt-4o", "cached") == 1000
    assert tokens("openai", "gpt-4o", "saved") == 1500
    assert tokens("anthropic", "claude-sonnet-4", "input") == 800
    assert tokens("anthropic", "claude-sonnet-4", "output") == 200
    calls = {
        labels: value
        for (name, labels), value in figures.items()
        if name == "firstmate_llm_calls_total"
    }
    assert calls == {
        (("cache", "miss"), ("model", "gpt-4o"), ("provider", "openai")): 1,
        (("cache", "hit"), ("model", "gpt-4o"), ("provider", "openai")): 1,
        (("cache", "miss"), ("model", "claude-sonnet-4"), ("provider", "anthropic")): 1,
        (("cache", "miss"), ("model", "unknown"), ("provider", "unknown")): 1,
    }
    assert figures[("firstmate_llm_cost_usd_total", ())] == pytest.approx(0.03)
    assert figures[("firstmate_runs", (("state", "planning"),))] == 2


def test_a_database_without_llm_calls_scrapes_empty_families(h: Harness) -> None:
    figures = scrape(h)
    assert figures[("firstmate_llm_cost_usd_total", ())] == 0
    assert not [name for name, _ in figures if name.startswith("firstmate_llm_tokens")]
