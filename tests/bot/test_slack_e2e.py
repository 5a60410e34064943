"""Slack end to end: ``firstmate serve`` + worker processes + Docker + a local Slack.

A slash command becomes a plan card with buttons; a non-approver and (under four-eyes)
the requester are refused; a double click decides once; an approver's click runs the
steps in a sandbox; the card shows each step and the result lands in the thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from tests.bot.slack_env import SlackEnv, action_ids, fixture, text_of
from tests.slack_api import SlackAPI

DEMO = """\
name: slack-demo
description: say hello from a sandbox
approvers: [UREQ, SOPS]
four_eyes: true
inputs:
  greeting: {default: hello}
steps:
  - id: greet
    agent: shell
    with: {command: "echo ${{ inputs.greeting }} from the sandbox"}
  - id: pass
    agent: echo
    depends_on: [greet]
    with: {said: "${{ steps.greet.outputs.stdout }}"}
"""
ECHO = """\
name: echo-only
inputs:
  word: {default: one}
steps:
  - id: say
    agent: echo
    with: {word: "${{ inputs.word }}", count: 1}
"""


@pytest.fixture
def slack(tmp_path: Path, redis_url: str, docker_client: docker.DockerClient) -> Iterator[SlackEnv]:
    redis.Redis.from_url(redis_url).flushall()
    with SlackAPI(groups={"SOPS": ["UOPS1", "UOPS2"]}) as api:
        env = SlackEnv(tmp_path, redis_url, api)
        env.playbook("slack-demo", DEMO)
        env.playbook("echo-only", ECHO)
        try:
            env.serve()
            env.workers.start(1)
            yield env
        finally:
            env.close()


def _card(env: SlackEnv, run_id: str) -> dict[str, Any]:
    """The card's current message (the first top-level message naming the run)."""
    for (_, _), message in env.api.messages.items():
        if not message.get("thread_ts") and run_id in text_of(message.get("blocks") or []):
            return message
    return {}


