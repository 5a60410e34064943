"""Settings: the environment, read once (the only module that reads it)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Firstmate's configuration; see ``../shared/CONTRACTS.md`` for each variable."""

    model_config = SettingsConfigDict(env_prefix="FIRSTMATE_", extra="ignore")

    data_dir: Path = Path(".firstmate")
    sandbox_image: str = "firstmate-sandbox:latest"
    sandbox_runtime: str | None = Field(
        default=None, description="a Docker runtime for sandboxes, e.g. runsc (gVisor)"
    )
    debian_mirror: str = "http://deb.debian.org/debian"


def load_settings() -> Settings:
    """Read the settings from the environment."""
    return Settings()
