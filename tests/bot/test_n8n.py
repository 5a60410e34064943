"""n8n round trips over real HTTP: ``firstmate serve`` and worker processes
(``python -m workers``, with RQ's scheduler) on Redis and SQLite running echo playbooks
(no Docker), and a local HTTP server in the place of n8n's Wait node
(``$execution.resumeUrl``) receiving the result. Every delivery, retry and backoff is the
workers' own: the test only watches what arrives.

One Firstmate serves the module; a test that needs other settings (no token, a rate
limit, outgoing subscriptions) gets its own, on a Redis database of its own so that no
worker takes another's jobs.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from orchestrator import deliveries, queries, webhooklog
from orchestrator.config import Settings
from orchestrator.models import Run
from orchestrator.queries import RunReport
from orchestrator.webhooklog import DeliveryStatus
from tests.bot.test_webhooks_app import error
from tests.services import Workers, start_serve, stop
from tests.workers.test_callback import Receiver, signed_by
from workers import runtime
from workers.queue import NOTIFY, RQDispatcher, queue

TOKEN = "n8n-shared-secret"
SECRET = "whsec-n8n"
ECHO = """
name: echo
inputs:
  word: {default: hi}
steps:
  - id: say
    agent: echo
    with: {said: "${{ inputs.word }}"}
  - id: again
    agent: echo
    depends_on: [say]
    with: {said: "${{ steps.say.outputs.said }}!"}
outputs:
  said: "${{ steps.again.outputs.said }}"
"""
NEEDY = """
name: needy
inputs:
  word: {required: true}
steps:
  - id: say
    agent: echo
    with: {said: "${{ inputs.word }}"}
"""


class Firstmate:
    """A Firstmate as n8n sees it: ``firstmate serve`` and its workers, with ``env``."""

    def __init__(self, tmp: Path, redis_url: str, db: int, env: dict[str, str]) -> None:
        self.tmp = tmp
        playbooks = tmp / "playbooks"
        playbooks.mkdir()
        (playbooks / "echo.yaml").write_text(ECHO)
        (playbooks / "needy.yaml").write_text(NEEDY)
        redis_db = f"{redis_url.rsplit('/', 1)[0]}/{db}"
        redis.Redis.from_url(redis_db).flushdb()
        self.vars = {
            "FIRSTMATE_DATA_DIR": str(tmp / "data"),
            "DATABASE_URL": f"sqlite:///{tmp / 'data' / 'firstmate.db'}",
            "REDIS_URL": redis_db,
            "FIRSTMATE_PLAYBOOKS": str(playbooks),
            "FIRSTMATE_N8N_TOKEN": TOKEN,
            "FIRSTMATE_WEBHOOK_SECRET": SECRET,
            "FIRSTMATE_WEBHOOKS": "",
            "FIRSTMATE_RATE_LIMIT": "0",
            "FIRSTMATE_SANDBOX_POOL_SIZE": "0",
            "DOCKER_HOST": f"unix://{tmp / 'no-docker.sock'}",  # echo steps need no sandbox
            **env,
        }
        # The test's own view of the database (and the schema, before anyone serves).
        self.rt = runtime.build(
            Settings(
                data_dir=tmp / "data",
                database_url=self.vars["DATABASE_URL"],
                redis_url=redis_db,
                playbooks=playbooks,
            )
        )
        self.workers = Workers(self.vars, tmp / "logs")
        self.server: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(timeout=30)

    def serve(self) -> Firstmate:
        """Start ``firstmate serve`` and wait until it answers."""
        self.server, url = start_serve(self.vars, self.tmp / "serve.log", self.logs)
        self.client.base_url = httpx.URL(url)
        return self

    def close(self) -> None:
        self.client.close()
        stop(self.server)
        self.workers.stop()
        self.rt.close()

    # -- requests as n8n sends them ------------------------------------------------------

    def start(
        self,
        playbook: str = "echo",
        *,
        callback_url: str | None = None,
        key: str | None = None,
        token: str = TOKEN,
        workflow: str = "wf-7",
        **body: Any,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "X-N8N-Workflow": workflow}
        if key is not None:
            headers["Idempotency-Key"] = key
        if callback_url is not None:
            body["callback_url"] = callback_url
        return self.client.post(f"/webhooks/n8n/{playbook}", json=body, headers=headers)

    # -- what happened -------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        return [r.run_id for r in queries.list_runs(self.rt.store)]

    def run(self, run_id: str) -> Run:
        """The run, once a worker has recorded it (the webhook only queues it)."""
        return self.wait(f"run {run_id} is recorded", lambda: self._get(run_id), timeout=10)

    def _get(self, run_id: str) -> Run | None:
        with self.rt.store.session() as s:
            return s.get(Run, run_id)

    def recorded(self) -> set[str]:
        """The runs recorded once every request made so far has been: a worker records
        them in turn, so once a run started now is recorded, so is every one before it."""
        marker = self.start(workflow=f"marker-{secrets.token_hex(4)}").json()["run_id"]
        self.run(marker)
        return set(self.run_ids()) - {marker}

    def report(self, run_id: str) -> RunReport:
        return queries.run_report(self.rt.store, run_id)

    def ended(self, run_id: str, timeout: float = 60) -> RunReport:
        ended = ("succeeded", "failed", "aborted")
        self.run(run_id)
        self.wait(f"run {run_id} ends", lambda: self.report(run_id).status in ended, timeout)
        return self.report(run_id)

    def wait(self, what: str, until: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := until():
                return value
            time.sleep(0.05)
        raise AssertionError(f"never: {what}\n{self.logs()}")

    def logs(self) -> str:
        serve = self.tmp / "serve.log"
        text = serve.read_text(errors="replace") if serve.exists() else ""
        return text[-3000:] + "\n" + self.workers.output()[-3000:]


@contextmanager
def firstmate(
    tmp: Path, redis_url: str, db: int, *, workers: bool = True, **env: str
) -> Iterator[Firstmate]:
    fm = Firstmate(tmp, redis_url, db, env)
    try:
        if workers:
            fm.workers.start()  # they start while the server does
        fm.serve()
        yield fm
    finally:
        fm.close()


@pytest.fixture(scope="module")
def n8n(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Firstmate]:
    """The module's Firstmate: token and secret set, no rate limit, no subscriptions."""
    with firstmate(tmp_path_factory.mktemp("n8n"), redis_url, 1) as fm:
        yield fm


