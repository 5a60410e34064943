"""The bolt app: Slack's requests routed to ``SlackFront``.

Listeners are plain functions with bolt's injected arguments; each acknowledges first.
The app is the same for HTTP (mounted at ``POST /slack/events`` by ``firstmate serve``)
and Socket Mode (``firstmate bot --socket``).
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.slack import commands
from bot.slack.approvers import Approvers
from bot.slack.front import SlackFront, run_id_for
from bot.slack.modal import CALLBACK_ID, changes
from bot.webhooks.ratelimit import RateLimiter
from orchestrator.config import Settings
from orchestrator.errors import ConfigError, FirstmateError
from orchestrator.queries import checkpoint, run_plan
from workers.notify.blocks import ACTION_PATTERN
from workers.runtime import Runtime

log = logging.getLogger(__name__)
LISTENER_THREADS = 32  # bolt's default is 5: a burst of commands would queue for them
ANYTHING = re.compile(".*")


def slack_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token
    if token is None:
        raise ConfigError("Slack needs SLACK_BOT_TOKEN (the app's xoxb- bot token)")
    return WebClient(token=token.get_secret_value(), base_url=settings.slack_base_url, timeout=10)


def build_app(settings: Settings, rt: Runtime, *, signed: bool = True) -> App:
    """The bolt app for ``settings``. ``signed``: HTTP mode, where every request must
    carry Slack's signature (Socket Mode needs no signing secret)."""
    client = slack_client(settings)
    secret = settings.slack_signing_secret
    if signed and secret is None:
        raise ConfigError("Slack over HTTP needs SLACK_SIGNING_SECRET (Basic Information page)")
    app = App(
        client=client,
        signing_secret=secret.get_secret_value() if secret else None,
        request_verification_enabled=signed,
        # No auth.test at start: the server must come up (GitHub and n8n keep working)
        # while Slack is unreachable; a bad token shows on the first Slack call instead.
        token_verification_enabled=False,
        # Respond when the ack half returns (no 10 ms polling for ack()); the slow
        # halves are lazy listeners that run after the response.
        process_before_response=True,
        listener_executor=ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="slack"),
    )
    limiter = RateLimiter.parse(rt.redis, settings.rate_limit)
    register(app, SlackFront(rt, client, Approvers(client), limiter))
    return app


def register(app: App, front: SlackFront) -> None:
    """Route Slack's requests to ``front``. Each listener is split in two: the ``ack``
    half answers Slack (parsing and lookups only), the ``lazy`` half runs after the
    response has gone (bolt's lazy listeners, with ``process_before_response``)."""
    app.command(ANYTHING)(ack=_command_ack(front), lazy=[_command_work(front)])
    app.event("app_mention")(ack=_ack_only, lazy=[_on_mention(front)])
    app.event("message")(ack=_ack_only, lazy=[_on_message(front)])
    app.action(ACTION_PATTERN)(ack=_ack_only, lazy=[_on_action(front)])
    # The modal's answer carries its validation errors: it decides before answering.
    app.view(CALLBACK_ID)(_on_modify(front))
    # Anything else (another app's button, a stale view) is acknowledged and ignored.
    app.action(ANYTHING)(_ack_only)
    app.view(ANYTHING)(_ack_only)


def _ack_only(ack: Ack) -> None:
    ack()


Payload = dict[str, Any]


def _command_origin(command: Payload) -> tuple[str, dict[str, Any]]:
    """A command's run id (from its trigger_id: a retried delivery has the same) and
    where its run reports."""
    channel, user = command.get("channel_id", ""), command.get("user_id", "")
    origin = {"channel": channel, "user": user, "team": command.get("team_id", "")}
    return run_id_for("command", origin["team"], command.get("trigger_id", "")), origin


def _command_ack(front: SlackFront) -> Any:
    def on_command(ack: Ack, command: Payload) -> None:
        run_id, origin = _command_origin(command)
        text, _ = front.answer(command.get("text", ""), run_id, origin["channel"], origin["user"])
        ack(text=text)

    return on_command


