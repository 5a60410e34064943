"""The ``firstmate`` command line."""

from __future__ import annotations

import click

from bot.cli.playbook import playbook_group
from bot.cli.run import run_command, submit_command
from bot.cli.runs import (
    approve_command,
    cancel_command,
    decide_command,
    reject_command,
    runs_group,
)
from bot.cli.sandbox import sandbox_group
from bot.cli.serve import bot_command, serve_command
from bot.cli.worker import reconcile_command, worker_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Firstmate: chat-ops for AI agents."""


for command in (
    run_command,
    submit_command,
    runs_group,
    approve_command,
    reject_command,
    decide_command,
    cancel_command,
    playbook_group,
    worker_command,
    reconcile_command,
    sandbox_group,
    serve_command,
    bot_command,
):
    main.add_command(command)

__all__ = ["main"]
