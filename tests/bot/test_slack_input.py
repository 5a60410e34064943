"""The Slack front door against what Slack (or someone else) may send it: bad signatures
and stale timestamps, commands it cannot run, Slack's own sample payloads, mentions
(retried too) and replies in a run's thread.

Two ``firstmate serve`` processes, one per module: ``front`` has no worker and must never
record a run; ``live`` has a worker, for runs that post a card and progress. Playbooks use
``echo`` steps only: no Docker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bot.slack.commands import USAGE
from bot.slack.front import NO_LLM
from orchestrator.models import Run
from tests.bot.slack_env import SECRET, SlackEnv, action_ids, fixture, text_of
from tests.slack_api import SlackAPI, interactive_body, signed_headers, slash_body

ECHO = """\
name: echo-only
inputs:
  word: {default: one}
steps:
  - id: say
    agent: echo
    with: {word: "${{ inputs.word }}"}
"""
GUARDED = """\
name: guarded
approvers: [UOPS]
steps:
  - id: say
    agent: echo
    with: {word: hi}
"""
# `broken` fails when it starts: its reference names an output `first` does not have.
FAILS = """\
name: fails
steps:
  - id: first
    agent: echo
    with: {x: 1}
  - id: broken
    agent: echo
    depends_on: [first]
    with: {y: "${{ steps.first.outputs.nope }}"}
"""
SETTLE_S = 0.5  # listeners work on after the ack: time for a wrong one to act
FORM = "application/x-www-form-urlencoded"


def _env(tmp: Path, redis_url: str, db: int, api: SlackAPI) -> SlackEnv:
    url = f"{redis_url.rsplit('/', 1)[0]}/{db}"  # a Redis database of this env's own
    redis.Redis.from_url(url).flushdb()
    env = SlackEnv(tmp, url, api)
    env.playbook("echo-only", ECHO)
    env.playbook("guarded", GUARDED)
    env.playbook("fails", FAILS)
    return env


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[SlackEnv]:
    """Firstmate behind Slack, without a worker: nothing here may start a run."""
    with SlackAPI() as api:
        env = _env(tmp_path_factory.mktemp("front"), redis_url, 1, api)
        try:
            env.serve()
            yield env
        finally:
            env.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[SlackEnv]:
    """Firstmate behind Slack with a worker: runs post their card and progress."""
    with SlackAPI() as api:
        env = _env(tmp_path_factory.mktemp("live"), redis_url, 2, api)
        try:
            env.serve()
            env.workers.start(1)
            yield env
        finally:
            env.close()


# -- requests as Slack sends them ------------------------------------------------------


def command(
    env: SlackEnv,
    text: str,
    *,
    channel: str = "C111",
    user: str = "UREQ",
    trigger: str = "1.1.a",
) -> httpx.Response:
    fields = fixture("slash_command_body.json")
    fields.update(command="/mate", text=text, channel_id=channel, user_id=user, trigger_id=trigger)
    return env.post(slash_body(**fields), content_type=FORM)


def event(
    env: SlackEnv, payload: dict[str, Any], *, event_id: str, retry: int = 0
) -> httpx.Response:
    """An Events API delivery of ``payload``; ``retry`` > 0 as Slack redelivers it."""
    body = {
        "token": "verification_token",
        "team_id": "T111",
        "api_app_id": "A111",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": {"type": "message", "event_ts": payload.get("ts", ""), **payload},
        "authorizations": [{"team_id": "T111", "user_id": "UBOT", "is_bot": True}],
    }
    headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return env.post(
        json.dumps(body).encode(),
        content_type="application/json",
        headers=headers if retry else None,
    )


_ts = iter(range(1, 1_000_000))


def message_ts() -> str:
    """A fresh message ts, as Slack gives each message (older than the fake API's)."""
    return f"1600000000.{next(_ts):06d}"


def reply(
    env: SlackEnv, channel: str, thread_ts: str, text: str, *, user: str = "UREQ", **more: Any
) -> httpx.Response:
    """A person's reply in a thread."""
    ts = message_ts()
    payload = {"channel": channel, "user": user, "text": text, "ts": ts, "thread_ts": thread_ts}
    return event(env, {**payload, **more}, event_id=f"Ev{ts.replace('.', '')}")


def not_auth(env: SlackEnv, since: int = 0) -> list[str]:
    """The Slack calls since the ``since``-th, but the one-off ``auth.test`` of bolt."""
    return [c.method for c in env.api.calls()[since:] if c.method != "auth.test"]


@contextmanager
def nothing_recorded(env: SlackEnv) -> Iterator[None]:
    """No run recorded, and no Slack call but what is allowed, in the block."""
    runs, calls = env.run_ids(), len(env.api.calls())
    yield
    time.sleep(SETTLE_S)
    assert env.run_ids() == runs
    assert not_auth(env, calls) == []


def ack_text(response: httpx.Response) -> str:
    """What an acknowledgement tells the person (only them: ephemeral)."""
    assert response.status_code == 200, response.text
    if not response.headers["content-type"].startswith("application/json"):
        return response.text  # plain text: Slack shows it to the person alone
    body = response.json()
    assert body.get("response_type", "ephemeral") == "ephemeral"
    text: str = body["text"]
    return text


# -- who may talk to us at all ----------------------------------------------------------


def test_a_bad_signature_is_refused_and_nothing_recorded(front: SlackEnv) -> None:
    body = slash_body(**{**fixture("slash_command_body.json"), "text": "run echo-only"})
    forged = {**signed_headers(body, "not-the-secret"), "Content-Type": FORM}
    unsigned = {"Content-Type": FORM}
    with nothing_recorded(front):
        for headers in (forged, unsigned):
            answer = httpx.post(f"{front.url}/slack/events", content=body, headers=headers)
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "invalid_signature"
        # The signature covers the body: a changed body is not the signed one.
        signed = signed_headers(body, SECRET)
        tampered = body.replace(b"echo-only", b"guarded")
        answer = httpx.post(
            f"{front.url}/slack/events", content=tampered, headers={**signed, "Content-Type": FORM}
        )
        assert answer.status_code == 401


def test_a_stale_timestamp_is_refused_even_when_signed(front: SlackEnv) -> None:
    body = slash_body(**{**fixture("slash_command_body.json"), "text": "run echo-only"})
    with nothing_recorded(front):
        old = front.post(body, content_type=FORM, timestamp=int(time.time()) - 6 * 60)
        assert old.status_code == 401
        future = front.post(body, content_type=FORM, timestamp=int(time.time()) + 6 * 60)
        assert future.status_code == 401
    # Within five minutes it is accepted.
    help_body = slash_body(**{**fixture("slash_command_body.json"), "text": "help"})
    recent = front.post(help_body, content_type=FORM, timestamp=int(time.time()) - 60)
    assert ack_text(recent) == USAGE


def test_url_verification_is_answered_with_the_challenge(front: SlackEnv) -> None:
    body = json.dumps({"token": "t", "challenge": "c4ll3ng3", "type": "url_verification"})
    with nothing_recorded(front):
        answer = front.post(body.encode(), content_type="application/json")
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "c4ll3ng3"}


