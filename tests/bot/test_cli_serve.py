"""``firstmate serve`` and ``firstmate bot --socket``: configuration mistakes are one
clear line naming the variable (exit 2), never a trace."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from tests.slack_api import SlackAPI


@pytest.fixture
def base_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return {
        "FIRSTMATE_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'db.sqlite'}",
        "REDIS_URL": redis_url,
        "FIRSTMATE_PLAYBOOKS": str(tmp_path),
        "SLACK_BOT_TOKEN": "",
        "SLACK_SIGNING_SECRET": "",
        "SLACK_APP_TOKEN": "",
    }


def test_serve_with_half_a_slack_configuration_names_the_missing_variable(
    base_env: dict[str, str],
) -> None:
    result = CliRunner().invoke(main, ["serve"], env={**base_env, "SLACK_BOT_TOKEN": "xoxb-1"})
    assert result.exit_code == 2
    assert "SLACK_SIGNING_SECRET" in result.output
    result = CliRunner().invoke(main, ["serve"], env={**base_env, "SLACK_SIGNING_SECRET": "s"})
    assert result.exit_code == 2
    assert "SLACK_BOT_TOKEN" in result.output


def test_socket_mode_needs_the_app_token(base_env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main, ["bot", "--socket"], env={**base_env, "SLACK_BOT_TOKEN": "xoxb-1"}
    )
    assert result.exit_code == 2
    assert "SLACK_APP_TOKEN" in result.output


def test_socket_mode_refused_by_slack_is_a_clear_error(base_env: dict[str, str]) -> None:
    with SlackAPI() as api:
        env = {
            **base_env,
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_APP_TOKEN": "xapp-1",
            "FIRSTMATE_SLACK_API_URL": api.url,
        }
        result = CliRunner().invoke(main, ["bot", "--socket"], env=env)
        assert [c.method for c in api.calls()] == ["apps.connections.open"]
    assert result.exit_code == 2
    assert "Slack refused the Socket Mode connection: not_allowed_token_type" in result.output