def test_a_slash_command_runs_through_approval_to_a_result_in_the_thread(
    slack: SlackEnv,
) -> None:
    answer = slack.command("run slack-demo greeting=ahoy", trigger="1.1.first")
    assert answer.status_code == 200
    assert "Starting *slack-demo*" in answer.text
    # Slack retries the same delivery: still one run.
    again = slack.command(
        "run slack-demo greeting=ahoy",
        trigger="1.1.first",
        headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert again.status_code == 200
    run_id = slack.wait("a run", lambda: slack.run_ids())[0]
    posted = slack.api.wait_for("chat.postMessage", timeout=30)[0]
    card_ts = slack.wait("the card recorded", lambda: _card(slack, run_id).get("ts"))
    buttons = action_ids(posted.params["blocks"])
    approve = next(a for a in buttons if a.startswith("fm:approve:"))
    assert any(a.startswith("fm:modify:") for a in buttons)
    assert any(a.startswith("fm:reject:") for a in buttons)

    # Not an approver: refused, nothing changes.
    assert slack.click(approve, user="USTRANGER").status_code == 200
    refusal = slack.api.wait_for("chat.postEphemeral", timeout=10)[-1]
    assert refusal.params["user"] == "USTRANGER"
    assert "approvers" in refusal.params["text"]
    # The requester is an approver, but four-eyes forbids approving one's own run.
    slack.click(approve, user="UREQ")
    refusal = slack.api.wait_for("chat.postEphemeral", count=2, timeout=10)[-1]
    assert refusal.params["user"] == "UREQ"
    assert "four-eyes" in refusal.params["text"]
    assert slack.report(run_id).status == "awaiting_approval"

    # A double click by a member of the approvers' group: one decision.
    clicks = [threading.Thread(target=slack.click, args=(approve,), kwargs={"user": "UOPS1"})]
    clicks.append(threading.Thread(target=slack.click, args=(approve,), kwargs={"user": "UOPS1"}))
    for t in clicks:
        t.start()
    for t in clicks:
        t.join()
    report = slack.wait(
        "the run ends", lambda: (r := slack.report(run_id)).status == "succeeded" and r, 90
    )
    decided = [e for e in report.events or [] if e.type == "checkpoint.decided"]
    assert len(decided) == 1
    assert decided[0].data["by"] == "UOPS1"
    assert len(slack.run_ids()) == 1
    assert report.steps[0].outputs["stdout"].strip() == "ahoy from the sandbox"

    # The card was edited in place to show every step; the result is in its thread.
    card = slack.wait(
        "the card shows the end",
        lambda: (
            "succeeded" in text_of(_card(slack, run_id).get("blocks") or [])
            and _card(slack, run_id)
        ),
    )
    card_text = text_of(card["blocks"])
    assert "greet" in card_text and "pass" in card_text
    assert slack.api.calls("chat.update")
    replies = slack.wait(
        "the result reply",
        lambda: [
            m
            for m in slack.api.thread("C111", str(card_ts))
            if "ahoy from the sandbox" in text_of(m.get("blocks") or [])
        ],
    )
    assert replies
    edits = [c.at for c in slack.api.calls("chat.update") if c.params.get("ts") == card_ts]
    gaps = [b - a for a, b in itertools.pairwise(edits)]
    assert all(g >= 0.9 for g in gaps), gaps  # about one edit a second, at most


def test_modify_opens_a_modal_and_the_change_is_validated_and_recorded(slack: SlackEnv) -> None:
    slack.command("run echo-only word=two", trigger="2.2.modify")
    run_id = slack.wait("a run", lambda: slack.run_ids())[0]
    posted = slack.api.wait_for("chat.postMessage", timeout=30)[0]
    modify = next(a for a in action_ids(posted.params["blocks"]) if a.startswith("fm:modify:"))
    cp_id = modify.rsplit(":", 1)[1]
    slack.click(modify, user="UANY")
    view = slack.api.wait_for("views.open", timeout=10)[0].params["view"]
    assert view["private_metadata"] == cp_id
    blocks = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert set(blocks) == {"say|word", "say|count"}

    submission = fixture("view_submission.json")
    submission["user"]["id"] = "UANY"
    submission["view"].update(
        blocks=view["blocks"], private_metadata=cp_id, callback_id="fm:modify"
    )
    # A value that makes the plan invalid is refused in the modal, nothing recorded.
    bad = {
        "say|count": {"value": {"type": "plain_text_input", "value": "${{ steps.nope.outputs.x }}"}}
    }
    submission["view"]["state"] = {"values": bad}
    refused = slack.interactive(submission)
    assert refused.status_code == 200
    assert refused.json()["response_action"] == "errors"
    assert slack.report(run_id).status == "awaiting_approval"

    good = {"say|word": {"value": {"type": "plain_text_input", "value": "three"}}}
    submission["view"]["state"] = {"values": good}
    accepted = slack.interactive(submission)
    assert accepted.status_code == 200 and not accepted.content.strip()

    # The approval was of the plan before the change: the changed plan asks again.
    def reasked() -> str | None:
        report = slack.report(run_id)
        open_ = [c.id for c in report.checkpoints or [] if c.kind == "plan" and c.status == "open"]
        return open_[0] if report.status == "awaiting_approval" and open_ != [cp_id] else None

    second = slack.wait("the changed plan's approval", lambda: reasked() or None, 30)
    slack.click(f"fm:approve:{second}", user="UANY")
    report = slack.wait(
        "the run ends", lambda: (r := slack.report(run_id)).status == "succeeded" and r, 60
    )
    assert report.steps[0].outputs == {"word": "three", "count": 1}
    decisions = [c for c in report.checkpoints or [] if c.kind == "plan"]
    assert [c.decided_by for c in decisions] == ["UANY", "UANY"]
    assert any(e.type == "run.modified" for e in report.events or [])


def test_rate_limits_and_an_outage_delay_messages_without_losing_them(slack: SlackEnv) -> None:
    slack.api.rate_limit("chat.postMessage", times=1, retry_after=1)
    slack.command("run echo-only", trigger="3.3.limits")
    run_id = slack.wait("a run", lambda: slack.run_ids())[0]
    first = slack.api.wait_for("chat.postMessage", count=2, timeout=30)
    assert [c.answered for c in first[:2]] == [429, 200]
    assert first[1].at - first[0].at >= 0.9  # it waited for Retry-After
    approve = next(a for a in action_ids(first[1].params["blocks"]) if "approve" in a)

    slack.api.outage(True)
    slack.click(approve, user="UANY")
    slack.wait("the run ends", lambda: slack.report(run_id).status == "succeeded", 60)
    # the messages the run sent meanwhile are tried (and refused) while Slack is down
    assert slack.wait("a 503", lambda: any(c.answered == 503 for c in slack.api.calls()), 30)
    slack.api.outage(False)
    card = slack.wait(
        "the card catches up",
        lambda: (
            "succeeded" in text_of(_card(slack, run_id).get("blocks") or [])
            and _card(slack, run_id)
        ),
        60,
    )
    assert card


PARENT = """\
name: parent
steps:
  - id: child
    agent: playbook
    with: {playbook: gated-child}
  - id: after
    agent: echo
    depends_on: [child]
    with: {status: "${{ steps.child.outputs.status }}"}
"""
GATED_CHILD = """\
name: gated-child
steps:
  - id: wait
    agent: gate
    with: {message: "Let the child go on?"}
  - id: done
    agent: echo
    depends_on: [wait]
    with: {ok: true}
"""


def test_a_child_runs_gate_is_decided_in_the_parents_thread(slack: SlackEnv) -> None:
    slack.playbook("parent", PARENT)
    slack.playbook("gated-child", GATED_CHILD)
    slack.command("run parent", trigger="4.4.child")
    parent_id = slack.wait("a run", lambda: slack.run_ids())[0]
    card = slack.api.wait_for("chat.postMessage", timeout=30)[0]
    approve = next(a for a in action_ids(card.params["blocks"]) if a.startswith("fm:approve:"))
    slack.click(approve, user="UANY")
    card_ts = slack.wait("the card recorded", lambda: _card(slack, parent_id).get("ts"))

    def gate_reply() -> str | None:
        for message in slack.api.thread("C111", str(card_ts)):
            for action in action_ids(message.get("blocks") or []):
                if action.startswith("fm:continue:"):
                    return action
        return None

    go_on = slack.wait("the child's gate in the parent's thread", gate_reply, 60)
    slack.click(go_on, user="UANY")
    report = slack.wait(
        "the parent ends", lambda: (r := slack.report(parent_id)).status == "succeeded" and r, 60
    )
    assert report.steps[1].outputs == {"status": "succeeded"}
    # Thread replies still belong to the parent run, not to the child.
    assert len(slack.run_ids()) == 2
