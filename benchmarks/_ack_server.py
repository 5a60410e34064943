"""The server ``slack_ack.py`` measures: ``firstmate serve``'s app, plus one empty route.

It wires the runtime from the environment exactly as ``firstmate serve`` does and adds
``POST /bench/empty`` (an empty 200 from a plain async FastAPI route), the baseline the
Slack acks are compared with, on the same server and event loop.

    python -m benchmarks._ack_server --port 8000
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Response

from bot.cli.common import build_runtime
from bot.cli.serve import tune_gc, web_app


def bench_app() -> FastAPI:
    """``firstmate serve``'s app with ``POST /bench/empty`` added."""
    app = web_app(build_runtime())

    async def empty() -> Response:
        return Response(status_code=200)

    app.add_api_route("/bench/empty", empty, methods=["POST"])
    return app


def tuned_app() -> FastAPI:
    """The app of one of several server processes."""
    app = bench_app()
    tune_gc()
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    if args.processes > 1:  # as `firstmate serve --processes N`
        uvicorn.run(
            "benchmarks._ack_server:tuned_app",
            factory=True,
            workers=args.processes,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
        )
        return
    app = bench_app()
    tune_gc()  # as `firstmate serve` does once its app is built
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
