"""Delivering run progress to where the request came from (Slack for now)."""

from __future__ import annotations

from workers.notify.blocks import (
    ACTION_PATTERN,
    Block,
    CardContext,
    Message,
    buttons,
    checkpoint_reply,
    decided_reply,
    parse_action_id,
    result_reply,
    status_card,
)

__all__ = [
    "ACTION_PATTERN",
    "Block",
    "CardContext",
    "Message",
    "buttons",
    "checkpoint_reply",
    "decided_reply",
    "parse_action_id",
    "result_reply",
    "status_card",
]
