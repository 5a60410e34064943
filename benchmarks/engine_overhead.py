"""Firstmate's orchestration overhead against bare RQ, measured in one run.

A playbook of 20 chained ``echo`` steps through Firstmate (engine, SQLite, events,
deterministic jobs) against 20 chained no-op functions as bare RQ jobs
(``depends_on``), both worked by the same in-process ``SimpleWorker`` on the same
Redis. Prints the medians and their ratio (target: Firstmate adds at most 30%). Then
20 concurrent runs of the playbook on 2 worker processes: all must complete, none lost.

    uv run python benchmarks/engine_overhead.py [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from orchestrator.plan import PlanSpec
from orchestrator.queries import run_report
from tests.services import Workers, redis_server
from workers.queue import STEPS as STEPS_QUEUE
from workers.queue import queue
from workers.runtime import Runtime

STEPS = 20


def playbook() -> str:
    lines = ["name: echo-chain", "steps:"]
    for i in range(STEPS):
        lines.append(f"  - id: s{i}")
        lines.append("    agent: echo")
        lines.append(f"    with: {{n: {i}}}")
        if i:
            lines.append(f"    depends_on: [s{i - 1}]")
    return "\n".join(lines) + "\n"


def bare_rq(connection: Redis) -> float:
    queue = Queue("bare", connection=connection, serializer=JSONSerializer)
    started = time.perf_counter()
    previous = None
    for i in range(STEPS):
        previous = queue.enqueue("benchmarks.noop.noop", i, depends_on=previous, result_ttl=60)
    SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(
        burst=True, logging_level="ERROR"
    )
    elapsed = time.perf_counter() - started
    assert previous is not None
    assert previous.get_status(refresh=True) == "finished"
    return elapsed


def firstmate(rt: Runtime, plan: PlanSpec) -> float:
    started = time.perf_counter()
    run_id = rt.engine.submit(plan, approve_plan=False)
    worker = SimpleWorker(
        [queue(STEPS_QUEUE, rt.redis)], connection=rt.redis, serializer=JSONSerializer
    )
    worker.work(burst=True, logging_level="ERROR")
    elapsed = time.perf_counter() - started
    report = run_report(rt.store, run_id)
    assert report.status == "succeeded", report
    return elapsed


def concurrent(
    env: dict[str, str], logs: Path, plan: PlanSpec, rt: Runtime, n: int = 20
) -> dict[str, object]:
    workers = Workers(env, logs)
    workers.start(2)
    time.sleep(3)  # let them boot: this measures the runs, not Python's imports
    started = time.perf_counter()
    ids = [rt.engine.submit(plan, approve_plan=False) for _ in range(n)]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        reports = [run_report(rt.store, i) for i in ids]
        if all(r.status in ("succeeded", "failed", "aborted") for r in reports):
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    workers.stop()
    succeeded = sum(r.status == "succeeded" for r in reports)
    steps_done = sum(s.status == "succeeded" and s.attempts == 1 for r in reports for s in r.steps)
    return {
        "runs": n,
        "succeeded": succeeded,
        "steps_succeeded_once": steps_done,
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fm-bench-") as tmp, redis_server() as url:
        root = Path(tmp)
        (root / "playbooks").mkdir()
        (root / "playbooks" / "echo-chain.yaml").write_text(playbook())
        env = {
            "FIRSTMATE_DATA_DIR": str(root / "data"),
            "REDIS_URL": url,
            "DATABASE_URL": f"sqlite:///{root / 'data' / 'firstmate.db'}",
            "FIRSTMATE_PLAYBOOKS": str(root / "playbooks"),
            "FIRSTMATE_SANDBOX_POOL_SIZE": "0",
        }
        os.environ.update(env)
        from workers import runtime

        rt = runtime.current()
        plan = rt.catalog.get("echo-chain")
        firstmate(rt, plan), bare_rq(rt.redis)  # warm both paths once
        ours, bare = [], []
        for _ in range(args.repeat):
            bare.append(bare_rq(rt.redis))
            ours.append(firstmate(rt, plan))
        figures: dict[str, object] = {
            "steps": STEPS,
            "bare_rq_median_s": round(statistics.median(bare), 4),
            "firstmate_median_s": round(statistics.median(ours), 4),
            "ratio": round(statistics.median(ours) / statistics.median(bare), 2),
            "target_ratio": 1.3,
        }
        concurrent_figures = concurrent(env, root / "logs", plan, rt)
        figures["concurrent"] = concurrent_figures
    ratio = statistics.median(ours) / statistics.median(bare)
    figures["target_met"] = ratio <= 1.3
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{STEPS} chained steps, median of {args.repeat} (same in-process SimpleWorker)")
    print(f"  bare RQ (no-op jobs, depends_on)   {statistics.median(bare) * 1000:8.1f} ms")
    print(f"  Firstmate (echo steps, engine)     {statistics.median(ours) * 1000:8.1f} ms")
    verdict = "met" if ratio <= 1.3 else "NOT met"
    print(f"  ratio {figures['ratio']}x (target <= 1.3x: {verdict})")
    c = concurrent_figures
    print(
        f"20 concurrent runs on 2 workers: {c['succeeded']}/{c['runs']} succeeded, "
        f"{c['steps_succeeded_once']} steps succeeded once, {c['seconds']} s"
    )


if __name__ == "__main__":
    main()