# -- commands that start nothing ---------------------------------------------------------


def test_an_unknown_playbook_is_answered_with_the_usage(front: SlackEnv) -> None:
    with nothing_recorded(front):
        text = ack_text(command(front, "run nope word=x"))
    assert "no playbook 'nope'" in text
    assert "known: echo-only" in text  # what there is instead
    assert USAGE in text
    assert str(front.playbooks) not in text  # the server's folders are nobody's business


def test_a_playbook_is_named_never_given_as_a_path(front: SlackEnv, tmp_path: Path) -> None:
    # A valid playbook outside the folder, naming no approvers: not runnable from Slack.
    stray = tmp_path / "stray.yaml"
    stray.write_text(ECHO.replace("echo-only", "stray"))
    with nothing_recorded(front):
        text = ack_text(command(front, f"run {stray}"))
    assert f"no playbook {str(stray)!r}" in text
    assert USAGE in text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("run echo-only nokeyvalue", "'nokeyvalue' is not an input"),
        ("run echo-only colour=red", "takes no input 'colour'"),
        ("run echo-only word=a word=b", "input 'word' is given twice"),
        ('run echo-only word="unclosed', "cannot read that"),
        ("run", "which playbook"),
    ],
)
def test_bad_inputs_are_answered_with_the_usage(front: SlackEnv, text: str, says: str) -> None:
    with nothing_recorded(front):
        answer = ack_text(command(front, text))
    assert says in answer
    assert USAGE in answer


def test_help_and_status_answer_in_the_ack(front: SlackEnv) -> None:
    with nothing_recorded(front):
        assert ack_text(command(front, "help")) == USAGE
        assert ack_text(command(front, "")) == USAGE
        assert ack_text(command(front, "status")) == "No runs in this channel yet."
        assert ack_text(command(front, "status snope")) == "No run `snope`."


# -- Slack's own sample payloads, as they are ----------------------------------------------


