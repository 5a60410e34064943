"""``firstmate playbook …``: check playbook files before anything runs them."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.errors import PlaybookError
from orchestrator.playbooks import load_playbook


@click.group("playbook")
def playbook_group() -> None:
    """Playbooks: validate them."""


@playbook_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Check each FILE; print every issue (file, step, field) and exit 1 if any."""
    failed = False
    for path in files:
        try:
            plan = load_playbook(path)
        except PlaybookError as exc:
            failed = True
            for issue in exc.issues:
                click.echo(str(issue), err=True)
            continue
        click.echo(f"ok: {path} ({plan.name}, {len(plan.steps)} steps)")
    ctx.exit(1 if failed else 0)
