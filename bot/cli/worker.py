"""``firstmate worker`` and ``firstmate reconcile``."""

from __future__ import annotations

import json

import click

import sandbox
from bot.cli.common import build_runtime, ensure_redis, failures
from orchestrator.config import load_settings
from workers.queue import QUEUES


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option(
    "--queues", default=",".join(QUEUES), show_default=True, help="Comma-separated queues to work."
)
def worker_command(burst: bool, queues: str) -> None:
    """An RQ worker for the plan, steps and notify queues (with the reconciler)."""
    from workers.worker import work

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(names) - set(QUEUES)
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {sorted(unknown)}; use {QUEUES}")
    with failures():
        ensure_redis(load_settings())
        work(names, burst=burst)


@click.command("reconcile")
def reconcile_command() -> None:
    """One reconciler pass: requeue lost work, repair runs, reap orphan sandboxes."""
    with failures():
        rt = build_runtime()
        report = rt.engine.reconcile()
        reaped = sandbox.reap_orphans(sandbox.connect())
    click.echo(
        json.dumps(
            {
                "lost": report.lost,
                "requeued": report.requeued,
                "completed": report.completed,
                "reaped": reaped,
            }
        )
    )