def test_a_free_text_command_needs_an_llm(front: SlackEnv) -> None:
    fields = fixture("slash_command_body.json")  # /hello-world "Hi"
    with nothing_recorded(front):
        answer = front.post(slash_body(**fields), content_type=FORM)
        assert ack_text(answer) == NO_LLM


def test_someone_elses_button_is_acknowledged_and_ignored(front: SlackEnv) -> None:
    payload = fixture("block_actions_button.json")
    with nothing_recorded(front):
        answer = front.post(interactive_body(payload), content_type=FORM)
        assert answer.status_code == 200
        assert not answer.content.strip()


def test_someone_elses_view_is_acknowledged(front: SlackEnv) -> None:
    payload = fixture("view_submission.json")  # callback_id "view-id"
    with nothing_recorded(front):
        answer = front.post(interactive_body(payload), content_type=FORM)
        assert answer.status_code == 200
        assert not answer.content.strip()  # a plain ack: the modal closes


# -- mentions ---------------------------------------------------------------------------


def _card_in(env: SlackEnv, channel: str, run_id: str) -> dict[str, Any]:
    """The run's card (the first message in ``channel`` naming the run), if posted."""
    for (ch, _), message in list(env.api.messages.items()):
        if ch == channel and run_id in text_of(message.get("blocks") or []):
            return message
    return {}


def _new_run(env: SlackEnv, before: list[str]) -> str:
    new = env.wait("a new run", lambda: [r for r in env.run_ids() if r not in before])
    assert len(new) == 1, new
    return str(new[0])


def test_a_mention_starts_one_run_in_its_thread_even_when_retried(live: SlackEnv) -> None:
    before = live.run_ids()
    ts = message_ts()
    mention = {
        "type": "app_mention",
        "channel": "CMENTION",
        "user": "UREQ",
        "text": "<@UBOT> run echo-only word=<https://example.com/?a=1&amp;b=2>",
        "ts": ts,
    }
    assert event(live, mention, event_id="EvMENTION1").status_code == 200
    run_id = _new_run(live, before)
    card = live.wait("the card", lambda: _card_in(live, "CMENTION", run_id))
    assert card["thread_ts"] == ts  # in the mention's thread, not at the top
    with live.rt.store.session() as s:
        run = s.get(Run, run_id)
        assert run is not None and run.inputs == {"word": "https://example.com/?a=1&b=2"}
    started = live.api.wait_for(
        "chat.postEphemeral", predicate=lambda c: run_id in c.params["text"]
    )
    assert started[0].params["user"] == "UREQ"

    assert event(live, mention, event_id="EvMENTION1", retry=1).status_code == 200
    time.sleep(SETTLE_S)
    assert [r for r in live.run_ids() if r not in before] == [run_id]
    told = [c for c in live.api.calls("chat.postEphemeral") if run_id in c.params["text"]]
    assert len(told) == 1, "a retried mention is answered again"


# -- a run's thread ----------------------------------------------------------------------


def _start(env: SlackEnv, playbook: str, channel: str) -> tuple[str, str]:
    """Start ``playbook`` by slash command in ``channel``; its run id and card's thread."""
    before = env.run_ids()
    assert "Starting" in ack_text(command(env, f"run {playbook}", channel=channel, trigger=channel))
    run_id = _new_run(env, before)
    card = env.wait("the card", lambda: _card_in(env, channel, run_id))
    return run_id, str(card["ts"])


def _replies(env: SlackEnv, channel: str, thread: str, says: str) -> list[dict[str, Any]]:
    return [m for m in env.api.thread(channel, thread) if says in (m.get("text") or "")]


def _ephemerals(env: SlackEnv, user: str, says: str) -> list[Any]:
    return [
        c
        for c in env.api.calls("chat.postEphemeral")
        if c.params["user"] == user and says in c.params["text"]
    ]


def test_status_and_cancel_in_a_runs_thread(live: SlackEnv) -> None:
    run_id, thread = _start(live, "guarded", "CTHREAD")

    assert reply(live, "CTHREAD", thread, "status", user="USTRANGER").status_code == 200
    status = live.wait("a status reply", lambda: _replies(live, "CTHREAD", thread, "Run `"))
    assert f"Run `{run_id}` (guarded): *awaiting_approval*" in status[0]["text"]

    # A stranger may not cancel a run that has approvers.
    reply(live, "CTHREAD", thread, "cancel", user="USTRANGER")
    refused = live.wait("a refusal", lambda: _ephemerals(live, "USTRANGER", "Not allowed"))
    assert "approvers" in refused[0].params["text"]
    # Nor does anything but a person's own message count: bots', edits, chatter.
    reply(live, "CTHREAD", thread, "cancel", bot_id="BOTHER")
    reply(live, "CTHREAD", thread, "cancel", subtype="message_changed")
    reply(live, "CTHREAD", thread, "cancel this, please")
    time.sleep(SETTLE_S)
    assert live.report(run_id).status == "awaiting_approval"
    assert not _replies(live, "CTHREAD", thread, "cancelled")

    # /mate status names the run too.
    assert f"Run `{run_id}`" in ack_text(command(live, f"status {run_id}", trigger="st.1"))

    # The requester may always stop their own run.
    reply(live, "CTHREAD", thread, "cancel", user="UREQ")
    said = live.wait("a reply", lambda: _replies(live, "CTHREAD", thread, "cancelled the run"))
    assert said[0]["text"] == "<@UREQ> cancelled the run."
    assert live.report(run_id).status == "aborted"


