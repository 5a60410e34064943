"""A run as a GitHub comment: pure rendering, so no GitHub, database or clock needed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.queries import CheckpointReport, RunReport, StepReport
from workers.notify.blocks import CardContext
from workers.notify.markdown import (
    MAX_COMMENT,
    code_block,
    escape,
    fit,
    inline_code,
    run_markdown,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
START = NOW - timedelta(minutes=10)
CTX = CardContext(title="python-check", requester="octocat", now=NOW)


def step(
    key: str = "lint",
    status: str = "succeeded",
    *,
    attempts: int = 1,
    started: datetime | None = START,
    finished: datetime | None = START + timedelta(seconds=5),
    outputs: dict[str, Any] | None = None,
    error: str | None = None,
) -> StepReport:
    return StepReport(
        id=key,
        agent="shell",
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
    cp_id: str = "cp1",
    kind: str = "gate",
    *,
    status: str = "open",
    step_key: str | None = "deploy",
    decision: str | None = None,
    by: str | None = None,
    prompt: str = "Run deploy?",
) -> CheckpointReport:
    return CheckpointReport(
        id=cp_id,
        run_id="r1",
        kind=kind,
        step=step_key,
        status=status,
        prompt=prompt,
        decision=decision,
        decided_by=by,
        decided_at=NOW if status == "decided" else None,
        created_at=START,
    )


def report(
    status: str = "running",
    steps: list[StepReport] | None = None,
    *,
    checkpoints: list[CheckpointReport] | None = None,
    outputs: dict[str, Any] | None = None,
    error: str | None = None,
) -> RunReport:
    terminal = status in ("succeeded", "failed", "aborted")
    return RunReport(
        run_id="r1",
        status=status,
        source="github",
        playbook="python-check",
        parent_run_id=None,
        created_at=START,
        finished_at=START + timedelta(seconds=42) if terminal else None,
        error=error,
        outputs=outputs or {},
        steps=steps if steps is not None else [step()],
        checkpoints=checkpoints,
    )


def fences_balanced(text: str) -> bool:
    return len(re.findall(r"^```", text, flags=re.MULTILINE)) % 2 == 0


def test_a_running_run_shows_its_status_and_a_row_per_step() -> None:
    text = run_markdown(
        report(steps=[step("lint"), step("test", "running", finished=None, attempts=2)]),
        CTX,
        request_url="https://github.com/o/r/issues/1#issuecomment-9",
    )
    assert text.startswith("### 🏃 python-check · Running")
    assert "Run `r1`" in text and "requested by **octocat**" in text
    assert "([comment](<https://github.com/o/r/issues/1#issuecomment-9>))" in text
    assert "| ✅ | `lint` | shell | succeeded | 1 | 5.0s |" in text
    # A running step is timed against ``now``; its second attempt is shown.
    assert "| 🔄 | `test` | shell | running | 2 | 10m 00s |" in text
    assert "Run succeeded" not in text


def test_an_open_checkpoint_lists_the_exact_comments_that_decide_it() -> None:
    plan = checkpoint("cpPLAN", "plan", step_key=None, prompt="Run python-check (2 steps)?")
    gate = checkpoint("cpGATE", "gate")
    failure = checkpoint("cpFAIL", "failure", step_key="test")
    text = run_markdown(report("paused", checkpoints=[plan, gate, failure]), CTX)
    assert "#### ✋ The plan needs approval" in text
    assert "> Run python-check (2 steps)?" in text
    assert "/mate approve cpPLAN\n/mate reject cpPLAN" in text
    assert "#### 🚦 Approval needed before `deploy`" in text
    assert "/mate continue cpGATE\n/mate skip cpGATE\n/mate abort cpGATE" in text
    assert "#### ⚠️ Step `test` failed" in text
    for decision in ("retry", "skip", "continue", "abort"):
        assert f"/mate {decision} cpFAIL" in text
    assert fences_balanced(text)
    # The comment never starts with /mate: it must not be read back as a command.
    assert not text.lstrip().startswith("/mate")


def test_decided_checkpoints_say_who_decided_and_offer_no_commands() -> None:
    decided = checkpoint("cpGATE", status="decided", decision="continue", by="hubot")
    text = run_markdown(report(checkpoints=[decided]), CTX)
    assert "- Gate at `deploy` ▶️ continued by **hubot**" in text
    assert "/mate continue cpGATE" not in text


def test_the_result_shows_outputs_and_each_steps_stdout_tail() -> None:
    lines = "\n".join(f"line {n}" for n in range(100))
    done = report(
        "succeeded",
        steps=[step("lint", outputs={"stdout": lines})],
        outputs={"verdict": "clean"},
    )
    text = run_markdown(done, CTX)
    assert "**✅ Run succeeded** in 42s" in text
    assert '"verdict": "clean"' in text
    assert "line 99" in text and "line 69" not in text and "70 earlier lines not shown" in text
    assert fences_balanced(text)


def test_a_failed_run_shows_its_error_and_the_failed_step() -> None:
    failed = report(
        "failed",
        steps=[step("test", "failed", error="exit 1\nAssertionError: 2 != 3")],
        error="step test failed\nTraceback (most recent call last):\n  boom",
    )
    text = run_markdown(failed, CTX)
    assert "**❌ Run failed** in 42s: step test failed …" in text
    assert "- `test`: exit 1 …" in text
    assert "Traceback (most recent call last):" in text  # the whole error, fenced
    assert fences_balanced(text)


def test_output_cannot_close_its_fence_mention_anyone_or_inject_html() -> None:
    hostile = "```\n@octo-org/everyone <img src=x onerror=alert(1)> [x](http://evil)\n```"
    text = run_markdown(report("succeeded", steps=[step("s", outputs={"stdout": hostile})]), CTX)
    body = text.split("**`s` output**\n", 1)[1]
    assert body.startswith("```\n")
    # Inside the fence nothing renders; the fence itself closes only at its end.
    assert body.count("```") == 2 and body.rstrip().endswith("```")
    assert "ˋˋˋ" in body


def test_escape_makes_user_text_inert() -> None:
    escaped = escape("hi @octocat <b>x</b> [a](b) *bold* | #1 ~x~ `c`\nnext")
    assert "@\u200boctocat" in escaped
    assert "<b>" not in escaped and "&lt;b&gt;" in escaped
    assert r"\[a\](b)" in escaped and r"\*bold\*" in escaped and r"\|" in escaped
    assert "\n" not in escaped
    assert inline_code("a`b|c") == "`aˋb¦c`"
    assert code_block("   \n") == "_(empty)_"


def test_titles_and_requesters_are_escaped() -> None:
    ctx = CardContext(title="<script>@all", requester="@evil", now=NOW)
    text = run_markdown(report(), ctx)
    assert "<script>" not in text and "@all" not in text and "@evil" not in text


def test_a_huge_run_fits_in_one_comment_and_says_what_was_cut() -> None:
    steps = [
        step(f"s{n:03d}", outputs={"stdout": ("x" * 150 + "\n") * 50}, error=None)
        for n in range(300)
    ]
    big = report(
        "succeeded",
        steps=steps,
        outputs={"blob": "y" * 100_000},
        checkpoints=[checkpoint(f"cp{n}", prompt="p" * 5000) for n in range(30)],
    )
    text = run_markdown(big, CTX)
    assert len(text.encode("utf-16-le")) // 2 <= MAX_COMMENT
    assert "… and 200 more steps (200 succeeded)" in text
    assert "… and 20 more open checkpoints" in text
    assert "more characters" in text  # the outputs were cut, visibly
    assert fences_balanced(text)


def test_fit_cuts_visibly_closes_an_open_fence_and_counts_astral_characters() -> None:
    text = "intro\n```\n" + "🙂" * 40_000 + "\n```\n"
    cut = fit(text, 10_000)
    assert len(cut.encode("utf-16-le")) // 2 <= 10_000
    assert fences_balanced(cut)
    assert cut.endswith("more characters not shown)")
    assert fit("short") == "short"
