"""What every CLI command shares: the runtime, clear errors, inputs, a local Redis."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import click
import redis

import sandbox
from orchestrator.config import Settings, load_settings
from orchestrator.errors import FirstmateError
from workers import runtime

# Exit statuses: 1 the run did not succeed (or validation failed), 2 bad usage or
# input, 125 the sandbox machinery failed (like `docker run`).
BAD_INPUT = 2
SANDBOX_FAILED = 125


@contextmanager
def failures() -> Iterator[None]:
    """Turn our errors into one clear line on stderr and a non-zero exit, never a trace."""
    try:
        yield
    except FirstmateError as exc:
        click.echo(f"firstmate: {exc}", err=True)
        sys.exit(BAD_INPUT)
    except sandbox.SandboxError as exc:
        click.echo(f"firstmate: {exc}", err=True)
        sys.exit(SANDBOX_FAILED)


def parse_inputs(pairs: tuple[str, ...]) -> dict[str, str]:
    """``k=v`` pairs into a mapping; a pair without ``=`` is a usage error."""
    inputs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not k=v", param_hint="--input")
        inputs[key] = value
    return inputs


def ensure_redis(settings: Settings) -> None:
    """Start a local redis-server when REDIS_URL is this machine's and nothing answers."""
    url = urlparse(settings.redis_url)
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1).ping()
        return
    except redis.RedisError:
        pass
    server = shutil.which("redis-server")
    if url.hostname not in ("localhost", "127.0.0.1") or server is None:
        return  # the runtime reports the unreachable Redis clearly
    click.echo(f"firstmate: starting redis-server on port {url.port or 6379}", err=True)
    subprocess.run(
        [
            server,
            "--port",
            str(url.port or 6379),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=False,
        capture_output=True,
    )
    for _ in range(40):
        try:
            redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1).ping()
            return
        except redis.RedisError:
            time.sleep(0.1)


def build_runtime(settings: Settings | None = None) -> runtime.Runtime:
    settings = settings or load_settings()
    ensure_redis(settings)
    return runtime.build(settings)