def test_each_thread_reply_is_answered_once(live: SlackEnv) -> None:
    _, thread = _start(live, "echo-only", "CTWICE")
    asked = {"channel": "CTWICE", "user": "UREQ", "text": "status", "thread_ts": thread}
    first = {**asked, "ts": message_ts()}
    event(live, first, event_id="EvTWICE1")
    live.wait("a status reply", lambda: _replies(live, "CTWICE", thread, "Run `"))
    # Slack delivers it again (it thinks we missed it): not answered again.
    assert event(live, first, event_id="EvTWICE1", retry=1).status_code == 200
    # A reply that mentions Firstmate comes twice, as a message and as an app_mention.
    mention = {**asked, "text": "<@UBOT> status", "ts": message_ts()}
    event(live, mention, event_id="EvTWICE2")
    event(live, {**mention, "type": "app_mention"}, event_id="EvTWICE3")
    live.wait("the second reply", lambda: len(_replies(live, "CTWICE", thread, "Run `")) >= 2)
    time.sleep(SETTLE_S)
    assert len(_replies(live, "CTWICE", thread, "Run `")) == 2


def test_retry_in_a_runs_thread_runs_the_failed_step_again(live: SlackEnv) -> None:
    run_id, thread = _start(live, "fails", "CRETRY")
    approve = live.wait(
        "the plan's buttons",
        lambda: next(
            (
                a
                for m in [_card_in(live, "CRETRY", run_id), *live.api.thread("CRETRY", thread)]
                for a in action_ids(m.get("blocks") or [])
                if a.startswith("fm:approve:")
            ),
            None,
        ),
    )
    assert live.click(approve, user="UREQ").status_code == 200

    def failed_once() -> bool:
        report = live.report(run_id)
        step = next(s for s in report.steps if s.id == "broken")
        waiting = [
            c for c in report.checkpoints or [] if c.kind == "failure" and c.status == "open"
        ]
        return step.status == "failed" and step.attempts == 1 and bool(waiting)

    live.wait("the step fails and waits for a decision", failed_once)

    reply(live, "CRETRY", thread, "retry first")  # it succeeded: nothing to retry
    live.wait("a refusal", lambda: _ephemerals(live, "UREQ", "step `first` has no failure"))

    reply(live, "CRETRY", thread, "retry broken")
    live.wait("a reply", lambda: _replies(live, "CRETRY", thread, "asked to retry `broken`"))

    def failed_twice() -> bool:
        step = next(s for s in live.report(run_id).steps if s.id == "broken")
        return step.status == "failed" and step.attempts == 2

    live.wait("the second attempt", failed_twice)
    assert live.report(run_id).status == "paused"


def test_a_person_over_the_rate_limit_is_told_when_to_come_back(
    tmp_path: Path, redis_url: str
) -> None:
    with SlackAPI() as api:
        env = _env(tmp_path, redis_url, 3, api)
        env.vars["FIRSTMATE_RATE_LIMIT"] = "1/3600"
        try:
            env.serve()
            first = ack_text(command(env, "run echo-only", trigger="9.9.first"))
            assert first.startswith("Starting *echo-only*")
            # Slack delivering the same command again is not a second start.
            again = ack_text(command(env, "run echo-only", trigger="9.9.first"))
            assert again.startswith("Starting *echo-only*")
            refused = ack_text(command(env, "run echo-only", trigger="9.9.second"))
            assert refused.startswith("Too many runs started by you just now: try again in ")
            # Somebody else has a limit of their own.
            other = ack_text(command(env, "run echo-only", trigger="9.9.other", user="UOTHER"))
            assert other.startswith("Starting *echo-only*")
            env.workers.start(1)
            env.wait("two runs recorded", lambda: len(env.run_ids()) == 2, 60)
            time.sleep(1)  # nothing more is on its way
            assert len(env.run_ids()) == 2
        finally:
            env.close()
