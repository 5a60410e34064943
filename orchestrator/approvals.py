"""Who may decide a checkpoint: the rule, apart from how approvers are looked up.

A playbook's ``approvers`` (users and user groups, expanded by the front door) may
decide; without approvers, anyone who can see the run may. With ``four_eyes``, the
person who asked for the run may not move it forward themselves. The requester may
always stop their own run (reject, abort, cancel).
"""

from __future__ import annotations

from collections.abc import Set

FORWARD = frozenset({"approve", "modify", "continue", "retry", "skip"})
STOP = frozenset({"reject", "abort", "cancel"})


def refusal(
    *,
    user: str,
    decision: str,
    requester: str | None,
    approvers: Set[str] | None,
    four_eyes: bool,
) -> str | None:
    """Why ``user`` may not make ``decision``, or None when they may."""
    own = requester is not None and user == requester
    if decision in STOP and own:
        return None
    if approvers is not None and user not in approvers:
        return "only this playbook's approvers may decide this"
    if four_eyes and own and decision in FORWARD:
        return "four-eyes rule: someone other than the requester must approve this run"
    return None
