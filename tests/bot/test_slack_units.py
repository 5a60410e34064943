"""The Slack front door's pure parts: parsing what people type, who may decide, the
Modify modal's changes, the diff summary of a result, and the run id of a delivery."""

from __future__ import annotations

from typing import Any

import pytest

from bot.slack.commands import (
    Cancel,
    Help,
    Request,
    Retry,
    RunPlaybook,
    Status,
    UsageError,
    parse,
    parse_thread,
)
from bot.slack.front import run_id_for
from bot.slack.modal import CALLBACK_ID, changes, modify_view
from orchestrator.approvals import refusal
from orchestrator.plan import PlanSpec
from workers.notify.slack import diff_summary

# -- commands.parse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help()),
        ("   ", Help()),
        ("help", Help()),
        ("--help", Help()),
        ("<@UBOT>", Help()),
        ("status", Status()),
        ("STATUS", Status()),
        ("status s0123456789a", Status("s0123456789a")),
        ("<@UBOT|firstmate> status  s1 ", Status("s1")),
        ("run echo-only", RunPlaybook("echo-only")),
        ("Run echo-only word=two", RunPlaybook("echo-only", {"word": "two"})),
        ('run x word="two words" n=3', RunPlaybook("x", {"word": "two words", "n": "3"})),
        ("run x word='it is' empty=", RunPlaybook("x", {"word": "it is", "empty": ""})),
        ("run x expr=a=b", RunPlaybook("x", {"expr": "a=b"})),
        ("<@UBOT> run echo-only word=hi", RunPlaybook("echo-only", {"word": "hi"})),
        ("please deploy the site", Request("please deploy the site")),
        ("<@UBOT> please deploy", Request("please deploy")),
    ],
)
def test_parse_reads_commands(text: str, expected: object) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("run", "which playbook"),
        ("run   ", "which playbook"),
        ("run x nokeyvalue", "'nokeyvalue' is not an input"),
        ("run x =v", "'=v' is not an input"),
        ("run x 1a=v", "'1a=v' is not an input"),
        ("run x word=a word=b", "input 'word' is given twice"),
        ('run x word="unclosed', "cannot read that"),
    ],
)
def test_parse_refuses_what_it_cannot_read(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # What Slack sends for what was typed: entities escaped, links wrapped.
        ("run x v=a&amp;b", "a&b"),
        ("run x v=&lt;b&gt;", "<b>"),
        ("run x v=&amp;lt;", "&lt;"),
        ("run x v=<https://example.com/a?b=1&amp;c=2>", "https://example.com/a?b=1&c=2"),
        ("run x v=<http://example.com|example.com>", "example.com"),
        ("run x v=<mailto:a@example.com|a@example.com>", "a@example.com"),
    ],
)
def test_parse_reads_what_was_typed_not_slacks_markup(text: str, value: str) -> None:
    assert parse(text) == RunPlaybook("x", {"v": value})


# -- commands.parse_thread ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status", Status()),
        ("  Status ", Status()),
        ("cancel", Cancel()),
        ("<@UBOT> cancel", Cancel()),
        ("CANCEL", Cancel()),
        ("retry build", Retry("build")),
        ("<@UBOT|mate>  retry   build", Retry("build")),
        ("", None),
        ("<@UBOT>", None),
        ("thanks!", None),
        ("status s123", None),
        ("cancel this please", None),
        ("retry", None),
        ("retry a b", None),
        ("please retry build", None),
    ],
)
def test_parse_thread_answers_only_its_commands(text: str, expected: object) -> None:
    assert parse_thread(text) == expected


# -- approvals.refusal ----------------------------------------------------------------

ANYONE = None
OPS = frozenset({"UOPS", "UREQ"})


@pytest.mark.parametrize(
    ("user", "decision", "approvers", "four_eyes", "refused"),
    [
        # Without approvers anyone may decide, the requester included.
        ("USTRANGER", "approve", ANYONE, False, None),
        ("UREQ", "approve", ANYONE, False, None),
        ("USTRANGER", "cancel", ANYONE, False, None),
        # With approvers, only they may.
        ("USTRANGER", "approve", OPS, False, "approvers"),
        ("USTRANGER", "cancel", OPS, False, "approvers"),
        ("USTRANGER", "abort", OPS, False, "approvers"),
        ("UOPS", "approve", OPS, False, None),
        ("UOPS", "reject", OPS, False, None),
        # Four-eyes: the requester may not move their own run forward...
        ("UREQ", "approve", OPS, True, "four-eyes"),
        ("UREQ", "modify", OPS, True, "four-eyes"),
        ("UREQ", "continue", ANYONE, True, "four-eyes"),
        ("UREQ", "retry", ANYONE, True, "four-eyes"),
        ("UREQ", "skip", ANYONE, True, "four-eyes"),
        ("UOPS", "approve", OPS, True, None),
        ("USTRANGER", "approve", ANYONE, True, None),
        # ...but may always stop it, approver or not.
        ("UREQ", "reject", OPS, True, None),
        ("UREQ", "abort", OPS, True, None),
        ("UREQ", "cancel", frozenset({"UOPS"}), False, None),
        ("UREQ", "cancel", frozenset({"UOPS"}), True, None),
        # Not the requester, not an approver: stopping is refused too.
        ("USTRANGER", "reject", frozenset({"UOPS"}), True, "approvers"),
    ],
)
def test_refusal_table(
    user: str,
    decision: str,
    approvers: frozenset[str] | None,
    four_eyes: bool,
    refused: str | None,
) -> None:
    why = refusal(
        user=user, decision=decision, requester="UREQ", approvers=approvers, four_eyes=four_eyes
    )
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


