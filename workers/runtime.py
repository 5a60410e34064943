"""Wiring: one place per process builds the real adapters and hands them out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

from orchestrator.allowlist import Allowlist
from orchestrator.artifacts import ArtifactStore
from orchestrator.catalog import Catalog
from orchestrator.config import Settings, load_settings
from orchestrator.engine import Engine
from orchestrator.providers.client import LLM, breaker_for
from orchestrator.providers.errors import LLMNotConfigured
from orchestrator.providers.registry import build_provider, parse_llm
from orchestrator.screening import Screener
from orchestrator.store import Store
from sandbox import SandboxPool
from workers.killer import DockerKiller
from workers.llm import RedisCache, limiter_from
from workers.notify.callback import TARGET as CALLBACK
from workers.notify.callback import CallbackChannel
from workers.notify.github import TARGET as GITHUB
from workers.notify.github import GitHubChannel, GitHubClient
from workers.notify.notifier import SUBSCRIBED, Channel, Notifier
from workers.notify.slack import TARGET as SLACK
from workers.notify.slack import SlackChannel, slack_client
from workers.notify.subscriptions import Subscriptions, parse_subscriptions
from workers.queue import RQDispatcher, connect


@dataclass
class Runtime:
    """The store, queue, engine and (on first use) the sandbox pool of this process."""

    settings: Settings
    store: Store
    redis: redis.Redis
    engine: Engine
    catalog: Catalog
    _pool: SandboxPool | None = None
    _notifier: Notifier | None = None
    _llms: dict[str, LLM] = field(default_factory=dict)
    _screener: Screener | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pool(self) -> SandboxPool:
        """The warm sandbox pool, started the first time a step needs a sandbox."""
        with self._lock:
            if self._pool is None:
                self._pool = SandboxPool(
                    self.settings.sandbox_image,
                    size=self.settings.sandbox_pool_size,
                    runtime=self.settings.sandbox_runtime,
                ).start()
            return self._pool

    def notifier(self) -> Notifier:
        """Delivers runs' progress to the places configured here (Slack with a token)."""
        with self._lock:
            if self._notifier is None:
                s = self.settings
                secret = s.webhook_secret.get_secret_value() if s.webhook_secret else None
                channels: dict[str, Channel] = {CALLBACK: CallbackChannel(self.store, secret)}
                if s.slack_bot_token is not None:
                    client = slack_client(s.slack_bot_token.get_secret_value(), s.slack_base_url)
                    channels[SLACK] = SlackChannel(client, self.store, self.engine.artifacts)
                if s.github_token is not None:
                    github = GitHubClient(s.github_token.get_secret_value(), s.github_api_url)
                    channels[GITHUB] = GitHubChannel(github, self.store)
                subscriptions = (
                    Subscriptions(self.store, parse_subscriptions(s.webhooks), secret)
                    if s.webhooks
                    else None
                )
                dispatcher = RQDispatcher(self.redis)
                self._notifier = Notifier(
                    self.store, self.redis, dispatcher, channels, subscriptions=subscriptions
                )
            return self._notifier

    def llm(self, spec: str | None = None) -> LLM:
        """The LLM named by ``spec`` (``provider:model``; FIRSTMATE_LLM by default), with
        the shared rate limiter and response cache on Redis. LLMNotConfigured when
        there is none or its credentials are missing."""
        spec = spec or self.settings.llm
        if not spec:
            raise LLMNotConfigured(
                "no LLM is configured: set FIRSTMATE_LLM=provider:model (e.g."
                " openai:gpt-4o-mini) and the provider's key"
            )
        with self._lock:
            if spec not in self._llms:
                provider_name, model = parse_llm(spec)
                provider = build_provider(self.settings, provider_name)
                self._llms[spec] = LLM.from_settings(
                    self.settings,
                    provider,
                    model,
                    limiter=limiter_from(self.redis, self.settings.llm_rate_limit),
                    cache=RedisCache(self.redis) if self.settings.llm_cache_ttl_s else None,
                    breaker=breaker_for(provider_name),
                )
            return self._llms[spec]

    def screener(self) -> Screener:
        """Screens what is sent to a model; this process's configured secrets never leave."""
        with self._lock:
            if self._screener is None:
                self._screener = Screener(self.settings.secret_values())
            return self._screener

    def allowlist(self) -> Allowlist:
        """The commands an LLM-planned shell step (or a coder's ``run`` tool) may run
        without its own approval: ours plus FIRSTMATE_COMMAND_ALLOWLIST."""
        return Allowlist.from_setting(self.settings.command_allowlist)

    def close(self, *, keep_redis: bool = False) -> None:
        """Stop the pool, close the LLM clients' connections, the database and (unless
        ``keep_redis``: threads such as RQ's pubsub listener may still read from it as
        the process ends) Redis."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            llms, self._llms = list(self._llms.values()), {}
        for llm in llms:
            llm.close()
        self.store.dispose()
        if not keep_redis:
            self.redis.close()


def build(settings: Settings | None = None) -> Runtime:
    """Wire the real adapters from the settings (the environment by default)."""
    settings = settings or load_settings()
    parse_subscriptions(settings.webhooks)  # a mistake in FIRSTMATE_WEBHOOKS stops here
    key = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    artifacts = ArtifactStore(settings.runs_dir.resolve(), key)
    store = Store(settings.db_url)
    connection = connect(settings.redis_url)
    engine = Engine(
        store,
        RQDispatcher(connection),
        artifacts,
        killer=DockerKiller(),
        lease_s=settings.lease_s,
        default_reply_to=SUBSCRIBED if settings.webhooks else None,
        default_budget_usd=settings.llm_budget_usd or None,
    )
    return Runtime(settings, store, connection, engine, Catalog(settings.playbooks))


_current: Runtime | None = None
_current_lock = threading.Lock()


def current() -> Runtime:
    """This process's runtime, built on first use (jobs take ids, not objects)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = build()
        return _current


@contextmanager
def using(rt: Runtime) -> Iterator[Runtime]:
    """Make ``rt`` this process's runtime inside the block (jobs worked in-process)."""
    global _current
    with _current_lock:
        previous, _current = _current, rt
    try:
        yield rt
    finally:
        with _current_lock:
            _current = previous
