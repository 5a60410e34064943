"""The REST API and its event stream over real HTTP: uvicorn on a loopback port, httpx as
the client, a real runtime on a SQLite file and Redis, and real worker processes where a
run has to move (echo steps only: no Docker needed)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr

from bot.webhooks import create_app
from bot.webhooks.api import api_router
from bot.webhooks.auth import identity
from bot.webhooks.ratelimit import RateLimiter
from orchestrator import queries
from orchestrator.config import Settings
from orchestrator.queries import RunReport
from tests.bot.test_webhooks_app import error, serving
from tests.services import Workers
from workers import runtime
from workers.runtime import Runtime

TOKEN, OTHER = "first-token", "second-token"
HELLO = """
name: hello
inputs:
  who: {default: world}
steps:
  - id: greet
    agent: echo
    with: {text: "hi ${{ inputs.who }}"}
  - id: again
    agent: echo
    depends_on: [greet]
    with: {text: "${{ steps.greet.outputs.text }}!"}
"""
NEEDY = """
name: needy
inputs:
  who: {required: true}
steps:
  - id: greet
    agent: echo
    with: {text: "${{ inputs.who }}"}
"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    """One test's API: its runtime, its served app and its worker processes."""

    rt: Runtime
    url: str
    client: httpx.Client  # sends TOKEN
    workers: Workers

    def submit(self, playbook: str = "hello", **body: Any) -> str:
        response = self.client.post("/api/runs", json={"playbook": playbook, **body})
        assert response.status_code == 201, response.text
        return str(response.json()["run_id"])

    def report(self, run_id: str) -> RunReport:
        return queries.run_report(self.rt.store, run_id, detail=True)

    def wait(
        self, run_id: str, until: Callable[[RunReport], bool], timeout: float = 60
    ) -> RunReport:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until(report := self.report(run_id)):
                return report
            time.sleep(0.05)
        raise AssertionError(
            f"run {run_id}: {self.report(run_id)}\n{self.workers.output()[-3000:]}"
        )

    def plan_checkpoint(self, run_id: str) -> str:
        [checkpoint] = self.client.get(f"/api/runs/{run_id}").json()["checkpoints"]
        assert checkpoint["kind"] == "plan"
        return str(checkpoint["id"])


@contextmanager
def api_env(
    tmp: Path,
    redis_url: str,
    *,
    tokens: str | None = f"{TOKEN},{OTHER}",
    limit: int = 0,
    window_s: int = 60,
    keepalive_s: float = 15.0,
) -> Iterator[Api]:
    redis.Redis.from_url(redis_url).flushall()
    playbooks = tmp / "playbooks"
    playbooks.mkdir()
    (playbooks / "hello.yaml").write_text(HELLO)
    (playbooks / "needy.yaml").write_text(NEEDY)
    database = f"sqlite:///{tmp / 'data' / 'firstmate.db'}"
    settings = Settings(
        data_dir=tmp / "data",
        database_url=database,
        redis_url=redis_url,
        playbooks=playbooks,
        api_tokens=SecretStr(tokens) if tokens else None,
    )
    worker_env = {
        "FIRSTMATE_DATA_DIR": str(tmp / "data"),
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "FIRSTMATE_PLAYBOOKS": str(playbooks),
        "FIRSTMATE_LEASE_S": "3",
        "FIRSTMATE_RECONCILE_S": "1",
        "FIRSTMATE_SANDBOX_POOL_SIZE": "0",
        "DOCKER_HOST": f"unix://{tmp / 'no-docker.sock'}",  # echo steps need no sandbox
    }
    rt = runtime.build(settings)
    workers = Workers(worker_env, tmp / "logs")
    router = api_router(rt, RateLimiter(rt.redis, limit, window_s), keepalive_s=keepalive_s)
    try:
        with (
            serving(create_app(routers=[router])) as url,
            httpx.Client(base_url=url, headers=bearer(TOKEN), timeout=30) as client,
        ):
            yield Api(rt, url, client, workers)
    finally:
        workers.stop()
        rt.close()


@pytest.fixture
def api(tmp_path: Path, redis_url: str) -> Iterator[Api]:
    with api_env(tmp_path, redis_url) as env:
        yield env


