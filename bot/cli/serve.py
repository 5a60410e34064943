"""``firstmate serve`` (the HTTP app) and ``firstmate bot --socket`` (Slack over Socket
Mode): the entry points that wire the real adapters into the web edge."""

from __future__ import annotations

import gc
import threading
from typing import TYPE_CHECKING, Any

import click

from bot.cli.common import build_runtime, failures
from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from workers import logs
from workers.runtime import Runtime

if TYPE_CHECKING:
    from fastapi import FastAPI
    from slack_bolt import App


GC_YOUNG_THRESHOLD = 20_000  # CPython's default is 700


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (one per core takes the most load).",
)
def serve_command(host: str, port: int, processes: int) -> None:
    """The HTTP app: Slack events, webhooks, the API, health probes."""
    import uvicorn

    with failures():  # a configuration mistake stops here, in one clear line
        rt = build_runtime()
        app = web_app(rt)
    # log_config=None: uvicorn's records go through our JSON, scrubbed handler too.
    options: dict[str, Any] = {"host": host, "port": port, "log_config": None}
    if processes == 1:
        logs.configure(rt.settings.secret_values())
        tune_gc()
        uvicorn.run(app, log_level="info", **options)
    else:
        rt.close()
        uvicorn.run(f"{__name__}:app_factory", factory=True, workers=processes, **options)


def app_factory() -> FastAPI:
    """The app of one of several server processes (``serve --processes N``)."""
    rt = build_runtime()
    logs.configure(rt.settings.secret_values())
    app = web_app(rt)
    tune_gc()
    return app


def tune_gc() -> None:
    """Once the app is built: its long-lived objects leave the collector's view, and
    young collections run less often (a request allocates many short-lived objects;
    full collections were the ack benchmark's tail latency)."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def web_app(rt: Runtime) -> FastAPI:
    """The FastAPI app wired to ``rt`` (Slack when its variables are set)."""
    from bot.webhooks import create_app
    from bot.webhooks.api import api_router
    from bot.webhooks.github import github_router
    from bot.webhooks.metrics import metrics_router
    from bot.webhooks.n8n import n8n_router
    from bot.webhooks.ratelimit import RateLimiter

    slack = _slack_app(rt.settings, rt) if _slack_wanted(rt.settings) else None
    limiter = RateLimiter.parse(rt.redis, rt.settings.rate_limit)
    return create_app(
        slack=slack,
        checks={"database": rt.store.ping, "redis": lambda: _ping(rt)},
        routers=[
            metrics_router(rt.store),
            n8n_router(rt, limiter),
            github_router(rt, limiter),
            api_router(rt, limiter),
        ],
    )


@click.command("bot")
@click.option("--socket", is_flag=True, required=True, help="Connect over Socket Mode.")
def bot_command(socket: bool) -> None:
    """The Slack app over Socket Mode (no public URL needed)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError, SlackClientError

    with failures():
        rt = build_runtime()
        token = rt.settings.slack_app_token
        if token is None:
            raise ConfigError("Socket Mode needs SLACK_APP_TOKEN (an xapp- app-level token)")
        app = _slack_app(rt.settings, rt, signed=False)
        client = WebClient(token=token.get_secret_value(), base_url=rt.settings.slack_base_url)
        handler = SocketModeHandler(app, token.get_secret_value(), web_client=client)
        try:
            handler.connect()  # type: ignore[no-untyped-call]
        except SlackApiError as exc:
            error = exc.response.get("error")
            raise ConfigError(f"Slack refused the Socket Mode connection: {error}") from exc
        except (SlackClientError, OSError) as exc:
            raise ConfigError(f"cannot reach Slack for Socket Mode: {exc}") from exc
    threading.Event().wait()  # the handler's threads serve until the process is stopped


def _ping(rt: Runtime) -> None:
    rt.redis.ping()


def _slack_wanted(settings: Settings) -> bool:
    return settings.slack_bot_token is not None or settings.slack_signing_secret is not None


def _slack_app(settings: Settings, rt: Runtime, *, signed: bool = True) -> App:
    from bot.slack.app import build_app

    return build_app(settings, rt, signed=signed)