class Stamped(Receiver):
    """A Receiver that also notes when each POST arrived (``at``, monotonic)."""

    def __init__(self, answers: Sequence[int] = ()) -> None:
        self.at: list[float] = []
        super().__init__(answers)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        arrived, base = self.at, super()._handler()

        class Handler(base):  # type: ignore[misc,valid-type]
            def do_POST(self) -> None:
                arrived.append(time.monotonic())
                super().do_POST()

        return Handler


def delivered(receiver: Receiver) -> Callable[[], bool]:
    return lambda: any(p.answered == 200 for p in receiver.posts())


# -- the round trip ------------------------------------------------------------------------


def test_n8n_starts_a_run_and_its_signed_result_resumes_the_workflow(n8n: Firstmate) -> None:
    with Receiver() as wait_node:
        resume_url = f"{wait_node.url}/webhook-waiting/1234"
        began = time.monotonic()
        response = n8n.start(callback_url=resume_url, key="1234", inputs={"word": "ahoy"})
        answered_s = time.monotonic() - began
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        assert response.json() == {"run_id": run_id}
        assert answered_s < 2.0  # recorded and queued; nothing ran in the request
        report = n8n.ended(run_id)

        n8n.wait("the result is posted", delivered(wait_node), timeout=10)
        [got] = wait_node.posts()
    assert got.path == "/webhook-waiting/1234"
    assert signed_by(SECRET, got)
    assert got.headers["x-firstmate-delivery"] == run_id
    result = got.json()
    assert result["run_id"] == run_id
    assert result["status"] == report.status == "succeeded"
    assert result["outputs"] == {"said": "ahoy!"}
    assert [(s["id"], s["status"]) for s in result["steps"]] == [
        ("say", "succeeded"),
        ("again", "succeeded"),
    ]
    run = n8n.run(run_id)
    assert (run.source, run.requester, run.reply_to) == ("n8n", "wf-7", "callback")
    assert run.origin == {"n8n": {"callback_url": resume_url, "idempotency_key": "1234"}}