def as_json(report: RunReport) -> dict[str, Any]:
    """What ``firstmate runs show --json`` prints for the run."""
    return dict(json.loads(report.model_dump_json()))


# -- submit, list, show ----------------------------------------------------------------


def test_submitted_runs_are_listed_newest_first_and_shown_like_the_cli(api: Api) -> None:
    first = api.client.post("/api/runs", json={"playbook": "hello", "approve_plan": True})
    second = api.client.post("/api/runs", json={"playbook": "hello", "inputs": {"who": "you"}})
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["status"] == "awaiting_approval"
    assert second.json()["status"] == "running"  # its first step is queued already
    one, two = first.json()["run_id"], second.json()["run_id"]
    assert first.headers["location"] == f"/api/runs/{one}"

    listed = api.client.get("/api/runs")
    assert listed.status_code == 200
    assert [r["run_id"] for r in listed.json()] == [two, one]
    cli = [r.model_dump(mode="json") for r in queries.list_runs(api.rt.store)]
    assert listed.json() == cli
    assert set(listed.json()[0]) == {"run_id", "status", "source", "playbook", "created_at"}
    assert listed.json()[0]["source"] == "api"
    assert [r["run_id"] for r in api.client.get("/api/runs", params={"limit": 1}).json()] == [two]

    shown = api.client.get(f"/api/runs/{two}")
    assert shown.status_code == 200
    assert shown.json() == as_json(api.report(two))
    assert [s["id"] for s in shown.json()["steps"]] == ["greet", "again"]
    assert shown.json()["events"][0]["type"] == "run.received"
    assert api.report(two).steps[0].status == "queued"


@pytest.mark.parametrize("limit", [0, 501, "many"])
def test_list_limit_outside_1_to_500_is_422(api: Api, limit: object) -> None:
    response = api.client.get("/api/runs", params={"limit": limit})
    assert response.status_code == 422
    assert error(response)["code"] == "invalid_request"


