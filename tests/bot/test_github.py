"""GitHub: deliveries signed as GitHub signs them, a local fake of GitHub's REST API, and
echo-only playbooks (no Docker needed).

Three layers: the client and the notify channel against the fake API; the route served by
uvicorn in this process on a real runtime (SQLite, Redis); and the whole stack — a
``firstmate serve`` process and a worker process — answering a ``/mate`` comment with
one comment that is created, then edited to show the end.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from bot.webhooks import create_app
from bot.webhooks.github import PATH, github_router, parse_event_map
from bot.webhooks.intake import run_id_for
from bot.webhooks.ratelimit import RateLimiter
from orchestrator import deliveries, queries
from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.models import Run
from orchestrator.queries import RunReport
from tests.bot.test_webhooks_app import error, serving
from tests.github_api import GitHubAPI, signed_headers
from tests.llm_api import LLMAPI, json_answer
from tests.services import free_port
from workers import runtime
from workers.notify.github import TARGET, GitHubChannel, GitHubClient
from workers.notify.notifier import Deferred
from workers.queue import PLAN, queue
from workers.runtime import Runtime

SECRET = "It's a Secret to Everybody"
TOKEN = "ghs-test-token"
REPO = "Codertocat/Hello-World"
ALLOWED = "Codertocat,hubot"
EVENTS = "pull_request.opened=pr-check"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"
ECHO = """
name: echo-only
inputs:
  word: {default: one}
  repository: {default: ""}
  issue: {default: 0}
  ref: {default: none}
outputs:
  said: "${{ steps.say.outputs.word }}"
steps:
  - id: say
    agent: echo
    with:
      word: "${{ inputs.word }}"
      where: "${{ inputs.repository }}#${{ inputs.issue }}@${{ inputs.ref }}"
"""
GATED = """
name: gated
approvers: [hubot]
steps:
  - id: ship
    agent: echo
    approval: required
    with: {message: shipped}
"""
PR_CHECK = """
name: pr-check
inputs:
  repository: {required: true}
  ref: {required: true}
steps:
  - id: check
    agent: echo
    with: {checked: "${{ inputs.repository }} ${{ inputs.ref }}"}
"""


def fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return payload


def comment(body: str, *, login: str = "Codertocat", repo: str = REPO) -> dict[str, Any]:
    """issue_comment_created.json with its comment's body and author (and sender) set."""
    payload = copy.deepcopy(fixture("issue_comment_created.json"))
    payload["comment"]["body"] = body
    payload["comment"]["user"]["login"] = login
    payload["sender"]["login"] = login
    payload["repository"]["full_name"] = repo
    return payload


def playbooks(folder: Path) -> Path:
    folder.mkdir()
    for name, text in (("echo-only", ECHO), ("gated", GATED), ("pr-check", PR_CHECK)):
        (folder / f"{name}.yaml").write_text(text)
    return folder


def settings(tmp: Path, redis_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp / "data",
        "database_url": f"sqlite:///{tmp / 'data' / 'firstmate.db'}",
        "redis_url": redis_url,
        "playbooks": tmp / "playbooks",
        "github_webhook_secret": SECRET,
        "github_token": TOKEN,
        "github_allowed_users": ALLOWED,
        "github_events": EVENTS,
        "github_git_url": None,  # no clone (tests/bot/test_github_pr.py clones)
    }
    return Settings(**{**values, **extra})