def test_a_callback_failing_twice_with_503_is_retried_and_delivered_once(
    n8n: Firstmate,
) -> None:
    with Stamped([503, 503]) as wait_node:
        run_id = n8n.start(callback_url=wait_node.url, key="exec-2").json()["run_id"]
        n8n.ended(run_id)
        n8n.wait("the third try succeeds", delivered(wait_node), timeout=20)
        time.sleep(1.5)  # nothing more is on its way
        posts, at = wait_node.posts(), wait_node.at
    assert [p.answered for p in posts] == [503, 503, 200]
    assert at[2] - at[0] >= 2.0  # retried later, not at once
    assert all(signed_by(SECRET, p) for p in posts)
    result = deliveries.posted(n8n.rt.store, run_id, "callback")["result"]
    assert (result.digest, result.ref) == ("delivered", "200")
    # The notifier backs off 2 s, then 4 s (RQ's scheduler rounds to whole seconds).
    # One chain of retries per run, even when an event queued a delivery meanwhile.
    first_gap, second_gap = at[1] - at[0], at[2] - at[1]
    assert first_gap >= 1.5 and second_gap >= 3.5, (first_gap, second_gap)


def test_a_callback_answering_404_is_given_up_and_not_retried(n8n: Firstmate) -> None:
    with Receiver([404]) as wait_node:
        run_id = n8n.start(callback_url=wait_node.url, key="exec-3").json()["run_id"]
        n8n.ended(run_id)
        n8n.wait("the callback is tried", wait_node.posts, timeout=10)
        # A later delivery (an event, the reconciler) sends nothing.
        RQDispatcher(n8n.rt.redis).schedule_notify(run_id, 0)
        time.sleep(3)
        assert len(wait_node.posts()) == 1
    scheduled = queue(NOTIFY, n8n.rt.redis).scheduled_job_registry.get_job_ids()
    assert [j for j in scheduled if run_id in j] == []
    assert deliveries.posted(n8n.rt.store, run_id, "callback")["result"].digest == "gone"


def test_the_same_idempotency_key_twice_is_one_run(n8n: Firstmate) -> None:
    before = set(n8n.run_ids())
    with Receiver() as wait_node:
        first = n8n.start(key="exec-9", callback_url=wait_node.url)
        again = n8n.start(key="exec-9", callback_url=wait_node.url)
        assert (first.status_code, again.status_code) == (202, 202)
        assert first.json() == again.json()
        assert n8n.recorded() - before == {first.json()["run_id"]}
        n8n.wait("the result is posted", delivered(wait_node), timeout=20)
        assert len(wait_node.posts()) == 1
    other = n8n.start(key="exec-10").json()["run_id"]
    assert other != first.json()["run_id"]
    n8n.run(other)


def test_without_a_callback_url_the_run_reports_nowhere(n8n: Firstmate) -> None:
    response = n8n.start()
    assert response.status_code == 202
    run_id = response.json()["run_id"]
    assert n8n.run(run_id).reply_to is None
    assert n8n.ended(run_id).status == "succeeded"
    assert deliveries.posted(n8n.rt.store, run_id, "callback") == {}


def test_no_body_at_all_runs_the_playbook_with_its_defaults(n8n: Firstmate) -> None:
    response = n8n.client.post("/webhooks/n8n/echo", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202, response.text
    run = n8n.run(response.json()["run_id"])
    assert run.inputs == {"word": "hi"} and run.requester == "n8n"


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Authorization": "Bearer wrong"}, "invalid_token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing_token"),
        ({}, "missing_token"),
    ],
)
def test_a_wrong_or_missing_token_is_401_and_records_nothing(
    n8n: Firstmate, headers: dict[str, str], code: str
) -> None:
    before = set(n8n.run_ids())
    response = n8n.client.post(
        "/webhooks/n8n/echo", json={"inputs": {}}, headers={**headers, "Idempotency-Key": "x"}
    )
    assert response.status_code == 401
    assert error(response)["code"] == code
    assert response.headers["www-authenticate"] == "Bearer"
    assert n8n.recorded() == before


