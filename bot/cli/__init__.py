"""The ``firstmate`` command line."""

from __future__ import annotations

import click

from bot.cli.sandbox import sandbox_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Firstmate: chat-ops for AI agents."""


main.add_command(sandbox_group)

__all__ = ["main"]