class Sender:
    """Sends deliveries to ``url`` as GitHub does."""

    def __init__(self, url: str) -> None:
        self.url = url

    def send(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        delivery: str | None = None,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        delivery = delivery or str(uuid.uuid4())
        signed = signed_headers(body, secret, event=event, delivery=delivery)
        return httpx.post(
            f"{self.url}{PATH}", content=body, headers={**signed, **(headers or {})}, timeout=10
        )

    def comment(self, body: str, **kwargs: Any) -> httpx.Response:
        delivery = kwargs.pop("delivery", None)
        return self.send("issue_comment", comment(body, **kwargs), delivery=delivery)


def wait(
    what: str, until: Callable[[], Any], timeout: float = 30, logs: Callable[[], str] = str
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := until():
            return value
        time.sleep(0.05)
    raise AssertionError(f"never: {what}\n{logs()}")


def inbound(rt: Runtime) -> list[str]:
    """The deliveries recorded as acted on (marks in Redis)."""
    prefix = "firstmate:delivery:"
    keys = rt.redis.keys(f"{prefix}github:*")
    return sorted(k.decode().removeprefix(prefix) for k in keys)


# --- the client and the channel ----------------------------------------------------


@pytest.fixture
def api() -> Iterator[GitHubAPI]:
    with GitHubAPI(token=TOKEN) as server:
        yield server


def test_the_client_sends_githubs_headers_and_edits_in_place(api: GitHubAPI) -> None:
    client = GitHubClient(TOKEN, api.url + "/")  # a trailing slash is fine too
    comment_id = client.create_comment(REPO, 7, "first")
    assert client.edit_comment(REPO, comment_id, "second") is True
    assert api.on_issue(REPO, 7) == [
        {
            "id": comment_id,
            "repo": REPO,
            "issue": 7,
            "body": "second",
            "edits": 1,
            "html_url": f"https://github.com/{REPO}/issues/7#issuecomment-{comment_id}",
        }
    ]
    created = api.calls("create")[0]
    assert created.path == f"/repos/{REPO}/issues/7/comments"
    assert created.headers["authorization"] == f"Bearer {TOKEN}"
    assert created.headers["accept"] == "application/vnd.github+json"
    assert created.headers["x-github-api-version"] == "2022-11-28"
    assert api.calls("edit")[0].path == f"/repos/{REPO}/issues/comments/{comment_id}"
    api.delete(comment_id)
    assert client.edit_comment(REPO, comment_id, "third") is False  # gone: the caller reposts


def test_the_client_turns_githubs_failures_into_waits(
    api: GitHubAPI, caplog: pytest.LogCaptureFixture
) -> None:
    client = GitHubClient(TOKEN, api.url)

    def deferred() -> Deferred:
        with pytest.raises(Deferred) as raised:
            client.create_comment(REPO, 1, "hi")
        return raised.value

    api.rate_limit("create", retry_after=7)  # secondary rate limit: 403 + Retry-After
    assert deferred().after_s == 7.0
    api.exhaust("create", reset_in=120)  # primary: 403, nothing left until the reset
    assert 100 < (deferred().after_s or 0) <= 120
    api.fail("create", 429, message="slow down")
    assert deferred().after_s == 60.0
    api.outage(True)
    assert deferred().after_s is None  # back off
    api.outage(False)
    api.fail("create", 403, message="Resource not accessible by integration")
    with caplog.at_level(logging.ERROR, logger="workers.notify.github"):
        refused = deferred()
    assert refused.after_s is None
    assert "Resource not accessible by integration" in caplog.text
    unreachable = GitHubClient(TOKEN, f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(Deferred) as raised:
        unreachable.create_comment(REPO, 1, "hi")
    assert raised.value.after_s is None and "unreachable" in raised.value.why
    wrong_token = GitHubClient("not-the-token", api.url)
    with pytest.raises(Deferred, match="401 Bad credentials"):
        wrong_token.create_comment(REPO, 1, "hi")
    assert client.create_comment(REPO, 1, "finally") > 0


@pytest.fixture
def rt(tmp_path: Path, redis_url: str) -> Iterator[Runtime]:
    redis.Redis.from_url(redis_url).flushall()
    playbooks(tmp_path / "playbooks")
    built = runtime.build(settings(tmp_path, redis_url))
    try:
        yield built
    finally:
        built.close()


def _github_run(rt: Runtime, issue: int | None = 1) -> str:
    origin = {"repo": REPO, "issue": issue, "html_url": "https://github.com/x"}
    return rt.engine.submit(
        rt.catalog.get("echo-only"),
        source="github",
        requester="Codertocat",
        origin={"github": origin},
        approve_plan=True,
        reply_to=TARGET,
    )


def test_the_channel_keeps_one_comment_per_run_edited_in_place(rt: Runtime, api: GitHubAPI) -> None:
    # (a wide min_edit_s, so that a slow machine still edits within it; set to 0 after)
    channel = GitHubChannel(GitHubClient(TOKEN, api.url), rt.store, min_edit_s=5.0)
    run_id = _github_run(rt)

    def deliver() -> None:
        destination = deliveries.destination(rt.store, run_id)
        assert destination is not None
        channel.deliver(destination)

    deliver()
    [created] = api.calls("create")
    assert created.path == f"/repos/{REPO}/issues/1/comments"
    [cp] = queries.open_checkpoints(rt.store, run_id)
    assert f"/mate approve {cp.id}" in created.body["body"]
    assert deliveries.posted(rt.store, run_id, TARGET)["comment"].ref == str(
        api.on_issue(REPO, 1)[0]["id"]
    )
    deliver()  # nothing changed: nothing sent
    assert len(api.calls()) == 1

    rt.engine.decide(cp.id, "approve", by="hubot")
    with pytest.raises(Deferred) as raised:  # edited less than min_edit_s ago
        deliver()
    assert 0 < (raised.value.after_s or 0) <= 5.0
    assert api.calls("edit") == []
    channel.min_edit_s = 0  # (instead of waiting 5 s)
    deliver()
    [edited] = api.calls("edit")
    assert "approved by **hubot**" in edited.body["body"]
    assert f"/mate approve {cp.id}" not in edited.body["body"]

    # Someone deleted the comment: the next change posts it again (and records it).
    api.delete(int(deliveries.posted(rt.store, run_id, TARGET)["comment"].ref))
    rt.engine.cancel(run_id, by="Codertocat")
    deliver()
    assert len(api.calls("create")) == 2
    [again] = api.on_issue(REPO, 1)
    assert "Aborted" in again["body"]
    assert deliveries.posted(rt.store, run_id, TARGET)["comment"].ref == str(again["id"])


def test_a_run_with_no_issue_to_comment_on_is_not_delivered(rt: Runtime, api: GitHubAPI) -> None:
    channel = GitHubChannel(GitHubClient(TOKEN, api.url), rt.store)
    destination = deliveries.destination(rt.store, _github_run(rt, issue=None))
    assert destination is not None
    channel.deliver(destination)
    assert api.calls() == []


# --- the route, served in this process -----------------------------------------------


@dataclass
class Hooked:
    rt: Runtime
    api: GitHubAPI
    sender: Sender

    def runs(self) -> list[RunReport]:
        """The runs recorded, once the deliveries' queued starts are worked (the route
        answers before a worker records the run: here the plan queue is drained)."""
        with runtime.using(self.rt):
            SimpleWorker(
                [queue(PLAN, self.rt.redis)], connection=self.rt.redis, serializer=JSONSerializer
            ).work(burst=True, logging_level="WARNING")
        return [
            queries.run_report(self.rt.store, r.run_id, checkpoints=True)
            for r in queries.list_runs(self.rt.store)
        ]

    def reply(self, count: int = 1) -> str:
        """The body of the ``count``-th comment posted (replies are posted after the
        answer, so this waits)."""
        return str(self.api.wait_for("create", count=count)[count - 1].body["body"])


@pytest.fixture
def hooked(tmp_path: Path, redis_url: str, api: GitHubAPI) -> Iterator[Hooked]:
    with hooked_env(tmp_path, redis_url, api) as env:
        yield env


@contextmanager
def hooked_env(
    tmp: Path, redis_url: str, api: GitHubAPI, *, limit: int = 0, window_s: int = 60, **extra: Any
) -> Iterator[Hooked]:
    redis.Redis.from_url(redis_url).flushall()
    playbooks(tmp / "playbooks")
    rt = runtime.build(settings(tmp, redis_url, **extra))
    router = github_router(
        rt, RateLimiter(rt.redis, limit, window_s), client=GitHubClient(TOKEN, api.url)
    )
    try:
        with serving(create_app(routers=[router])) as url:
            yield Hooked(rt, api, Sender(url))
    finally:
        rt.close()


def test_without_a_secret_the_route_is_not_configured(
    tmp_path: Path, redis_url: str, api: GitHubAPI
) -> None:
    with hooked_env(tmp_path, redis_url, api, github_webhook_secret=None) as env:
        response = env.sender.comment("/mate run echo-only")
    assert response.status_code == 404
    assert error(response)["code"] == "github_not_configured"


def test_a_wrong_or_missing_signature_is_refused_and_nothing_is_recorded(
    hooked: Hooked,
) -> None:
    wrong = hooked.sender.send("issue_comment", comment("/mate run echo-only"), secret="nope")
    assert wrong.status_code == 401
    assert error(wrong)["code"] == "invalid_signature"
    body = json.dumps(comment("/mate run echo-only")).encode()
    headers = signed_headers(body, SECRET, event="issue_comment", delivery="d-1")
    tampered = httpx.post(
        f"{hooked.sender.url}{PATH}", content=body.replace(b"echo-only", b"gated"), headers=headers
    )
    assert tampered.status_code == 401
    del headers["X-Hub-Signature-256"]
    missing = httpx.post(f"{hooked.sender.url}{PATH}", content=body, headers=headers)
    assert missing.status_code == 401
    assert "missing" in error(missing)["message"]
    assert hooked.runs() == [] and inbound(hooked.rt) == []


def test_a_ping_is_answered_with_pong(hooked: Hooked) -> None:
    response = hooked.sender.send("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert (response.status_code, response.json()) == (200, {"status": "pong"})


def test_a_mate_run_comment_starts_a_run_that_needs_no_further_approval(
    hooked: Hooked,
) -> None:
    response = hooked.sender.comment("/mate run echo-only word=ahoy\r\nthanks!", delivery="d-1")
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert response.json() == {"status": "started", "run_id": run_id}
    assert run_id == run_id_for("github", "d-1")
    [run] = hooked.runs()
    assert (run.source, run.playbook, run.status) == ("github", "echo-only", "running")
    assert run.checkpoints == []  # the allowed commenter's command was its approval
    with hooked.rt.store.session() as s:
        row = s.get(Run, run_id)
        assert row is not None
        assert row.requester == "Codertocat" and row.reply_to == "github"
        # The comment's inputs, plus what the payload says (an issue has no ref).
        assert row.inputs == {"word": "ahoy", "repository": REPO, "issue": 1, "ref": "none"}
        assert row.origin == {
            "github": {
                "repo": REPO,
                "issue": 1,
                "pull_request": False,
                "comment_id": 492700400,
                "html_url": f"https://github.com/{REPO}/issues/1#issuecomment-492700400",
            }
        }
    assert inbound(hooked.rt) == ["github:d-1"]


def test_a_redelivery_starts_nothing(hooked: Hooked) -> None:
    first = hooked.sender.comment("/mate run echo-only", delivery="d-1")
    again = hooked.sender.comment("/mate run echo-only", delivery="d-1")
    assert first.status_code == 202
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(hooked.runs()) == 1


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("push", fixture("push_with_new_branch.json")),
        ("check_run", fixture("check_run_completed.json")),
        ("issues", fixture("issues_opened.json")),  # not in FIRSTMATE_GITHUB_EVENTS
        ("issue_comment", comment("You are totally right! /mate run echo-only")),
        ("issue_comment", {**comment("/mate run echo-only"), "action": "edited"}),
        ("issue_comment", comment("/materialise the plan")),
    ],
)
def test_deliveries_nobody_asked_for_are_ignored(
    hooked: Hooked, event: str, payload: dict[str, Any]
) -> None:
    response = hooked.sender.send(event, payload)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert hooked.runs() == [] and inbound(hooked.rt) == []


def test_a_comment_by_a_login_not_allowed_starts_nothing_and_gets_no_reply(
    hooked: Hooked,
) -> None:
    response = hooked.sender.comment("/mate run echo-only", login="mallory")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ignored",
        "reason": "mallory is not in FIRSTMATE_GITHUB_ALLOWED_USERS",
    }
    assert hooked.sender.comment("/mate help", login="mallory").json()["status"] == "ignored"
    # Logins compare case-insensitively, as GitHub's do; this one gets an answer.
    assert hooked.sender.comment("/mate help", login="HUBOT").status_code == 200
    assert hooked.reply().startswith("@HUBOT **Firstmate** understands")
    time.sleep(0.2)
    assert len(hooked.api.calls("create")) == 1
    assert hooked.runs() == []


def test_a_mapped_pull_request_event_starts_its_playbook(hooked: Hooked) -> None:
    response = hooked.sender.send("pull_request", fixture("pull_request_opened.json"))
    assert response.status_code == 202, response.text
    [run] = hooked.runs()
    assert run.playbook == "pr-check"
    with hooked.rt.store.session() as s:
        row = s.get(Run, run.run_id)
        assert row is not None
        assert row.requester == "Codertocat"
        assert row.inputs == {"repository": REPO, "ref": "refs/pull/2/head"}
        assert row.origin["github"]["issue"] == 2
        assert row.origin["github"]["pull_request"] is True


def test_free_text_help_and_status_are_answered_in_a_comment(hooked: Hooked) -> None:
    assert hooked.sender.comment("/mate please fix the flaky test").json() == {"status": "replied"}
    free = hooked.reply(1)
    assert free.startswith("@Codertocat Requests in your own words need an LLM planner")
    hooked.sender.comment("/mate help")
    assert "`/mate run <playbook> [key=value …]`" in hooked.reply(2)
    hooked.sender.comment("/mate status")
    assert hooked.reply(3) == "@Codertocat No runs here yet."
    run_id = hooked.sender.comment("/mate run echo-only").json()["run_id"]
    hooked.runs()  # a worker records it
    hooked.sender.comment(f"/mate status {run_id}")
    assert hooked.reply(4) == f"@Codertocat Run `{run_id}` (echo-only): **running**, 0/1 steps"
    # A run started from another repository is not shown here.
    hooked.sender.comment(f"/mate status {run_id}", repo="someone/else")
    assert hooked.reply(5) == f"@Codertocat No run `{run_id}` in this repository."
    replies = hooked.api.calls("create")
    assert {c.path for c in replies} == {
        f"/repos/{REPO}/issues/1/comments",
        "/repos/someone/else/issues/1/comments",
    }


def test_a_command_that_cannot_run_is_refused_in_the_answer_and_in_a_reply(
    hooked: Hooked,
) -> None:
    unknown = hooked.sender.comment("/mate run nope")
    assert unknown.status_code == 404
    assert error(unknown)["code"] == "unknown_playbook"
    text = hooked.reply(1)
    assert "there is no playbook 'nope' (known: echo-only, gated, pr-check)" in text
    assert "playbooks" not in text.replace("pr-check)", "")  # the server's folder is not shown
    path = hooked.sender.comment("/mate run ../../etc/passwd.yaml")
    assert (path.status_code, error(path)["code"]) == (400, "invalid_command")
    bad_input = hooked.sender.comment("/mate run echo-only colour=red")
    assert (bad_input.status_code, error(bad_input)["code"]) == (422, "invalid_inputs")
    assert "takes no input 'colour'" in hooked.reply(3)
    usage = hooked.sender.comment("/mate run")
    assert (usage.status_code, error(usage)["code"]) == (400, "invalid_command")
    assert "**Firstmate** understands" in hooked.reply(4)
    assert hooked.runs() == []


def test_checkpoints_are_decided_by_comment_from_allowed_approvers_only(
    hooked: Hooked,
) -> None:
    run_id = hooked.sender.comment("/mate run gated").json()["run_id"]
    hooked.runs()  # a worker records it
    [cp] = queries.open_checkpoints(hooked.rt.store, run_id)
    assert cp.kind == "gate"
    # Another repository's comment cannot reach this run's checkpoint.
    elsewhere = hooked.sender.comment(f"/mate continue {cp.id}", login="hubot", repo="o/x")
    assert (elsewhere.status_code, error(elsewhere)["code"]) == (404, "unknown_checkpoint")
    # Allowed to comment, but not among the playbook's approvers.
    requester = hooked.sender.comment(f"/mate continue {cp.id}")
    assert (requester.status_code, error(requester)["code"]) == (403, "not_allowed")
    assert "approvers" in hooked.reply(2)
    stranger = hooked.sender.comment(f"/mate continue {cp.id}", login="mallory")
    assert stranger.json()["status"] == "ignored"
    wrong_kind = hooked.sender.comment(f"/mate approve-all {cp.id}", login="hubot")
    assert wrong_kind.json() == {"status": "replied"}  # free text, not a decision
    decided = hooked.sender.comment(f"/mate CONTINUE {cp.id}", login="hubot")
    assert decided.json() == {"status": "decided", "checkpoint": cp.id, "decision": "continue"}
    assert queries.checkpoint(hooked.rt.store, cp.id).decided_by == "hubot"
    assert queries.run_report(hooked.rt.store, run_id).status == "running"
    twice = hooked.sender.comment(f"/mate continue {cp.id}", login="hubot")
    assert (twice.status_code, error(twice)["code"]) == (409, "decision_refused")
    missing = hooked.sender.comment("/mate skip", login="hubot")
    assert (missing.status_code, error(missing)["code"]) == (400, "invalid_command")


def test_a_rate_limited_delivery_is_forgotten_so_that_a_redelivery_can_start_it(
    tmp_path: Path, redis_url: str, api: GitHubAPI
) -> None:
    window = 3
    with hooked_env(tmp_path, redis_url, api, limit=1, window_s=window) as env:
        wait("a fresh window", lambda: time.time() % window < 0.5, timeout=window + 1)
        assert env.sender.comment("/mate run echo-only", delivery="d-1").status_code == 202
        limited = env.sender.comment("/mate run echo-only", delivery="d-2")
        assert limited.status_code == 429
        assert error(limited)["code"] == "rate_limited"
        retry_after = int(limited.headers["Retry-After"])
        assert 1 <= retry_after <= window
        assert f"try again in {retry_after} s" in env.reply()
        assert inbound(env.rt) == ["github:d-1"]  # d-2 was forgotten
        time.sleep(window - time.time() % window + 0.05)  # the next window
        assert env.sender.comment("/mate run echo-only", delivery="d-2").status_code == 202
        assert len(env.runs()) == 2


def test_a_malformed_event_map_is_a_startup_error() -> None:
    assert parse_event_map(" pull_request.opened=pr-check, push=echo-only ,") == {
        "pull_request.opened": "pr-check",
        "push": "echo-only",
    }
    with pytest.raises(ConfigError, match="FIRSTMATE_GITHUB_EVENTS item 'pull_request'"):
        parse_event_map("pull_request")
    with pytest.raises(ConfigError):
        parse_event_map("push=../etc/x.yaml")


# --- the whole stack: `firstmate serve` and a worker process ------------------------


class Stack:
    """``firstmate serve`` and one worker on a real Redis and SQLite, with GitHub."""

    def __init__(self, tmp: Path, redis_url: str, api: GitHubAPI) -> None:
        self.tmp, self.api = tmp, api
        playbooks(tmp / "playbooks")
        self.vars = {
            "FIRSTMATE_DATA_DIR": str(tmp / "data"),
            "DATABASE_URL": f"sqlite:///{tmp / 'data' / 'firstmate.db'}",
            "REDIS_URL": redis_url,
            "FIRSTMATE_PLAYBOOKS": str(tmp / "playbooks"),
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_TOKEN": TOKEN,
            "FIRSTMATE_GITHUB_API_URL": api.url,
            "FIRSTMATE_GITHUB_ALLOWED_USERS": ALLOWED,
            "FIRSTMATE_GITHUB_EVENTS": EVENTS,
            "FIRSTMATE_GITHUB_GIT_URL": "",  # no clone (tests/bot/test_github_pr.py clones)
            "FIRSTMATE_LEASE_S": "3",
            "FIRSTMATE_RECONCILE_S": "1",
            "FIRSTMATE_SANDBOX_POOL_SIZE": "0",
            "DOCKER_HOST": f"unix://{tmp / 'no-docker.sock'}",  # echo steps need no sandbox
        }
        self.rt = runtime.build(settings(tmp, redis_url, github_api_url=api.url))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sender = Sender("")

    def serve(self) -> None:
        """Start ``firstmate serve`` and wait until it answers."""
        port = free_port()
        self.sender = Sender(f"http://127.0.0.1:{port}")
        serve = ["-c", "from bot.cli import main; main()", "serve", "--port", str(port)]
        self._spawn("serve", serve)
        wait("firstmate serve answers", self._healthy, logs=self.logs)

    def worker(self, *queues: str) -> None:
        """Start a worker process on ``queues`` (all of them by default)."""
        self._spawn(f"worker-{len(self.procs)}", ["-m", "workers", *queues])

    def _spawn(self, name: str, args: list[str]) -> None:
        (self.tmp / "logs").mkdir(exist_ok=True)
        with (self.tmp / "logs" / f"{name}.log").open("ab") as log:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, *args],
                    env={**os.environ, **self.vars},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def _healthy(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"a process exited:\n{self.logs()}")
        try:
            return httpx.get(f"{self.sender.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted((self.tmp / "logs").glob("*"))
        )

    def comment_on(self, number: int, until: Callable[[str], bool]) -> dict[str, Any]:
        """The one comment on issue ``number`` once its body satisfies ``until``."""

        def found() -> dict[str, Any] | None:
            comments = self.api.on_issue(REPO, number)
            return comments[0] if len(comments) == 1 and until(comments[0]["body"]) else None

        def logs() -> str:
            return f"{[(c.action, c.answered) for c in self.api.calls()]}\n{self.logs()}"

        result: dict[str, Any] = wait(f"the comment on #{number}", found, 60, logs)
        return result

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.rt.close()


