"""The Modify modal: a plan's step inputs as text fields, and the changes read back.

A field's ``block_id`` is ``<step>|<input>``; ``private_metadata`` carries the
checkpoint id (Slack allows 3,000 characters there, and an id is twelve). Values that
were strings come back as strings; anything else is read as YAML (``3`` → 3, ``[a]`` → a
list), so a person can change a number without quoting it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from orchestrator.plan import PlanSpec

CALLBACK_ID = "fm:modify"
MAX_INPUT_BLOCKS = 90  # Slack allows 100 blocks in a modal; room for the notes
MAX_VALUE = 3000  # a plain_text_input holds at most 3,000 characters
Block = dict[str, Any]


def modify_view(plan: PlanSpec, checkpoint_id: str) -> dict[str, Any]:
    """The modal for editing the inputs of the plan's steps."""
    blocks: list[Block] = []
    skipped = 0
    for step in plan.steps:
        for name, value in step.with_.items():
            text = _as_text(value)
            if len(text) > MAX_VALUE or len(blocks) >= MAX_INPUT_BLOCKS:
                skipped += 1
                continue
            blocks.append(_field(f"{step.id}|{name}", f"{step.id} · {name}", text))
    if skipped:
        note = f"{skipped} input(s) are too long or too many to edit here: use the API."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if not blocks:
        note = "This plan's steps take no inputs: approve or reject it instead."
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": note}})
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": checkpoint_id,
        "title": {"type": "plain_text", "text": "Modify the plan"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }
    if any(b["type"] == "input" for b in blocks):
        view["submit"] = {"type": "plain_text", "text": "Approve with changes"}
    return view


def changes(plan: PlanSpec, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The inputs the person changed, by step, typed like the originals."""
    found: dict[str, dict[str, Any]] = {}
    for block_id, fields in state.items():
        step_id, sep, name = block_id.partition("|")
        if not sep or not isinstance(fields, dict):
            continue
        try:
            original = plan.step(step_id).with_.get(name)
        except KeyError:
            continue
        action = fields.get("value")
        if not isinstance(action, dict):
            continue
        raw = action.get("value") or ""  # Slack sends a field emptied by the person as null
        if raw == _as_text(original):
            continue
        found.setdefault(step_id, {})[name] = _typed(raw, original)
    return found


def _field(block_id: str, label: str, text: str) -> Block:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "value",
        "multiline": "\n" in text or len(text) > 80,
        "max_length": MAX_VALUE,
    }
    if text:
        element["initial_value"] = text
    return {
        "type": "input",
        "block_id": block_id[:255],
        "label": {"type": "plain_text", "text": label[:2000]},
        "element": element,
        "optional": True,
    }


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _typed(raw: str, original: Any) -> Any:
    if isinstance(original, str) or original is None:
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw  # validation of the modified plan says what is wrong with it
