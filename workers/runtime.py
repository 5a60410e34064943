"""Wiring: one place per process builds the real adapters and hands them out."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis

from orchestrator.artifacts import ArtifactStore
from orchestrator.catalog import Catalog
from orchestrator.config import Settings, load_settings
from orchestrator.engine import Engine
from orchestrator.store import Store
from sandbox import SandboxPool
from workers.killer import DockerKiller
from workers.notify.notifier import Channel, Notifier
from workers.notify.slack import TARGET as SLACK
from workers.notify.slack import SlackChannel, slack_client
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
                channels: dict[str, Channel] = {}
                token = self.settings.slack_bot_token
                if token is not None:
                    client = slack_client(token.get_secret_value(), self.settings.slack_base_url)
                    channels[SLACK] = SlackChannel(client, self.store, self.engine.artifacts)
                dispatcher = RQDispatcher(self.redis)
                self._notifier = Notifier(self.store, self.redis, dispatcher, channels)
            return self._notifier

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        self.store.dispose()
        self.redis.close()


def build(settings: Settings | None = None) -> Runtime:
    """Wire the real adapters from the settings (the environment by default)."""
    settings = settings or load_settings()
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