def test_an_unauthenticated_request_is_401_whatever_its_body(n8n: Firstmate) -> None:
    response = n8n.client.post(
        "/webhooks/n8n/echo", json={"callback_url": "ftp://x"}, headers={"Authorization": "x"}
    )
    assert response.status_code == 401


def test_without_a_token_configured_the_webhook_is_404(tmp_path: Path, redis_url: str) -> None:
    with firstmate(tmp_path, redis_url, 2, workers=False, FIRSTMATE_N8N_TOKEN="") as bare:
        response = bare.start()
    assert response.status_code == 404
    assert error(response)["code"] == "n8n_not_configured"


def test_an_unknown_playbook_is_a_404_json_error(n8n: Firstmate) -> None:
    before = set(n8n.run_ids())
    response = n8n.start("no-such-playbook", key="k1")
    assert response.status_code == 404
    assert error(response)["code"] == "unknown_playbook"
    assert n8n.recorded() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"callback_url": "ftp://example.com/x"}, "invalid_request"),
        ({"callback_url": "not a url"}, "invalid_request"),
        ({"inputs": [1, 2]}, "invalid_request"),
        ({"input": {}}, "invalid_request"),  # a typo is not ignored
    ],
)
def test_a_malformed_body_is_422(n8n: Firstmate, body: dict[str, Any], code: str) -> None:
    before = set(n8n.run_ids())
    response = n8n.start(**body)
    assert response.status_code == 422
    assert error(response)["code"] == code
    assert n8n.recorded() == before


def test_missing_required_inputs_are_422(n8n: Firstmate) -> None:
    response = n8n.start("needy")
    assert response.status_code == 422
    assert error(response)["code"] == "invalid_inputs"


def test_a_rate_limited_workflow_is_429(tmp_path: Path, redis_url: str) -> None:
    # A server that lets a workflow start one run a minute.
    with firstmate(tmp_path, redis_url, 3, FIRSTMATE_RATE_LIMIT="1/60") as fm:
        accepted = fm.start(key="a")
        assert accepted.status_code == 202
        assert fm.start(key="a").status_code == 202  # a redelivery is not counted
        refused = fm.start(key="b")
        assert fm.recorded() == {accepted.json()["run_id"]}
    assert refused.status_code == 429
    assert error(refused)["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1


# -- outgoing webhooks ------------------------------------------------------------------------


def test_subscribers_hear_of_the_run_signed_retried_and_logged(
    tmp_path: Path, redis_url: str
) -> None:
    with Receiver([503]) as subscriber, Receiver() as wait_node:
        hooks = f"echo={subscriber.url}/hook,other={subscriber.url}/x"
        with firstmate(tmp_path, redis_url, 4, FIRSTMATE_WEBHOOKS=hooks) as fm:
            run_id = fm.start(callback_url=wait_node.url, key="exec-5").json()["run_id"]
            fm.ended(run_id)
            fm.wait("the subscriber gets the end", delivered(subscriber), timeout=15)
            fm.wait("the result is posted", delivered(wait_node), timeout=15)
            posts = subscriber.posts()
            [entry] = fm.wait(
                "the delivery is logged",
                lambda: [
                    e
                    for e in webhooklog.webhook_log(fm.rt.store, run_id)
                    if e.status is DeliveryStatus.DELIVERED
                ],
                timeout=5,
            )
    assert [p.answered for p in posts] == [503, 200]
    assert {p.path for p in posts} == {"/hook"}
    assert all(signed_by(SECRET, p) for p in posts)
    event = posts[-1].json()
    assert (event["type"], event["run_id"], event["playbook"]) == ("run.succeeded", run_id, "echo")
    assert event["result"]["outputs"] == {"said": "hi!"}
    assert (entry.status, entry.attempts, entry.response_status) == (
        DeliveryStatus.DELIVERED,
        2,
        200,
    )
    assert entry.url == f"{subscriber.url}/hook"
