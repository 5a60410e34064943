"""Delivering a run to its Slack thread: the status card (one message, edited in place),
a reply per checkpoint (its buttons removed once decided) and a reply with the result.

Every message is recorded in ``deliveries`` right after it is posted, and edited only
when what it shows changed (a digest of its blocks), at most once a second. slack_sdk
errors are translated here, once: a 429 waits its ``Retry-After``, a 5xx or a network
failure backs off, and the run's next delivery renders the state again from the
database, so nothing is lost while Slack is away.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from orchestrator import deliveries
from orchestrator.artifacts import ArtifactStore
from orchestrator.deliveries import Destination, Posted
from orchestrator.models import utcnow
from orchestrator.queries import CheckpointReport, RunReport, run_report
from orchestrator.states import RUN_TERMINAL
from orchestrator.store import Store
from workers.notify.blocks import (
    CardContext,
    Message,
    checkpoint_reply,
    decided_reply,
    result_reply,
    status_card,
)
from workers.notify.notifier import Deferred

log = logging.getLogger(__name__)
TARGET = "slack"
CARD, RESULT = "card", "result"
_OPEN, _CLOSED = "open", "closed"


def slack_client(token: str, base_url: str) -> WebClient:
    """A Web API client; 429s are not retried in place (the notifier reschedules)."""
    return WebClient(token=token, base_url=base_url, timeout=10)


class SlackChannel:
    """The ``slack`` destination of the notifier."""

    def __init__(
        self, client: WebClient, store: Store, artifacts: ArtifactStore, *, min_edit_s: float = 1.0
    ) -> None:
        self.client = client
        self.store = store
        self.artifacts = artifacts
        self.min_edit_s = min_edit_s

    def deliver(self, destination: Destination) -> None:
        origin = destination.origin.get("slack") or {}
        channel = str(origin.get("channel") or "")
        if not channel:
            log.error("run %s reports to Slack but names no channel", destination.run_id)
            return
        report = run_report(self.store, destination.run_id, checkpoints=True)
        done = deliveries.posted(self.store, destination.run_id, TARGET)
        cost = sum(s.cost_usd for s in report.steps)
        ctx = CardContext(
            title=destination.playbook or destination.request or "request",
            requester=destination.requester,
            now=utcnow(),
            cost_usd=cost or None,  # known once a step has spent something (LLM steps)
            approvers=tuple(destination.approvers),
        )
        thread_ts = self._card(destination, channel, self._thread(destination), report, ctx, done)
        for cp in report.checkpoints or []:
            self._checkpoint(destination, channel, thread_ts, report, cp, ctx, done)
        if report.status in RUN_TERMINAL and RESULT not in done:
            message = result_reply(
                report,
                ctx,
                log_tail=None,
                diff_summary=self._diff_summary(report.run_id),
                artifacts=self.artifacts.list(report.run_id),
            )
            posted = self._post(channel, message, thread_ts)
            self._record(destination, RESULT, posted, _digest(message))

    def _thread(self, destination: Destination) -> str | None:
        """The thread the card goes in: the request's, or for a child run its parent's."""
        origin = destination.origin.get("slack") or {}
        if origin.get("thread_ts") or destination.parent_run_id is None:
            return str(origin.get("thread_ts") or "") or None
        parent = deliveries.posted(self.store, destination.parent_run_id, TARGET).get(CARD)
        if parent is None or not parent.thread:
            raise Deferred(1.0, "the parent run's card is not posted yet")
        return parent.thread.split(":", 1)[1]

    # -- the three kinds of message ---------------------------------------------------

    def _card(
        self,
        destination: Destination,
        channel: str,
        thread_ts: str | None,
        report: RunReport,
        ctx: CardContext,
        done: dict[str, Posted],
    ) -> str:
        """Post or edit the card; return the thread's ts."""
        message = status_card(report, ctx)
        digest = _digest(message)
        card = done.get(CARD)
        if card is None:
            ts = self._post(channel, message, thread_ts)
            thread = thread_ts or ts
            self._record(destination, CARD, ts, digest, thread=f"{channel}:{thread}")
            return thread
        thread = (card.thread or f"{channel}:{card.ref}").split(":", 1)[1]
        if card.digest != digest:
            if card.age_s < self.min_edit_s:
                raise Deferred(self.min_edit_s - card.age_s, "the card was edited just now")
            self._call(
                "chat.update", self.client.chat_update, **_update(channel, card.ref, message)
            )
        self._record(destination, CARD, card.ref, digest)
        return thread

    def _checkpoint(
        self,
        destination: Destination,
        channel: str,
        thread_ts: str,
        report: RunReport,
        cp: CheckpointReport,
        ctx: CardContext,
        done: dict[str, Posted],
    ) -> None:
        key = f"cp:{cp.id}"
        reply = done.get(key)
        if cp.status == "open" and reply is None:
            ts = self._post(channel, checkpoint_reply(report, cp, ctx), thread_ts)
            self._record(destination, key, ts, _OPEN)
        elif cp.status != "open" and reply is not None and reply.digest == _OPEN:
            message = decided_reply(cp)
            self._call(
                "chat.update", self.client.chat_update, **_update(channel, reply.ref, message)
            )
            self._record(destination, key, reply.ref, _CLOSED)

    # -- Slack calls -----------------------------------------------------------------

    def _post(self, channel: str, message: Message, thread_ts: str | None) -> str:
        kwargs: dict[str, Any] = {"channel": channel, "text": message.text}
        kwargs["blocks"] = message.blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        response = self._call("chat.postMessage", self.client.chat_postMessage, **kwargs)
        return str(response["ts"])

    def _call(
        self, name: str, method: Callable[..., SlackResponse], **kwargs: Any
    ) -> SlackResponse:
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429:
                retry_after = float(exc.response.headers.get("Retry-After", 1) or 1)
                raise Deferred(retry_after, f"{name}: rate limited by Slack") from exc
            error = exc.response.get("error") if exc.response.data else None
            if status >= 500:
                raise Deferred(None, f"{name}: Slack answered {status}") from exc
            # A refusal (not_in_channel, invalid_auth…) will not fix itself quickly:
            # say so loudly and try again later rather than drop the run's messages.
            log.error("Slack refused %s: %s", name, error or status)
            raise Deferred(None, f"{name}: Slack refused it ({error or status})") from exc
        except (SlackClientError, OSError) as exc:
            raise Deferred(None, f"{name}: Slack unreachable ({exc})") from exc

    def _record(
        self,
        destination: Destination,
        key: str,
        ref: str,
        digest: str,
        *,
        thread: str | None = None,
    ) -> None:
        deliveries.record(
            self.store,
            destination.run_id,
            TARGET,
            key,
            ref=ref,
            digest=digest,
            seq=destination.event_seq,
            thread=thread,
        )

    def _diff_summary(self, run_id: str) -> str | None:
        if not self.artifacts.exists(run_id, "diff.patch"):
            return None
        return diff_summary(self.artifacts.read_text(run_id, "diff.patch"))


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def diff_summary(patch: str) -> str | None:
    """``git diff --stat``-like lines for a unified diff; None when it changes nothing.

    Hunk headers say how many lines follow, so a removed line that reads ``-- x`` (shown
    as ``--- x``) is counted, not taken for the next file's header; a deleted file is
    named from its ``---`` side."""
    files: dict[str, list[int]] = {}
    old_name, current = "", [0, 0]  # a scratch count until the first file header
    old_left = new_left = 0
    for line in patch.splitlines():
        if old_left > 0 or new_left > 0:
            if line.startswith("-"):
                old_left, current[1] = old_left - 1, current[1] + 1
            elif line.startswith("+"):
                new_left, current[0] = new_left - 1, current[0] + 1
            elif not line.startswith("\\"):  # context ("\ No newline" counts for neither)
                old_left, new_left = old_left - 1, new_left - 1
        elif line.startswith("--- "):
            old_name = line[4:].split("\t")[0].removeprefix("a/")
        elif line.startswith("+++ "):
            new_name = line[4:].split("\t")[0].removeprefix("b/")
            name = old_name if new_name == "/dev/null" else new_name
            current = files.setdefault(name, [0, 0])
        elif match := _HUNK.match(line):
            old_left = int(match.group(1) or 1)
            new_left = int(match.group(2) or 1)
    if not files:
        return None
    lines = [f"{name} | +{added} -{removed}" for name, (added, removed) in files.items()]
    lines.append(f"{len(files)} file(s) changed")
    return "\n".join(lines)


def _update(channel: str, ts: str, message: Message) -> dict[str, Any]:
    return {"channel": channel, "ts": ts, "text": message.text, "blocks": message.blocks}


def _digest(message: Message) -> str:
    document = json.dumps([message.text, message.blocks], sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()[:32]