def test_a_run_without_requester_is_nobodys_own() -> None:
    assert (
        refusal(user="U1", decision="approve", requester=None, approvers=None, four_eyes=True)
        is None
    )
    why = refusal(
        user="U1", decision="cancel", requester=None, approvers=frozenset({"U2"}), four_eyes=False
    )
    assert why is not None


# -- the Modify modal -----------------------------------------------------------------

PLAN = PlanSpec.model_validate(
    {
        "name": "demo",
        "steps": [
            {
                "id": "say",
                "agent": "echo",
                "with": {"word": "one", "count": 1, "ratio": 0.5, "tags": ["a"], "flag": True},
            },
            {"id": "run", "agent": "shell", "with": {"command": "echo 3"}},
        ],
    }
)


def _state(**values: str | None) -> dict[str, Any]:
    """The ``state.values`` of a submitted modal: ``say__word="x"`` is ``say|word``."""
    return {
        key.replace("__", "|"): {"value": {"type": "plain_text_input", "value": value}}
        for key, value in values.items()
    }


def _initial(view: dict[str, Any]) -> dict[str, str | None]:
    return {
        b["block_id"]: b["element"].get("initial_value")
        for b in view["blocks"]
        if b["type"] == "input"
    }


def test_the_modal_shows_every_input_as_text() -> None:
    view = modify_view(PLAN, "cp0123456789")
    assert view["callback_id"] == CALLBACK_ID
    assert view["private_metadata"] == "cp0123456789"
    assert _initial(view) == {
        "say|word": "one",
        "say|count": "1",
        "say|ratio": "0.5",
        "say|tags": '["a"]',
        "say|flag": "true",
        "run|command": "echo 3",
    }
    assert "submit" in view


def test_unchanged_fields_are_not_reported() -> None:
    view = modify_view(PLAN, "cp1")
    untouched = {k.replace("|", "__"): v for k, v in _initial(view).items()}
    assert changes(PLAN, _state(**untouched)) == {}


def test_edited_values_keep_their_types() -> None:
    edited = changes(
        PLAN,
        _state(
            say__word="3",  # a string stays a string, even when it reads as a number
            say__count="2",  # a number stays a number
            say__ratio="0.25",
            say__tags="[a, b]",
            say__flag="false",
            run__command="[not, a, list]",
        ),
    )
    assert edited == {
        "say": {"word": "3", "count": 2, "ratio": 0.25, "tags": ["a", "b"], "flag": False},
        "run": {"command": "[not, a, list]"},
    }


def test_a_field_emptied_by_the_person_is_a_change() -> None:
    # Slack sends an emptied plain_text_input as null.
    assert changes(PLAN, _state(say__word=None)) == {"say": {"word": ""}}


def test_fields_of_other_modals_or_steps_are_ignored() -> None:
    state = {
        **_state(nope__word="x"),
        "hspI": {"maBWU": {"type": "plain_text_input", "value": "test"}},
        "say|word": {"value": "not a dict"},
    }
    assert changes(PLAN, state) == {}


# -- workers.notify.slack.diff_summary -------------------------------------------------

CHANGED = """\
diff --git a/keep.py b/keep.py
--- a/keep.py
+++ b/keep.py
@@ -1,3 +1,4 @@
 a
-b
+B
 c
+d
diff --git a/new.md b/new.md
new file mode 100644
--- /dev/null
+++ b/new.md
@@ -0,0 +1 @@
+hi
"""
DELETED = """\
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
--- a/gone.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-x
-y
"""
LOOKS_LIKE_HEADERS = """\
diff --git a/s.txt b/s.txt
--- a/s.txt
+++ b/s.txt
@@ -1 +1 @@
--- old
+++ new
"""


def test_diff_summary_counts_lines_per_file() -> None:
    assert diff_summary(CHANGED) == "keep.py | +2 -1\nnew.md | +1 -0\n2 file(s) changed"


def test_diff_summary_of_nothing_is_none() -> None:
    assert diff_summary("") is None


def test_diff_summary_names_a_deleted_file() -> None:
    assert diff_summary(DELETED) == "gone.txt | +0 -2\n1 file(s) changed"


def test_diff_summary_counts_lines_that_look_like_headers() -> None:
    assert diff_summary(LOOKS_LIKE_HEADERS) == "s.txt | +1 -1\n1 file(s) changed"


# -- front.run_id_for -----------------------------------------------------------------


def test_run_id_for_is_stable_per_delivery_and_distinct_across_them() -> None:
    first = run_id_for("command", "T1", "111.222.abc")
    assert first == run_id_for("command", "T1", "111.222.abc")
    assert first.startswith("s") and len(first) == 12
    others = {
        run_id_for("command", "T1", "111.222.abd"),
        run_id_for("command", "T2", "111.222.abc"),
        run_id_for("event", "T1", "111.222.abc"),
        run_id_for("event", "T1", "Ev0123"),
    }
    assert first not in others and len(others) == 4
