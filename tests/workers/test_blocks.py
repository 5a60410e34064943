"""Slack Block Kit rendering: pure functions, so no Slack, database or clock needed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.queries import CheckpointReport, RunReport, StepReport
from workers.notify import (
    ACTION_PATTERN,
    CardContext,
    Message,
    buttons,
    checkpoint_reply,
    decided_reply,
    parse_action_id,
    result_reply,
    status_card,
)
from workers.notify.blocks import (
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_CONTEXT_ELEMENTS,
    MAX_FALLBACK_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
START = NOW - timedelta(minutes=10)


def step(
    key: str = "lint",
    status: str = "succeeded",
    *,
    agent: str = "shell",
    attempts: int = 1,
    started: datetime | None = START,
    finished: datetime | None = START + timedelta(seconds=5),
    outputs: dict[str, Any] | None = None,
    error: str | None = None,
) -> StepReport:
    return StepReport(
        id=key,
        agent=agent,
        status=status,
        attempts=attempts,
        exit_code=None,
        started_at=started,
        finished_at=finished,
        outputs=outputs or {},
        error=error,
        provenance={},
    )


def checkpoint(
    kind: str = "plan",
    *,
    cp_id: str = "cp1",
    status: str = "open",
    step_key: str | None = None,
    prompt: str = "Run python-check (3 steps)?",
    decision: str | None = None,
    decided_by: str | None = None,
) -> CheckpointReport:
    return CheckpointReport(
        id=cp_id,
        run_id="run1",
        kind=kind,
        step=step_key,
        status=status,
        prompt=prompt,
        decision=decision,
        decided_by=decided_by,
        decided_at=NOW if decision else None,
        created_at=START,
    )


def run(
    status: str = "running",
    steps: list[StepReport] | None = None,
    *,
    checkpoints: list[CheckpointReport] | None = None,
    error: str | None = None,
    outputs: dict[str, Any] | None = None,
) -> RunReport:
    finished = NOW if status in ("succeeded", "failed", "aborted") else None
    return RunReport(
        run_id="run1",
        status=status,
        source="slack",
        playbook="python-check",
        parent_run_id=None,
        created_at=START,
        finished_at=finished,
        error=error,
        outputs=outputs or {},
        steps=steps if steps is not None else three_steps(),
        checkpoints=checkpoints,
    )


def three_steps() -> list[StepReport]:
    return [
        step("lint"),
        step("test", "running", started=NOW - timedelta(seconds=75), finished=None),
        step("report", "pending", started=None, finished=None),
    ]


def context(**changes: Any) -> CardContext:
    values: dict[str, Any] = {"title": "python-check", "requester": "U0123ABC", "now": NOW}
    return CardContext(**(values | changes))


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict inside a block tree, the blocks themselves included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def assert_within_limits(message: Message) -> None:
    json.dumps(message.blocks)  # plain JSON, nothing else
    assert 0 < len(message.blocks) <= MAX_BLOCKS
    assert 0 < len(message.text) <= MAX_FALLBACK_TEXT
    block_ids = [b["block_id"] for b in message.blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids))
    for block in message.blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert len(block["text"]["text"]) <= MAX_HEADER_TEXT
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= MAX_CONTEXT_ELEMENTS
    action_ids = []
    for node in walk(message.blocks):
        if node.get("type") in ("mrkdwn", "plain_text"):
            assert len(node["text"]) <= MAX_SECTION_TEXT
        if node.get("type") == "mrkdwn":
            assert node["text"].count("```") % 2 == 0, "a code fence is left open"
        if node.get("type") == "button":
            assert len(node["text"]["text"]) <= MAX_BUTTON_TEXT
            action_ids.append(node["action_id"])
    assert len(action_ids) == len(set(action_ids))


def texts(message: Message) -> str:
    """All text a person can see, in one string."""
    return "\n".join(n["text"] for n in walk(message.blocks) if isinstance(n.get("text"), str))


def section_with(message: Message, needle: str) -> str:
    """The first mrkdwn text in the message that contains ``needle``."""
    found: list[str] = [n["text"] for n in walk(message.blocks) if isinstance(n.get("text"), str)]
    return next(t for t in found if needle in t)


def actions(message: Message) -> list[dict[str, Any]]:
    return [b for b in message.blocks if b["type"] == "actions"]


@pytest.mark.parametrize(
    ("status", "emoji", "label"),
    [
        ("received", "📥", "Received"),
        ("planning", "🧠", "Planning"),
        ("awaiting_approval", "✋", "Awaiting approval"),
        ("running", "🏃", "Running"),
        ("paused", "⏸️", "Paused"),
        ("succeeded", "✅", "Succeeded"),
        ("failed", "❌", "Failed"),
        ("aborted", "🛑", "Aborted"),
    ],
)
def test_the_card_shows_the_run_status(status: str, emoji: str, label: str) -> None:
    card = status_card(run(status), context())
    assert_within_limits(card)
    assert card.blocks[0]["text"]["text"] == f"{emoji} python-check · {label}"
    assert card.text == f"{emoji} python-check: {label}"
    for key in ("lint", "test", "report"):
        assert f"*{key}*" in texts(card)
    ended = f"*Run* {label.lower()} in 10m 00s"
    assert (ended in texts(card)) == (status in ("succeeded", "failed", "aborted"))


def test_a_running_step_is_timed_to_now_and_a_finished_one_to_its_end() -> None:
    lines = texts(status_card(run(), context())).splitlines()
    assert "✅ *lint* · shell · succeeded · 5.0s" in lines
    assert "🔄 *test* · shell · running · 1m 15s" in lines
    assert "⚪ *report* · shell · pending" in lines
    later = texts(status_card(run(), context(now=NOW + timedelta(hours=1))))
    assert "🔄 *test* · shell · running · 1h 01m" in later


def test_a_failed_step_shows_its_attempts_and_the_first_line_of_its_error() -> None:
    failed = step("test", "failed", attempts=3, error="exit code 2\nTraceback …")
    card = status_card(run("paused", [failed]), context())
    assert "❌ *test* · shell · failed · 3 attempts · 5.0s — exit code 2 …" in texts(card)


def test_the_context_line_names_the_run_requester_and_cost() -> None:
    card = status_card(run(), context(cost_usd=0.0123, run_url="https://fm.example/runs/run1"))
    line = [e["text"] for e in card.blocks[1]["elements"]]
    assert line == [
        "Run `run1`",
        "requested by <@U0123ABC>",
        "$0.0123",
        "<https://fm.example/runs/run1|details>",
    ]
    assert "$" not in texts(status_card(run(), context(requester=None)))


def test_a_plan_checkpoint_gets_approve_modify_and_reject() -> None:
    block = buttons(checkpoint("plan", cp_id="a1b2c3"))
    assert block["type"] == "actions"
    assert block["block_id"] == "cp:a1b2c3"
    ids = [b["action_id"] for b in block["elements"]]
    assert ids == ["fm:approve:a1b2c3", "fm:modify:a1b2c3", "fm:reject:a1b2c3"]
    assert [b["text"]["text"] for b in block["elements"]] == ["Approve", "Modify", "Reject"]
    assert [b.get("style") for b in block["elements"]] == ["primary", None, "danger"]
    assert [b["value"] for b in block["elements"]] == ["a1b2c3"] * 3
    assert "confirm" in block["elements"][2]
    assert "confirm" not in block["elements"][0]
    assert [parse_action_id(x) for x in ids] == [
        ("approve", "a1b2c3"),
        ("modify", "a1b2c3"),
        ("reject", "a1b2c3"),
    ]


@pytest.mark.parametrize(
    ("kind", "decisions"),
    [
        ("gate", ["continue", "skip", "abort"]),
        ("failure", ["retry", "skip", "continue", "abort"]),
    ],
)
def test_gate_and_failure_button_sets(kind: str, decisions: list[str]) -> None:
    elements = buttons(checkpoint(kind, step_key="test"))["elements"]
    assert [parse_action_id(b["action_id"]) for b in elements] == [(d, "cp1") for d in decisions]
    assert elements[0]["style"] == "primary"
    assert elements[-1]["style"] == "danger"
    assert elements[-1]["confirm"]["confirm"]["text"] == "Abort"
    assert all("style" not in b for b in elements[1:-1])


@pytest.mark.parametrize(
    "action_id",
    ["fm:launch:cp1", "fm:approve:", "fm:approve:cp1\n", "xfm:approve:cp1", "fm:approve:c p", ""],
)
def test_other_action_ids_are_not_ours(action_id: str) -> None:
    assert parse_action_id(action_id) is None
    assert ACTION_PATTERN.match(action_id) is None


def test_open_checkpoints_show_on_the_card_with_buttons_and_decided_ones_do_not() -> None:
    cps = [
        checkpoint("plan", cp_id="old", status="decided", decision="approve"),
        checkpoint("gate", cp_id="now", step_key="report", prompt="Ship it?"),
    ]
    card = status_card(run("paused", checkpoints=cps), context())
    assert_within_limits(card)
    assert [b["block_id"] for b in actions(card)] == ["cp:now"]
    assert "🚦 *Approval needed before `report`*\nShip it?" in texts(card)
    assert actions(status_card(run("paused", checkpoints=None), context())) == []


def test_a_300_step_run_fits_and_says_what_it_left_out() -> None:
    steps = [step(f"step-{n:03d}", "pending", started=None, finished=None) for n in range(300)]
    card = status_card(run("running", steps), context())
    assert_within_limits(card)
    shown = [n for n in range(300) if f"*step-{n:03d}*" in texts(card)]
    assert shown == list(range(len(shown)))  # the first N, in order
    assert 100 <= len(shown) < 300
    assert f"… and {300 - len(shown)} more steps ({300 - len(shown)} pending)" in texts(card)
    reply = checkpoint_reply(run("awaiting_approval", steps), checkpoint("plan"), context())
    assert_within_limits(reply)
    assert "1. *step-000* · shell" in texts(reply)
    assert "more steps" in texts(reply)


def test_huge_output_and_many_checkpoints_still_fit_every_limit() -> None:
    stdout = "".join(f"line {n} " + "x" * 90 + "\n" for n in range(1000))  # ~100 KB
    steps = [
        step(f"s{n}-" + "k" * 60, "failed", outputs={"stdout": stdout}, error="e" * 5000)
        for n in range(300)
    ]
    cps = [
        checkpoint("failure", cp_id=f"cp{n}", step_key=f"s{n}", prompt="p" * 5000)
        for n in range(40)
    ]
    report = run("failed", steps, checkpoints=cps, error="boom\n" * 2000, outputs={"x": stdout})
    ctx = context(title="T" * 500, approvers=tuple(f"U{n:04d}" for n in range(500)))
    card = status_card(report, ctx)
    messages = [
        card,
        checkpoint_reply(report, cps[0], ctx),
        result_reply(report, ctx, log_tail=stdout, diff_summary=stdout, artifacts=["a"] * 500),
    ]
    for message in messages:
        assert_within_limits(message)
    assert card.blocks[0]["text"]["text"].endswith("… · Failed")
    assert "… and 35 more open checkpoints" in texts(card)
    assert len(actions(card)) == 5
    result = texts(messages[2])
    assert "…(980 earlier lines not shown)" in result
    assert "line 999 " in result
    assert "more characters)" in result
    assert "… and 470 more" in result


def test_one_very_long_line_is_cut_visibly() -> None:
    report = run("succeeded", [step(outputs={"stdout": "y" * 100_000})])
    reply = result_reply(report, context(), log_tail=None, diff_summary=None, artifacts=[])
    assert_within_limits(reply)
    assert "…(98,000 characters not shown)" in texts(reply)


def test_output_that_grows_when_escaped_is_cut_by_the_final_pass() -> None:
    # 2,000 "<" pass the tail budget but escape to 8,000 characters: too long for Slack.
    report = run("succeeded", [step(outputs={"stdout": "<" * 2_000})])
    reply = result_reply(report, context(), log_tail=None, diff_summary=None, artifacts=[])
    assert_within_limits(reply)
    section = section_with(reply, "*lint* output")
    assert section.endswith("&lt;&lt;\n```\n…(5,072 more characters)")


def test_user_text_cannot_ping_the_channel_or_make_links() -> None:
    evil = "<!channel> & <https://evil.example|click>"
    cp = checkpoint("gate", step_key=evil, prompt=evil)
    report = run("failed", [step("lint", "failed", error=evil)], checkpoints=[cp], error=evil)
    ctx = context(title=evil, requester="<!here>")
    for message in (status_card(report, ctx), checkpoint_reply(report, cp, ctx)):
        assert_within_limits(message)
        mrkdwn = [n["text"] for n in walk(message.blocks) if n.get("type") == "mrkdwn"]
        for text in [*mrkdwn, message.text]:
            assert "<!" not in text
            assert "<https" not in text
        assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in "\n".join(mrkdwn)


def test_a_fence_in_the_output_cannot_close_the_code_block() -> None:
    out = "before\n```\n<!here> *bold*\n```\nafter"
    report = run("succeeded", [step(outputs={"stdout": out})])
    reply = result_reply(report, context(), log_tail=None, diff_summary=None, artifacts=[])
    assert_within_limits(reply)
    text = section_with(reply, "*lint* output")
    assert text.count("```") == 2
    assert text.startswith("*lint* output\n```\nbefore\n")
    assert text.endswith("after\n```")
    assert "ˋˋˋ\n&lt;!here&gt; *bold*\nˋˋˋ" in text


def test_the_plan_reply_lists_the_steps_in_order_and_who_may_decide() -> None:
    report = run("awaiting_approval")
    reply = checkpoint_reply(report, checkpoint("plan"), context(approvers=("U1AA", "S0456DEF")))
    assert_within_limits(reply)
    shown = texts(reply)
    assert "1. *lint* · shell\n2. *test* · shell\n3. *report* · shell" in shown
    assert "Who may decide: <@U1AA>, <!subteam^S0456DEF>" in shown
    assert [b["block_id"] for b in actions(reply)] == ["cp:cp1"]
    assert reply.text == "Decision needed: Run python-check (3 steps)?"
    anyone = texts(checkpoint_reply(report, checkpoint("plan"), context()))
    assert "Anyone here may decide." in anyone


def test_a_failure_reply_names_the_step() -> None:
    cp = checkpoint("failure", step_key="test", prompt="Step 'test' failed after 3 attempt(s)")
    reply = checkpoint_reply(run("paused"), cp, context())
    assert texts(reply).startswith("⚠️ *Step `test` failed*\nStep 'test' failed")
    assert actions(reply)[0]["elements"][0]["action_id"] == "fm:retry:cp1"


@pytest.mark.parametrize(
    ("decision", "by", "expected"),
    [
        ("approve", "U0123ABC", "✅ Approved by <@U0123ABC>"),
        ("reject", "U0123ABC", "🚫 Rejected by <@U0123ABC>"),
        ("skip", "alice", "⏭️ Skipped by alice"),
        ("abort", "<!here>", "🛑 Aborted by &lt;!here&gt;"),
        ("retry", None, "🔁 Retry requested"),
    ],
)
def test_decided_reply_says_who_decided_what(decision: str, by: str | None, expected: str) -> None:
    cp = checkpoint("failure", status="decided", decision=decision, decided_by=by)
    reply = decided_reply(cp)
    assert_within_limits(reply)
    assert reply.text == expected
    assert reply.blocks[0]["text"]["text"] == expected
    assert actions(reply) == []
    assert "<!date^" in texts(reply)


def test_a_cancelled_checkpoint_is_no_longer_needed() -> None:
    reply = decided_reply(checkpoint("gate", status="cancelled"))
    assert reply.text.startswith("⚪ No longer needed")
    assert actions(reply) == []


def test_the_result_reply_shows_outputs_changes_and_artifacts() -> None:
    stdout = "\n".join(f"ok {n}" for n in range(30))
    report = run(
        "succeeded",
        [step("test", outputs={"stdout": stdout}), step("echo", agent="echo", outputs={"x": 1})],
        outputs={"summary": "all green", "passed": 12},
    )
    reply = result_reply(
        report,
        context(cost_usd=1.5),
        log_tail="worker started\nworker done",
        diff_summary=" app.py | 3 ++-\n 1 file changed, 2 insertions(+), 1 deletion(-)",
        artifacts=["report.html", "coverage.xml"],
    )
    assert_within_limits(reply)
    shown = texts(reply)
    assert reply.text == "✅ python-check: Succeeded"
    assert shown.startswith("✅ *python-check* succeeded in 10m 00s")
    assert "$1.50" in shown
    assert "*test* output\n```\n…(10 earlier lines not shown)\nok 10\n" in shown
    assert "ok 29\n```" in shown
    assert "*echo* output" not in shown
    assert '"summary": "all green"' in shown
    assert "1 file changed, 2 insertions(+), 1 deletion(-)\n```" in shown
    assert "*Artifacts*\n• `report.html`\n• `coverage.xml`" in shown
    assert "*Log*\n```\nworker started\nworker done\n```" in shown


def test_a_failed_run_reply_shows_the_error() -> None:
    report = run("failed", error="step 'test' failed: exit code 1\nE   assert 1 == 2")
    reply = result_reply(report, context(), log_tail=None, diff_summary=None, artifacts=[])
    assert_within_limits(reply)
    shown = texts(reply)
    assert "❌ *python-check* failed in 10m 00s: step 'test' failed: exit code 1 …" in shown
    assert "```\nstep 'test' failed: exit code 1\nE   assert 1 == 2\n```" in shown


def test_a_checkpoint_listed_twice_does_not_repeat_action_ids() -> None:
    cp = checkpoint("gate", step_key="report")
    card = status_card(run("paused", checkpoints=[cp, cp]), context())
    assert_within_limits(card)
    assert len(actions(card)) == 1
