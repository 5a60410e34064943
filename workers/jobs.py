"""RQ job entry points: plain importable functions that take ids, safe to run twice."""

from __future__ import annotations

import logging
import threading

from orchestrator.engine import Engine
from orchestrator.outcome import StepOutcome, StepTicket
from orchestrator.recovery import attempt_label
from workers import runtime
from workers.agents import AGENTS

log = logging.getLogger(__name__)


def run_step(run_id: str, key: str, attempt: int) -> None:
    """Run one attempt of one step, if it is still ours to run."""
    rt = runtime.current()
    ticket = rt.engine.start_step(run_id, key, attempt)
    if ticket is None:
        return
    agent = AGENTS.get(ticket.agent)
    with _Heartbeat(rt.engine, ticket, rt.settings.lease_s / 3):
        if agent is None:
            outcome = StepOutcome.failed(f"no agent {ticket.agent!r} in this worker")
        else:
            try:
                outcome = agent.run(ticket, rt)
            except Exception as exc:  # an agent bug (or RQ's job timeout) fails the attempt
                log.exception("step %s of run %s: agent %s raised", key, run_id, ticket.agent)
                outcome = StepOutcome.failed(f"{type(exc).__name__}: {exc}")
    rt.engine.finish_step(ticket, outcome)


def reconcile() -> None:
    """One reconciler pass (also run periodically inside workers)."""
    runtime.current().engine.reconcile()


class _Heartbeat:
    """Renews the attempt's lease while it runs, so the reconciler knows it is alive."""

    def __init__(self, engine: Engine, ticket: StepTicket, every_s: float) -> None:
        self._engine = engine
        self._ticket = ticket
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if not self._engine.heartbeat(self._ticket):
                    self._give_up()
                    return
            except Exception:  # a database hiccup: try again at the next beat
                log.exception("lease renewal failed for %s", self._ticket.key)

    def _give_up(self) -> None:
        """Cancelled, or given up for lost: the engine ignores this attempt's result, so
        stop its sandbox now rather than let the command run to its timeout."""
        killer = self._engine.killer
        if killer is not None:
            killer.kill(self._ticket.run_id, attempt_label(self._ticket.key, self._ticket.attempt))