def test_an_idempotency_key_starts_one_run_per_token(api: Api) -> None:
    body = {"playbook": "hello", "approve_plan": True}
    key = {"Idempotency-Key": "order-42"}
    first = api.client.post("/api/runs", json=body, headers=key)
    again = api.client.post("/api/runs", json=body, headers=key)
    other = api.client.post("/api/runs", json=body, headers={**key, **bearer(OTHER)})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json() == first.json()
    assert other.json()["run_id"] != first.json()["run_id"]
    assert len(queries.list_runs(api.rt.store)) == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"playbook": "nope"}, 404, "unknown_playbook"),
        ({"playbook": "needy"}, 422, "invalid_inputs"),
        ({"playbook": "hello", "inputs": {"whom": "x"}}, 422, "invalid_inputs"),
        ({"playbook": "../hello.yaml"}, 422, "invalid_request"),  # names only, no paths
        ({"playbook": "hello", "approve": True}, 422, "invalid_request"),
        ({"inputs": {}}, 422, "invalid_request"),
    ],
    ids=["unknown", "missing-input", "unknown-input", "path", "unknown-field", "no-playbook"],
)
def test_a_run_that_cannot_start_records_nothing(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    response = api.client.post("/api/runs", json=body)
    assert response.status_code == status
    assert error(response)["code"] == code
    assert queries.list_runs(api.rt.store) == []


def test_an_unknown_run_is_404(api: Api) -> None:
    for method, path in [
        ("GET", "/api/runs/nope"),
        ("GET", "/api/runs/nope/events"),
        ("POST", "/api/runs/nope/cancel"),
    ]:
        response = api.client.request(method, path)
        assert response.status_code == 404, path
        assert error(response)["code"] == "not_found"
        assert "'nope'" in error(response)["message"]


# -- decisions and cancelling ----------------------------------------------------------


def test_approving_the_plan_runs_it_and_a_second_decision_is_409(api: Api) -> None:
    api.workers.start()
    run_id = api.submit(approve_plan=True)
    checkpoint = api.plan_checkpoint(run_id)
    body = {"decision": "approve", "modifications": {"greet": {"text": "changed"}}}

    decided = api.client.post(f"/api/checkpoints/{checkpoint}/decision", json=body)
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "decided"
    assert decided.json()["decision"] == "approve"
    assert decided.json()["decided_by"] == identity(TOKEN)
    # The approval was of the plan before the change: the changed plan asks for its own.
    changed = api.wait(run_id, lambda r: len(r.checkpoints or []) == 2)
    assert changed.status == "awaiting_approval"
    second = next(c for c in changed.checkpoints or [] if c.status == "open")
    assert "version 2" in second.prompt
    approved = api.client.post(
        f"/api/checkpoints/{second.id}/decision", json={"decision": "approve"}
    )
    assert approved.status_code == 200, approved.text
    report = api.wait(run_id, lambda r: r.status == "succeeded")
    assert report.steps[1].outputs == {"text": "changed!"}

    again = api.client.post(
        f"/api/checkpoints/{checkpoint}/decision",
        json={"decision": "reject"},
        headers=bearer(OTHER),
    )
    assert again.status_code == 409
    assert error(again)["code"] == "decision_conflict"
    first, _ = api.client.get(f"/api/runs/{run_id}").json()["checkpoints"]
    assert first == decided.json()
    assert api.report(run_id).status == "succeeded"


def test_rejecting_the_plan_aborts_the_run(api: Api) -> None:
    run_id = api.submit(approve_plan=True)
    checkpoint = api.plan_checkpoint(run_id)
    response = api.client.post(
        f"/api/checkpoints/{checkpoint}/decision", json={"decision": "reject"}
    )
    assert response.status_code == 200
    assert api.report(run_id).status == "aborted"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"decision": "continue"}, 409, "decision_conflict"),  # not a plan's decision
        ({"decision": "approve", "modifications": {"nope": {"x": 1}}}, 409, "decision_conflict"),
        ({"decision": "maybe"}, 422, "invalid_request"),
        ({"decision": "approve", "by": "someone"}, 422, "invalid_request"),
    ],
    ids=["wrong-kind", "unknown-step", "unknown-decision", "unknown-field"],
)
def test_a_decision_that_cannot_apply_changes_nothing(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    run_id = api.submit(approve_plan=True)
    checkpoint = api.plan_checkpoint(run_id)
    response = api.client.post(f"/api/checkpoints/{checkpoint}/decision", json=body)
    assert response.status_code == status
    assert error(response)["code"] == code
    report = api.report(run_id)
    assert report.status == "awaiting_approval"
    assert [c.status for c in report.checkpoints or []] == ["open"]


def test_deciding_an_unknown_checkpoint_is_404(api: Api) -> None:
    response = api.client.post("/api/checkpoints/nope/decision", json={"decision": "approve"})
    assert response.status_code == 404
    assert error(response)["code"] == "not_found"


def test_cancel_aborts_a_run_once(api: Api) -> None:
    run_id = api.submit(approve_plan=True)
    cancelled = api.client.post(f"/api/runs/{run_id}/cancel")
    assert (cancelled.status_code, cancelled.json()) == (
        200,
        {"run_id": run_id, "status": "aborted"},
    )
    report = api.report(run_id)
    assert report.status == "aborted"
    assert report.error == f"cancelled by {identity(TOKEN)}"
    assert [c.status for c in report.checkpoints or []] == ["cancelled"]

    again = api.client.post(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert error(again)["code"] == "decision_conflict"
    assert "has finished" in error(again)["message"]


# -- tokens ----------------------------------------------------------------------------

ROUTES = [
    ("POST", "/api/runs", {"playbook": "hello"}),
    ("GET", "/api/runs", None),
    ("GET", "/api/runs/r1", None),
    ("GET", "/api/runs/r1/events", None),
    ("POST", "/api/runs/r1/cancel", None),
    ("POST", "/api/checkpoints/c1/decision", {"decision": "approve"}),
]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        (bearer("wrong-token"), "invalid_token"),
        (bearer(TOKEN + "x"), "invalid_token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing_token"),
    ],
    ids=["none", "wrong", "longer", "not-bearer"],
)
def test_every_route_needs_a_known_token(api: Api, headers: dict[str, str], code: str) -> None:
    with httpx.Client(base_url=api.url, headers=headers) as anonymous:
        for method, path, body in ROUTES:
            response = anonymous.request(method, path, json=body)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert error(response)["code"] == code
    assert queries.list_runs(api.rt.store) == []
    other = api.client.get("/api/runs", headers=bearer(OTHER))
    assert other.status_code == 200  # every configured token is accepted


