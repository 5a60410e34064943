"""``GET /metrics``: Prometheus figures, read from the database at scrape time.

The database is the truth and several processes (servers, workers) change it, so the
figures are computed when Prometheus asks rather than counted in one process: runs and
steps by state, step durations and queue waits over the last day, inbound deliveries by
source, and what LLM calls cost: dollars, and tokens and calls by provider and model
(every ``llm.call`` event the runs recorded, cache hits and the tokens they saved too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlmodel import col

from orchestrator.models import Event, Inbound, Run, Step, utcnow
from orchestrator.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
WINDOW = timedelta(days=1)


class FirstmateCollector(Collector):
    """Firstmate's figures, one query per family."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        with self.store.reading() as s:
            yield _by_state(s, Run, "firstmate_runs", "Runs by state")
            yield _by_state(s, Step, "firstmate_steps", "Steps by state")
            since = utcnow() - WINDOW
            rows = (
                s.connection()
                .execute(
                    select(col(Step.queued_at), col(Step.started_at), col(Step.finished_at)).where(
                        col(Step.finished_at) > since
                    )
                )
                .all()
            )
            yield _histogram(
                "firstmate_step_duration_seconds",
                "Step attempt durations, steps finished in the last day",
                [(f - st).total_seconds() for _, st, f in rows if st and f],
            )
            yield _histogram(
                "firstmate_step_queue_wait_seconds",
                "Time from queued to started, steps finished in the last day",
                [(st - q).total_seconds() for q, st, _ in rows if q and st and st >= q],
            )
            yield _inbound(s)
            spent = select(func.coalesce(func.sum(col(Run.cost_usd)), 0.0))  # planning too
            cost = s.connection().execute(spent).scalar_one()
            family = CounterMetricFamily("firstmate_llm_cost_usd", "LLM spend recorded by runs")
            family.add_metric([], float(cost))
            yield family
            yield from _llm_calls(s)


def _by_state(s: Any, model: type[Run] | type[Step], name: str, doc: str) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=["state"])
    query = select(col(model.status), func.count()).group_by(col(model.status))
    for state, count in s.connection().execute(query).all():
        family.add_metric([state], float(count))
    return family


def _histogram(name: str, doc: str, values: list[float]) -> Metric:
    buckets: list[tuple[str, float]] = []
    for bound in BUCKETS:
        buckets.append((str(float(bound)), float(sum(v <= bound for v in values))))
    buckets.append(("+Inf", float(len(values))))
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], buckets, sum_value=float(sum(values)))
    return family


# What an ``llm.call`` event says (``Call.as_event``), by the ``kind`` label it gets.
TOKENS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cached": "cached_tokens",
    "cache_write": "cache_write_tokens",
    "saved": "tokens_saved",
}


def _llm_calls(s: Any) -> Iterator[Metric]:
    tokens: Counter[tuple[str, str, str]] = Counter()
    calls: Counter[tuple[str, str, str]] = Counter()
    query = select(col(Event.data)).where(col(Event.type) == "llm.call")
    for data in s.connection().execute(query).scalars():
        data = data if isinstance(data, dict) else {}
        provider = str(data.get("provider") or "unknown")
        model = str(data.get("model") or "unknown")
        for kind, key in TOKENS.items():
            value = data.get(key)
            if isinstance(value, int | float) and value > 0:
                tokens[provider, model, kind] += int(value)
        calls[provider, model, "hit" if data.get("cache_hit") else "miss"] += 1
    yield _counter(
        "firstmate_llm_tokens",
        "LLM tokens by provider, model and kind (input, output, cached, cache_write; saved: "
        "what cache hits did not send)",
        ["provider", "model", "kind"],
        tokens,
    )
    yield _counter(
        "firstmate_llm_calls",
        "LLM calls by provider, model and whether the response cache answered",
        ["provider", "model", "cache"],
        calls,
    )


def _counter(
    name: str, doc: str, labels: list[str], counts: Counter[tuple[str, str, str]]
) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, count in sorted(counts.items()):
        family.add_metric(list(values), float(count))
    return family


SOURCES = ("slack", "github", "n8n", "api")


def _inbound(s: Any) -> Metric:
    family = CounterMetricFamily(
        "firstmate_webhook_deliveries", "Inbound deliveries recorded, by source", labels=["source"]
    )
    for source in SOURCES:  # LIKE is portable; SQLite and PostgreSQL split strings differently
        query = select(func.count()).where(col(Inbound.key).like(f"{source}:%"))
        family.add_metric([source], float(s.connection().execute(query).scalar_one()))
    return family


def metrics_router(store: Store) -> APIRouter:
    """The ``/metrics`` route on its own registry (no process-local defaults mixed in)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FirstmateCollector(store))
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await anyio.to_thread.run_sync(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE)

    return router