@pytest.fixture
def stack(tmp_path: Path, redis_url: str, api: GitHubAPI) -> Iterator[Stack]:
    redis.Redis.from_url(redis_url).flushall()
    env = Stack(tmp_path, redis_url, api)
    try:
        env.serve()
        yield env
    finally:
        env.close()


def test_a_mate_run_comment_is_answered_by_one_comment_edited_to_the_end(
    stack: Stack,
) -> None:
    stack.worker("plan", "notify")  # recording and deliveries: the step waits in its queue
    response = stack.sender.comment("/mate run echo-only word=ahoy")
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    first = stack.comment_on(1, lambda body: "Running" in body)
    assert "| 🕓 | `say` | echo | queued | 0 |" in first["body"]
    assert "requested by **Codertocat** ([comment](<https://github.com/" in first["body"]
    stack.worker("steps")
    final = stack.comment_on(1, lambda body: "Run succeeded" in body)
    assert final["body"].startswith("### ✅ echo-only · Succeeded")
    assert f"Run `{run_id}`" in final["body"]
    assert '"said": "ahoy"' in final["body"]
    assert "| ✅ | `say` | echo | succeeded | 1 |" in final["body"]
    # Created once, then edited in place: never a second comment for the run.
    assert len(stack.api.calls("create")) == 1
    assert final["edits"] >= 1
    # At most one write every 2 s to the comment.
    writes = [c.at for c in stack.api.calls() if c.action in ("create", "edit")]
    assert all(b - a >= 1.9 for a, b in itertools.pairwise(writes))


