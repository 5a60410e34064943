"""Settings: the environment, read once (the only module that reads it).

Names and defaults follow ``../shared/CONTRACTS.md``; the ``FIRSTMATE_SANDBOX_RUNTIME``,
``FIRSTMATE_SANDBOX_POOL_SIZE``, ``FIRSTMATE_LEASE_S``, ``FIRSTMATE_RECONCILE_S`` and
``FIRSTMATE_DEBIAN_MIRROR`` knobs extend it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Firstmate's configuration."""

    model_config = SettingsConfigDict(env_prefix="FIRSTMATE_", extra="ignore")

    data_dir: Path = Path(".firstmate")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "FIRSTMATE_DATABASE_URL")
    )
    redis_url: str = Field(
        default="redis://localhost:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "FIRSTMATE_REDIS_URL"),
    )
    playbooks: Path = Path("playbooks")
    encryption_key: SecretStr | None = None
    sandbox_image: str = "firstmate-sandbox:latest"
    sandbox_runtime: str | None = Field(
        default=None, description="a Docker runtime for sandboxes, e.g. runsc (gVisor)"
    )
    sandbox_pool_size: int = Field(default=2, ge=0, le=64)
    lease_s: float = Field(default=30.0, gt=0, description="a running step's lease")
    reconcile_s: float = Field(default=15.0, gt=0, description="reconciler period in workers")
    debian_mirror: str = "http://deb.debian.org/debian"
    api_tokens: SecretStr | None = Field(default=None, description="comma-separated tokens")

    # Slack: the usual SLACK_* names (no FIRSTMATE_ prefix), per the contract.
    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN")
    )
    slack_api_url: str = "https://slack.com/api/"

    # GitHub (GITHUB_* without our prefix, per the contract).
    github_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_WEBHOOK_SECRET")
    )
    github_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GITHUB_TOKEN")
    )
    github_api_url: str = "https://api.github.com"
    github_allowed_users: str = Field(
        default="", description="comma-separated logins allowed to start runs; * for anyone"
    )
    github_events: str = Field(
        default="",
        description="event→playbook map, e.g. pull_request.opened=python-check",
    )

    # n8n and outgoing webhooks (extensions: FIRSTMATE_WEBHOOK_SECRET signs what we send).
    n8n_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    webhooks: str = Field(
        default="", description="outgoing subscriptions: [playbook=]url, comma-separated"
    )
    rate_limit: str = Field(
        default="60/60", description="runs a requester may start: N/seconds (0 disables)"
    )

    @field_validator(
        "encryption_key",
        "api_tokens",
        "github_webhook_secret",
        "github_token",
        "n8n_token",
        "webhook_secret",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `VAR=` (as compose writes an unset `${VAR:-}`) means "not configured".
        return None if value == "" else value

    @property
    def db_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite file under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'firstmate.db').resolve()}"

    @property
    def slack_base_url(self) -> str:
        """The Slack Web API base URL with the trailing slash slack_sdk needs (without
        it, the URL's path is dropped)."""
        url = self.slack_api_url
        return url if url.endswith("/") else url + "/"

    def secret_values(self) -> list[str]:
        """Every configured secret's value (for scrubbing logs)."""
        values = [getattr(self, name) for name in type(self).model_fields]
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]

    @property
    def github_logins(self) -> frozenset[str]:
        """Logins allowed to start runs by comment (``*``: anyone); empty: nobody."""
        return frozenset(x.strip() for x in self.github_allowed_users.split(",") if x.strip())

    @property
    def tokens(self) -> frozenset[str]:
        """The REST API's bearer tokens."""
        raw = self.api_tokens.get_secret_value() if self.api_tokens else ""
        return frozenset(x.strip() for x in raw.split(",") if x.strip())

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"


def load_settings() -> Settings:
    """Read the settings from the environment."""
    return Settings()
