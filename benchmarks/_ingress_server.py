"""The server ``webhook_ingress.py`` measures: ``_ack_server``'s app (``firstmate serve``'s
app plus ``POST /bench/empty``), optionally profiled.

With ``FIRSTMATE_BENCH_PROFILE=<folder>`` it also times the sections of a delivery
(wall time per call, in whichever thread runs them), each SQL statement by its verb
(``BEGIN IMMEDIATE`` is SQLite's queue for the write lock), garbage collections (they
stop every thread), profiles the event loop's thread
and each handler thread with cProfile, and writes, when it is stopped (SIGTERM):
``sections.json``, ``loop.prof`` and ``handler.prof`` (``python -m pstats``). cProfile
slows the handler down: read the sections' shares, not their absolute figures.

    FIRSTMATE_BENCH_PROFILE=/tmp/prof python -m benchmarks._ingress_server --port 8000
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import importlib
import json
import os
import pstats
import signal
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import Engine, event

from benchmarks._ack_server import bench_app
from bot.cli.serve import tune_gc

PROFILE = "FIRSTMATE_BENCH_PROFILE"
# (module, attribute path): what a delivery spends its time in; missing ones are skipped
# (the code may move), so the report says which were found.
SECTIONS = (
    ("bot.webhooks.github", "verify"),
    ("bot.webhooks.github", "decode"),
    ("bot.webhooks.github", "GitHubHooks.handle"),
    ("bot.webhooks.github", "GitHubHooks.classify"),
    ("orchestrator.deliveries", "first_time"),
    ("bot.webhooks.intake", "start"),
    ("bot.webhooks.intake", "_exists"),
    ("bot.webhooks.intake", "_first_acceptance"),
    ("bot.webhooks.intake", "_queue"),
    ("bot.webhooks.intake", "enqueue_start"),
    ("orchestrator.catalog", "Catalog.named"),
    ("orchestrator.catalog", "Catalog.get"),
    ("orchestrator.playbooks", "resolve_inputs"),
    ("orchestrator.engine", "Engine.submit"),
    ("orchestrator.engine", "Engine._record"),
    ("orchestrator.engine", "Engine._act"),
    ("orchestrator.engine", "Engine._write_plan"),
    ("orchestrator.workspace", "prepare"),
    ("workers.queue", "RQDispatcher.enqueue_step"),
    ("workers.queue", "RQDispatcher.notify"),
    ("bot.webhooks.github", "_Replies.respond"),
)

SQL_VERBS = ("BEGIN IMMEDIATE", "SELECT", "INSERT", "UPDATE", "DELETE", "other")


class Sections:
    """Wall time per call of each patched function, from every thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.found: list[str] = []
        self.lock = threading.Lock()
        self.gc_began = 0.0
        self.local = threading.local()

    def install(self) -> None:
        for module_name, path in SECTIONS:
            *parents, name = path.split(".")
            try:
                owner: Any = importlib.import_module(module_name)
                for parent in parents:
                    owner = getattr(owner, parent)
                original = getattr(owner, name)
            except (ImportError, AttributeError):
                continue
            setattr(owner, name, self._timed(f"{module_name}.{path}", original))
            self.found.append(f"{module_name}.{path}")
        self.found += ["gc.collect (gen 0-1)", "gc.collect (gen 2)"]
        gc.callbacks.append(self._gc)
        self.found += [f"sql {verb}" for verb in SQL_VERBS]
        event.listen(Engine, "before_cursor_execute", self._sql_began)
        event.listen(Engine, "after_cursor_execute", self._sql_ended)

    def _sql_began(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.local.sql_began = time.perf_counter()

    def _sql_ended(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        """Each statement by its verb: ``BEGIN IMMEDIATE`` is where SQLite's writers queue."""
        spent = time.perf_counter() - self.local.sql_began
        verb = next((v for v in SQL_VERBS if statement.lstrip().upper().startswith(v)), "other")
        with self.lock:
            self.seconds[f"sql {verb}"].append(spent)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """Collections stop every thread: time them too."""
        if phase == "start":
            self.gc_began = time.perf_counter()
            return
        label = "gc.collect (gen 2)" if info["generation"] == 2 else "gc.collect (gen 0-1)"
        self.seconds[label].append(time.perf_counter() - self.gc_began)  # under the GIL

    def _timed(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - began
                with self.lock:
                    self.seconds[label].append(spent)

        return timed

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for label in self.found:
            ms = [s * 1000 for s in self.seconds.get(label, [])]
            if not ms:
                out[label] = {"calls": 0}
                continue
            p99 = statistics.quantiles(ms, n=100)[98] if len(ms) > 1 else ms[0]
            out[label] = {
                "calls": len(ms),
                "mean_ms": round(statistics.fmean(ms), 3),
                "p50_ms": round(statistics.median(ms), 3),
                "p99_ms": round(p99, 3),
                "total_ms": round(sum(ms), 1),
            }
        return out


class HandlerProfiles:
    """One cProfile per handler thread, enabled only while ``GitHubHooks.handle`` runs
    (cProfile in Python 3.11 sees the thread that enabled it only)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.all: list[cProfile.Profile] = []
        self.lock = threading.Lock()

    def install(self) -> None:
        from bot.webhooks.github import GitHubHooks

        original = GitHubHooks.handle

        @functools.wraps(original)
        def handle(hooks: GitHubHooks, *args: Any, **kwargs: Any) -> Any:
            profile = self._mine()
            profile.enable()
            try:
                return original(hooks, *args, **kwargs)
            finally:
                profile.disable()

        GitHubHooks.handle = handle  # type: ignore[method-assign,assignment]

    def _mine(self) -> cProfile.Profile:
        profile: cProfile.Profile | None = getattr(self.local, "profile", None)
        if profile is None:
            profile = self.local.profile = cProfile.Profile()
            with self.lock:
                self.all.append(profile)
        return profile

    def dump(self, path: Path) -> None:
        with self.lock:
            profiles = list(self.all)
        if profiles:
            stats = pstats.Stats(profiles[0])
            for p in profiles[1:]:
                stats.add(p)
            stats.dump_stats(str(path))


@contextmanager
def profiled(folder: Path) -> Iterator[None]:
    """Sections and cProfile on while the server runs; written out when it stops."""
    folder.mkdir(parents=True, exist_ok=True)
    handlers, sections = HandlerProfiles(), Sections()
    handlers.install()  # inside the sections' timing of handle, outside the others
    sections.install()
    loop = cProfile.Profile()
    loop.enable()
    try:
        yield
    finally:
        loop.disable()
        loop.dump_stats(str(folder / "loop.prof"))
        handlers.dump(folder / "handler.prof")
        (folder / "sections.json").write_text(json.dumps(sections.summary(), indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = bench_app()
    tune_gc()  # as `firstmate serve` does once its app is built
    folder = os.environ.get(PROFILE)
    if not folder:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
        return
    # uvicorn re-raises the SIGTERM it stopped on once it is done: let that unwind, so
    # that the profiles are written.
    signal.signal(signal.SIGTERM, _exit)
    with profiled(Path(folder)):
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def _exit(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main()
