"""Expanding a playbook's approvers (Slack users and user groups) into user ids, with
the group members cached: a click must be answered within Slack's 3 seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.errors import SlackUnavailable

GROUP_TTL_S = 300.0


class Approvers:
    """User ids allowed by a list of user and user-group ids (``S…`` are groups)."""

    def __init__(self, client: WebClient, *, ttl_s: float = GROUP_TTL_S) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    def expand(self, ids: Iterable[str]) -> frozenset[str]:
        users: set[str] = set()
        for entry in ids:
            if entry.startswith("S"):
                users |= self._members(entry)
            else:
                users.add(entry)
        return frozenset(users)

    def _members(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._groups.get(group)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        try:
            response = self.client.usergroups_users_list(usergroup=group)
        except SlackApiError as exc:
            if exc.response.get("error") == "no_such_subteam":
                members: frozenset[str] = frozenset()  # a deleted group approves nobody
            else:
                raise SlackUnavailable(f"cannot list user group {group}: {exc}") from exc
        except (SlackClientError, OSError) as exc:
            raise SlackUnavailable(f"cannot list user group {group}: {exc}") from exc
        else:
            members = frozenset(str(u) for u in response.get("users") or [])
        with self._lock:
            self._groups[group] = (time.monotonic(), members)
        return members