def test_a_gate_is_passed_by_the_comment_the_runs_comment_lists(stack: Stack) -> None:
    stack.worker()
    run_id = stack.sender.comment("/mate run gated").json()["run_id"]
    waiting = stack.comment_on(1, lambda body: "/mate continue" in body)
    command = re.search(r"^/mate continue \S+$", waiting["body"], re.MULTILINE)
    assert command is not None
    assert stack.sender.comment(command[0], login="hubot").json()["status"] == "decided"
    final = stack.comment_on(1, lambda body: "Run succeeded" in body)
    assert "continued by **hubot**" in final["body"]
    assert "/mate continue" not in final["body"]
    assert queries.run_report(stack.rt.store, run_id).status == "succeeded"


def test_a_mapped_pull_request_event_is_answered_on_the_pull_request(stack: Stack) -> None:
    stack.worker()
    response = stack.sender.send("pull_request", fixture("pull_request_opened.json"))
    assert response.status_code == 202, response.text
    final = stack.comment_on(2, lambda body: "Run succeeded" in body)
    assert final["body"].startswith("### ✅ pr-check · Succeeded")
    assert "requested by **Codertocat**" in final["body"]


def test_a_request_in_words_is_planned_by_the_llm_and_waits_for_approval(
    tmp_path: Path, redis_url: str, api: GitHubAPI
) -> None:
    plan = {"steps": [{"id": "hello", "agent": "echo", "with": {"said": "hi"}}]}
    with LLMAPI(api_key="sk-gh") as model:
        model.script(json_answer(plan))
        extra = {"llm": "openai:gpt-4o-mini", "openai_api_key": "sk-gh"}
        with hooked_env(tmp_path, redis_url, api, openai_base_url=model.openai_url, **extra) as h:
            response = h.sender.comment("/mate say hi to ops@example.com", delivery="d-llm")
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "started"
            [run] = h.runs()
        [sent] = model.requests("openai")
    assert run.status == "awaiting_approval"  # a model's plan is always approved by a person
    assert [s.id for s in run.steps] == ["hello"]
    assert [c.kind for c in run.checkpoints or []] == ["plan"]
    assert "ops@example.com" not in str(sent.body)  # screened before it left
