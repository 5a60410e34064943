"""The Slack listeners: parse, acknowledge, make one core call, answer.

Each listener acknowledges first (Slack gives three seconds). Only parsing and looking
up a playbook happen before ``ack``, so a mistake comes back at once as an ephemeral
message; starting a run (a database write) and everything Slack should see about it
come after: the card, checkpoint replies and the result are posted by the ``notify``
queue from the database, not from here. A retried delivery (same ``trigger_id`` or
``event_id``) starts nothing twice: a run's id is derived from it, and the engine
records a run id once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from bot.slack import commands
from bot.slack.approvers import Approvers
from bot.slack.commands import Cancel, Help, Request, Retry, RunPlaybook, Status, UsageError
from bot.slack.errors import SlackUnavailable
from bot.slack.modal import modify_view
from orchestrator import deliveries, playbooks
from orchestrator.approvals import refusal
from orchestrator.errors import FirstmateError, NotFound, PlaybookError
from orchestrator.queries import checkpoint, list_runs, open_checkpoints, run_plan, run_report
from workers.notify.blocks import parse_action_id
from workers.notify.slack import TARGET
from workers.runtime import Runtime

log = logging.getLogger(__name__)
NO_LLM = (
    "Requests in your own words need an LLM planner, and none is configured here "
    "(`FIRSTMATE_LLM`). Meanwhile: `/mate run <playbook> [key=value …]`; `/mate help` lists "
    "what I understand."
)
Say = Callable[[str], None]


def run_id_for(kind: str, team: str, delivery: str) -> str:
    """The run id a Slack delivery starts: the same for every retry of that delivery."""
    digest = hashlib.sha256(f"slack:{kind}:{team}:{delivery}".encode()).hexdigest()
    return "s" + digest[:11]


class SlackFront:
    """What Firstmate does with each kind of Slack request."""

    def __init__(self, rt: Runtime, client: WebClient, approvers: Approvers) -> None:
        self.rt = rt
        self.client = client
        self.approvers = approvers

    # -- /mate and @Firstmate --------------------------------------------------------

    def start(self, text: str, *, ack: Say, say: Say, run_id: str, origin: dict[str, Any]) -> None:
        """Handle the text of a command or mention: ``ack`` answers at once, ``say``
        later (both only to the person). A run it starts is ``run_id``, reporting to the
        Slack ``origin`` (channel, user, thread)."""
        try:
            command = commands.parse(text)
            self._check(command)
        except (UsageError, NotFound, PlaybookError) as exc:
            ack(f"{exc}\n\n{commands.USAGE}")
            return
        if isinstance(command, Help):
            ack(commands.USAGE)
        elif isinstance(command, Request):
            ack(NO_LLM)
        elif isinstance(command, Status):
            ack(self.status_text(command.run_id))
        else:
            ack(f"Starting *{command.playbook}* (run `{run_id}`): its plan follows here.")
            self._submit(command, run_id, origin, say)

    def _check(self, command: commands.Command) -> None:
        if isinstance(command, RunPlaybook):
            plan = self.rt.catalog.get(command.playbook)
            playbooks.resolve_inputs(plan, command.inputs)

    def _submit(self, command: RunPlaybook, run_id: str, origin: dict[str, Any], say: Say) -> None:
        try:
            self.rt.engine.submit(
                self.rt.catalog.get(command.playbook),
                inputs=command.inputs,
                source="slack",
                requester=origin["user"],
                origin={"slack": origin},
                run_id=run_id,
                approve_plan=True,
                reply_to=TARGET,
            )
        except FirstmateError as exc:
            say(f"Could not start *{command.playbook}*: {exc}")
        except Exception:
            log.exception("starting %s from Slack failed", command.playbook)
            say(f"Could not start *{command.playbook}*: an internal error (it is logged).")

    def status_text(self, run_id: str | None) -> str:
        """One run's state, or the newest runs, as mrkdwn."""
        if run_id:
            try:
                report = run_report(self.rt.store, run_id)
            except NotFound:
                return f"No run `{run_id}`."
            done = sum(s.status in ("succeeded", "skipped") for s in report.steps)
            what = report.playbook or "request"
            return f"Run `{run_id}` ({what}): *{report.status}*, {done}/{len(report.steps)} steps"
        runs = list_runs(self.rt.store, limit=10)
        if not runs:
            return "No runs yet."
        lines = [f"• `{r.run_id}` {r.playbook or 'request'}: *{r.status}*" for r in runs]
        return "Newest runs:\n" + "\n".join(lines)

    # -- a run's thread --------------------------------------------------------------

    def run_of_thread(self, channel: str, thread_ts: str) -> str | None:
        return deliveries.run_in_thread(self.rt.store, TARGET, f"{channel}:{thread_ts}")

    def in_thread(
        self, run_id: str, command: commands.ThreadCommand, user: str, reply: Say, deny: Say
    ) -> None:
        """``status``, ``cancel`` or ``retry <step>`` in the run's thread."""
        if isinstance(command, Status):
            reply(self.status_text(run_id))
            return
        decision = "cancel" if isinstance(command, Cancel) else "retry"
        why = self.refusal(user, decision, run_id)
        if why:
            deny(f"Not allowed: {why}.")
            return
        try:
            if isinstance(command, Retry):
                self._retry(run_id, command.step, user)
                reply(f"<@{user}> asked to retry `{command.step}`.")
            else:
                self.rt.engine.cancel(run_id, by=user)
                reply(f"<@{user}> cancelled the run.")
        except FirstmateError as exc:
            deny(str(exc))

    def _retry(self, run_id: str, step: str, user: str) -> None:
        waiting = [
            cp
            for cp in open_checkpoints(self.rt.store, run_id)
            if cp.kind == "failure" and cp.step == step
        ]
        if not waiting:
            raise NotFound(f"step `{step}` has no failure waiting for a decision")
        self.rt.engine.decide(waiting[0].id, "retry", by=user)

    # -- buttons and the modal -------------------------------------------------------

    def refusal(self, user: str, decision: str, run_id: str) -> str | None:
        """Why ``user`` may not decide on ``run_id``, or None."""
        plan, requester = run_plan(self.rt.store, run_id)
        try:
            approvers = self.approvers.expand(plan.approvers) if plan.approvers else None
        except SlackUnavailable as exc:
            log.warning("approvers of run %s: %s", run_id, exc)
            return "the approvers could not be looked up just now: try again in a moment"
        return refusal(
            user=user,
            decision=decision,
            requester=requester,
            approvers=approvers,
            four_eyes=plan.four_eyes,
        )

    def click(self, action_id: str, user: str, trigger_id: str | None, deny: Say) -> None:
        """A button: a decision, or Modify (opens the modal, within the trigger's 3 s)."""
        parsed = parse_action_id(action_id)
        if parsed is None:
            return
        decision, cp_id = parsed
        try:
            cp = checkpoint(self.rt.store, cp_id)
        except NotFound:
            deny("That checkpoint no longer exists.")
            return
        why = self.refusal(user, decision, cp.run_id)
        if why:
            deny(f"Not allowed: {why}. Nothing was changed.")
            return
        if decision == "modify":
            plan, _ = run_plan(self.rt.store, cp.run_id)
            self.client.views_open(trigger_id=trigger_id, view=modify_view(plan, cp_id))
            return
        self.decide(cp_id, decision, user, None, deny)

    def decide(
        self,
        cp_id: str,
        decision: str,
        user: str,
        modifications: dict[str, dict[str, Any]] | None,
        deny: Say,
    ) -> bool:
        try:
            self.rt.engine.decide(cp_id, decision, by=user, modifications=modifications)
        except FirstmateError as exc:
            deny(str(exc))
            return False
        return True