def _command_work(front: SlackFront) -> Any:
    def start(command: Payload, client: WebClient) -> None:
        run_id, origin = _command_origin(command)
        text = command.get("text", "")
        _, run = front.answer(text, run_id, origin["channel"], origin["user"], admit=False)
        if run is not None:
            say = _ephemeral(client, origin["channel"], origin["user"])
            front.launch(run, run_id, origin, say)

    return start


def _on_mention(front: SlackFront) -> Any:
    def on_mention(event: Payload, body: Payload, client: WebClient) -> None:
        if not front.first_delivery(body.get("team_id", ""), body.get("event_id")):
            return
        channel, user = event.get("channel", ""), event.get("user", "")
        thread_ts = event.get("thread_ts") or event.get("ts", "")
        say = _ephemeral(client, channel, user)
        run_in_thread = front.run_of_thread(channel, thread_ts) if event.get("thread_ts") else None
        threaded = commands.parse_thread(event.get("text", "")) if run_in_thread else None
        if run_in_thread and threaded:
            reply = _reply(client, channel, thread_ts)
            front.in_thread(run_in_thread, threaded, user, reply, say)
            return
        origin = {"channel": channel, "user": user, "team": body.get("team_id", "")}
        origin["thread_ts"] = thread_ts
        run_id = run_id_for("event", origin["team"], str(body.get("event_id") or thread_ts))
        text, run = front.answer(event.get("text", ""), run_id, channel, user)
        say(text)
        if run is not None:
            front.launch(run, run_id, origin, say)

    return on_mention


def _on_message(front: SlackFront) -> Any:
    def on_message(event: Payload, body: Payload, context: BoltContext, client: WebClient) -> None:
        thread_ts, text = event.get("thread_ts"), event.get("text") or ""
        if not thread_ts or event.get("subtype") or event.get("bot_id"):
            return
        if context.bot_user_id and f"<@{context.bot_user_id}" in text:
            return  # a mention: on_mention answers it
        channel, user = event.get("channel", ""), event.get("user", "")
        run_id = front.run_of_thread(channel, thread_ts)
        command = commands.parse_thread(text) if run_id else None
        if not (run_id and command):
            return  # chatter, or not a run's thread
        if front.first_delivery(body.get("team_id", ""), body.get("event_id")):
            reply = _reply(client, channel, thread_ts)
            front.in_thread(run_id, command, user, reply, _ephemeral(client, channel, user))

    return on_message


def _on_action(front: SlackFront) -> Any:
    def on_action(body: Payload, action: Payload, client: WebClient) -> None:
        user = (body.get("user") or {}).get("id", "")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id", ""
        )
        deny = _ephemeral(client, channel, user)
        front.click(action.get("action_id", ""), user, body.get("trigger_id"), deny)

    return on_action


def _on_modify(front: SlackFront) -> Any:
    def on_modify(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = (body.get("user") or {}).get("id", "")
        cp_id = view.get("private_metadata", "")
        try:
            run_id = checkpoint(front.rt.store, cp_id).run_id
            plan, _ = run_plan(front.rt.store, run_id)
        except FirstmateError as exc:
            ack(response_action="errors", errors=_first_field(view, str(exc)))
            return
        edits = changes(plan, (view.get("state") or {}).get("values") or {})
        problems: list[str] = []
        why = front.refusal(user, "modify", run_id)
        if why is None:
            front.decide(cp_id, "approve", user, edits or None, problems.append)
        else:
            problems.append(f"Not allowed: {why}.")
        if problems:
            ack(response_action="errors", errors=_first_field(view, problems[0]))
        else:
            ack()

    return on_modify


def _first_field(view: dict[str, Any], message: str) -> dict[str, str]:
    """Slack shows view errors under an input block: the first one carries it."""
    for block in view.get("blocks") or []:
        if block.get("type") == "input":
            return {str(block["block_id"]): message[:2000]}
    return {}


def _ephemeral(client: WebClient, channel: str, user: str) -> Any:
    def say(text: str) -> None:
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        except Exception as exc:  # the answer is lost, the state is not: log it
            log.warning("could not tell %s in %s: %s", user, channel, exc)

    return say


def _reply(client: WebClient, channel: str, thread_ts: str) -> Any:
    def reply(text: str) -> None:
        try:
            client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
        except Exception as exc:
            log.warning("could not reply in %s/%s: %s", channel, thread_ts, exc)

    return reply
