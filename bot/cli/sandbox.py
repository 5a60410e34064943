"""``firstmate sandbox …``: build the image, run one command, benchmark, reap."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

import sandbox
from bot.cli.common import failures
from orchestrator.config import Settings, load_settings
from sandbox import bench


@click.group("sandbox")
def sandbox_group() -> None:
    """Hardened Docker sandboxes: build, exec, bench, reap."""


@sandbox_group.command("build")
@click.option("--base", help="Base image to build on (default: python:3.12-slim, else offline).")
@click.option("--offline", is_flag=True, help="Skip the registry: debootstrap the base.")
def build(base: str | None, offline: bool) -> None:
    """Build FIRSTMATE_SANDBOX_IMAGE."""
    settings = load_settings()
    with failures():
        image_id = sandbox.build_image(
            sandbox.connect(),
            settings.sandbox_image,
            base=base,
            offline=offline,
            mirror=settings.debian_mirror,
            say=lambda line: click.echo(line, err=True),
        )
    click.echo(image_id)


@sandbox_group.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Wall-clock limit in seconds.",
)
@click.option(
    "--memory",
    type=click.IntRange(min=96),
    default=1024,
    show_default=True,
    help="Memory limit in MB (no swap).",
)
@click.option("--network", is_flag=True, help="Give the sandbox network access.")
@click.option(
    "--workspace",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory copied in as /workspace, and back out afterwards.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(
    as_json: bool,
    timeout: float,
    memory: int,
    network: bool,
    workspace: Path | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND in a fresh sandbox; exit with its exit code."""
    settings = load_settings()
    with failures():
        limits = sandbox.Limits.for_memory(memory, network=network, timeout_s=timeout)
    with failures(), _pool(settings, size=0) as pool, pool.acquire(limits, workspace) as box:
        result = box.exec(list(command))
    if as_json:
        click.echo(json.dumps(asdict(result)))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.timed_out:
            click.echo(f"firstmate: timed out after {timeout:g}s", err=True)
        if result.oom_killed:
            click.echo(f"firstmate: killed: out of memory ({memory} MB)", err=True)
    sys.exit(result.exit_code)


@sandbox_group.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--samples", type=click.IntRange(min=3), default=20, show_default=True)
def bench_command(as_json: bool, samples: int) -> None:
    """Cold start against warm pool latency, side by side."""
    settings = load_settings()
    with failures():
        report = bench.measure(
            settings.sandbox_image, samples=samples, runtime=settings.sandbox_runtime
        )
    figures = report.as_dict()
    if as_json:
        click.echo(json.dumps(figures))
        return
    click.echo(f"{'':14}{'p50 ms':>10}{'p95 ms':>10}")
    click.echo(f"{'cold start':14}{figures['cold_p50_ms']:>10}{figures['cold_p95_ms']:>10}")
    click.echo(f"{'warm pool':14}{figures['warm_p50_ms']:>10}{figures['warm_p95_ms']:>10}")
    click.echo(f"warm is {figures['ratio_p50']}x faster at p50 ({samples} samples each)")


@sandbox_group.command("reap")
def reap() -> None:
    """Remove sandbox containers whose owner process is gone."""
    with failures():
        removed = sandbox.reap_orphans(sandbox.connect())
    for name in removed:
        click.echo(name)
    click.echo(f"removed {len(removed)} orphaned sandbox(es)", err=True)


def _pool(settings: Settings, *, size: int) -> sandbox.SandboxPool:
    return sandbox.SandboxPool(settings.sandbox_image, size=size, runtime=settings.sandbox_runtime)