def test_without_configured_tokens_the_api_is_closed(tmp_path: Path, redis_url: str) -> None:
    with api_env(tmp_path, redis_url, tokens=None) as env:
        for method, path, body in ROUTES:
            response = env.client.request(method, path, json=body)  # sends a token anyway
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
            assert error(response)["code"] == "api_not_configured"
            assert "FIRSTMATE_API_TOKENS is not set" in error(response)["message"]
        assert queries.list_runs(env.rt.store) == []
        assert httpx.get(f"{env.url}/healthz").status_code == 200  # only /api is closed


# -- the event stream --------------------------------------------------------------------


@dataclass
class Sse:
    """One item of an event stream: an event, or a comment."""

    id: int | None = None
    event: str = ""
    data: dict[str, Any] | None = None
    comment: str | None = None


def read_sse(response: httpx.Response) -> Iterator[Sse]:
    """Parse ``text/event-stream`` as it arrives."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield Sse(comment=line[1:].strip())
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif fields:
            yield Sse(int(fields["id"]), fields["event"], json.loads(fields["data"]))
            fields = {}


def events_of(
    api: Api, run_id: str, headers: dict[str, str] | None = None, **params: Any
) -> list[Sse]:
    """Every event the stream sends, to its end."""
    with api.client.stream(
        "GET", f"/api/runs/{run_id}/events", headers=headers, params=params
    ) as r:
        assert r.status_code == 200
        return list(read_sse(r))


def test_a_client_that_reconnects_sees_every_event_once_and_in_order(api: Api) -> None:
    api.workers.start()
    run_id = api.submit(approve_plan=True)
    seen: list[Sse] = []
    with api.client.stream("GET", f"/api/runs/{run_id}/events") as first:
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/event-stream")
        assert first.headers["cache-control"] == "no-cache"
        for item in read_sse(first):
            seen.append(item)
            if len(seen) == 3:
                break  # and hang up
    resume = {"Last-Event-ID": str(seen[-1].id)}
    with api.client.stream("GET", f"/api/runs/{run_id}/events", headers=resume) as second:
        assert second.status_code == 200
        for item in read_sse(second):
            seen.append(item)
            if item.event == "checkpoint.opened":  # the rest happens while we watch
                checkpoint = item.data["data"]["checkpoint"] if item.data else ""
                decision = {"decision": "approve"}
                with httpx.Client(base_url=api.url, headers=bearer(OTHER)) as approver:
                    answer = approver.post(f"/api/checkpoints/{checkpoint}/decision", json=decision)
                assert answer.status_code == 200
    # the stream ended by itself, after the run's terminal event
    recorded = api.report(run_id).events or []
    assert [x.id for x in seen] == list(range(1, len(recorded) + 1))
    assert [(x.id, x.event) for x in seen] == [(e.seq, e.type) for e in recorded]
    assert seen[-1].event == "run.succeeded"
    assert seen[-1].data == json.loads(recorded[-1].model_dump_json())
    assert all(x.comment is None for x in seen)


def test_a_finished_runs_stream_ends_after_its_last_event(api: Api) -> None:
    run_id = api.submit(approve_plan=True)
    assert api.client.post(f"/api/runs/{run_id}/cancel").status_code == 200
    everything = events_of(api, run_id)
    last = everything[-1].id
    assert everything[-1].event == "run.aborted"
    assert [x.id for x in everything] == list(range(1, len(everything) + 1))
    assert [x.id for x in events_of(api, run_id, after=3)] == list(range(4, len(everything) + 1))
    for header, after in [("5", 1), ("1", 5)]:  # the later of the two counts
        resumed = events_of(api, run_id, headers={"Last-Event-ID": header}, after=after)
        assert [x.id for x in resumed] == list(range(6, len(everything) + 1))
    assert events_of(api, run_id, headers={"Last-Event-ID": str(last)}) == []


def test_a_bad_last_event_id_is_422(api: Api) -> None:
    run_id = api.submit(approve_plan=True)
    for headers, params in [({"Last-Event-ID": "x"}, {}), ({}, {"after": -1})]:
        response = api.client.get(f"/api/runs/{run_id}/events", headers=headers, params=params)
        assert response.status_code == 422
        assert error(response)["code"] == "invalid_request"


def test_an_idle_stream_sends_keepalives_and_stops_polling_when_the_client_leaves(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[float] = []
    events_after = queries.events_after

    def counted(*args: Any, **kwargs: Any) -> Any:
        polls.append(time.monotonic())
        return events_after(*args, **kwargs)

    monkeypatch.setattr(queries, "events_after", counted)
    with api_env(tmp_path, redis_url, keepalive_s=0.3) as env:
        run_id = env.submit(approve_plan=True)  # waits for approval: nothing more will come
        items: list[Sse] = []
        with env.client.stream("GET", f"/api/runs/{run_id}/events") as stream:
            for item in read_sse(stream):
                items.append(item)
                if sum(x.comment == "keepalive" for x in items) == 2:
                    break
        left = time.monotonic()
        time.sleep(2.0)
        assert [x.id for x in items if x.comment is None] == [1, 2, 3, 4, 5]
        assert [x.comment for x in items[5:]] == ["keepalive", "keepalive"]
        assert polls and max(polls) < left + 1.0, "still polling after the client left"


def test_open_streams_do_not_hold_up_other_requests(api: Api) -> None:
    run_id = api.submit(approve_plan=True)
    opened = threading.Barrier(9)
    stop = threading.Event()

    def watch() -> None:
        with api.client.stream("GET", f"/api/runs/{run_id}/events") as stream:
            lines = stream.iter_lines()
            next(lines)  # the stream is open and has sent its first event
            opened.wait(10)
            stop.wait(10)

    # No latency threshold: every stream stays open (its watcher waits for ``stop``) until
    # the 20 requests have been answered, each within the client's own timeout.
    with (
        ThreadPoolExecutor(8) as pool,
        httpx.Client(base_url=api.url, headers=bearer(TOKEN), timeout=5) as client,
    ):
        watchers = [pool.submit(watch) for _ in range(8)]
        try:
            opened.wait(10)
            statuses = [client.get("/api/runs").status_code for _ in range(20)]
            still_open = not any(watcher.done() for watcher in watchers)
        finally:
            stop.set()
        for watcher in watchers:
            watcher.result(10)
    assert statuses == [200] * 20
    assert still_open, "the streams had closed before GET /api/runs was answered"


# -- rate limits -------------------------------------------------------------------------


def test_a_burst_from_one_token_starts_exactly_the_limit(tmp_path: Path, redis_url: str) -> None:
    window_s = 3600
    # A fixed window: a burst across its boundary would be allowed twice.
    if (left := window_s - time.time() % window_s) < 60:
        time.sleep(left + 0.1)
    with api_env(tmp_path, redis_url, limit=50, window_s=window_s) as env:

        def post(i: int) -> httpx.Response:
            return env.client.post(
                "/api/runs", json={"playbook": "hello", "inputs": {"who": str(i)}}
            )

        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(post, range(500)))
        statuses = [r.status_code for r in responses]
        assert (statuses.count(201), statuses.count(429)) == (50, 450), set(statuses)
        for refused in (r for r in responses if r.status_code == 429):
            assert error(refused)["code"] == "rate_limited"
            assert 0 < int(refused.headers["retry-after"]) <= window_s
        started = {r.json()["run_id"] for r in responses if r.status_code == 201}
        runs = queries.list_runs(env.rt.store, limit=500)
        assert {r.run_id for r in runs} == started
        for run in runs:  # each recorded whole: its steps, its events, its first step queued
            report = env.report(run.run_id)
            assert [s.id for s in report.steps] == ["greet", "again"]
            assert [s.status for s in report.steps] == ["queued", "pending"]
            types = [e.type for e in report.events or []]
            assert types[:4] == ["run.received", "run.planning", "run.planned", "run.running"]
            assert "step.queued" in types
        # another token has a budget of its own
        other = env.client.post("/api/runs", json={"playbook": "hello"}, headers=bearer(OTHER))
        assert other.status_code == 201
