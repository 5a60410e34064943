"""The engine's decisions on real SQLite, with the in-memory dispatcher standing in for RQ.

A tiny driver plays the worker: it claims each enqueued attempt and finishes it with
an outcome the test chooses, so every transition is exercised without Redis or Docker
(the same flows run through real RQ workers in tests/workers/).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from orchestrator.artifacts import ArtifactStore
from orchestrator.engine import Engine
from orchestrator.errors import DecisionError, NotFound, PlaybookError
from orchestrator.models import Checkpoint, Event, Run, Step
from orchestrator.outcome import StepOutcome, StepTicket
from orchestrator.plan import PlanSpec
from orchestrator.playbooks import parse_plan
from orchestrator.ports import MemoryDispatcher, MemoryKiller
from orchestrator.store import Store

Outcome = Callable[[StepTicket], StepOutcome]


def ok(ticket: StepTicket) -> StepOutcome:
    return StepOutcome(status="succeeded", outputs=dict(ticket.inputs))


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.store = Store(f"sqlite:///{tmp_path / 'fm.db'}")
        self.dispatcher = MemoryDispatcher()
        self.killer = MemoryKiller()
        self.engine = Engine(
            self.store, self.dispatcher, ArtifactStore(tmp_path / "runs"), killer=self.killer
        )
        self.started: list[str] = []

    def plan(self, document: dict[str, Any]) -> PlanSpec:
        return parse_plan(document, source="test")

    def work(self, outcome: Outcome = ok, *, rounds: int = 50) -> None:
        """Run every enqueued attempt, as a worker would, until nothing is left."""
        for _ in range(rounds):
            if not self.dispatcher.steps:
                return
            run_id, key, attempt, _ = self.dispatcher.steps.pop(0)
            ticket = self.engine.start_step(run_id, key, attempt)
            if ticket is not None:
                self.started.append(key)
                self.engine.finish_step(ticket, outcome(ticket))

    def run(self, run_id: str) -> Run:
        with self.store.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
            return run

    def steps(self, run_id: str) -> dict[str, Step]:
        with self.store.session() as s:
            return {x.key: x for x in s.exec(select(Step).where(Step.run_id == run_id))}

    def checkpoints(self, run_id: str, status: str = "open") -> list[Checkpoint]:
        with self.store.session() as s:
            query = select(Checkpoint).where(
                Checkpoint.run_id == run_id, Checkpoint.status == status
            )
            return list(s.exec(query))

    def events(self, run_id: str) -> list[Event]:
        with self.store.session() as s:
            return list(s.exec(select(Event).where(Event.run_id == run_id).order_by(Event.seq)))


DIAMOND = {
    "name": "diamond",
    "inputs": {"word": {"default": "hi"}},
    "steps": [
        {"id": "a", "agent": "echo", "with": {"said": "${{ inputs.word }}"}},
        {
            "id": "b",
            "agent": "echo",
            "depends_on": ["a"],
            "with": {"v": "${{ steps.a.outputs.said }}!"},
        },
        {"id": "c", "agent": "echo", "depends_on": ["a"], "with": {"v": "c"}},
        {
            "id": "d",
            "agent": "echo",
            "depends_on": ["b", "c"],
            "with": {"both": "${{ steps.b.outputs.v }} ${{ steps.c.outputs.v }}"},
        },
    ],
    "outputs": {"result": "${{ steps.d.outputs.both }}"},
}


def test_a_playbook_allowlist_is_named_at_approval_and_reaches_every_step(h: Harness) -> None:
    run_id = h.engine.submit(h.plan({**DIAMOND, "allowlist": ["make", "npm"]}))
    [cp] = h.checkpoints(run_id)
    assert cp.prompt == "Run diamond (4 steps)? A model may also run: make, npm."
    h.engine.decide(cp.id, "approve", by="alice")
    seen: list[tuple[str, ...]] = []
    h.work(lambda ticket: seen.append(ticket.allowlist) or ok(ticket))
    assert seen == [("make", "npm")] * 4 and h.run(run_id).status == "succeeded"


def test_a_plan_waits_for_approval_then_runs_the_diamond_in_order(h: Harness) -> None:
    run_id = h.engine.submit(h.plan(DIAMOND))
    assert h.run(run_id).status == "awaiting_approval"
    assert h.dispatcher.steps == []
    [cp] = h.checkpoints(run_id)
    assert cp.kind == "plan"

    h.engine.decide(cp.id, "approve", by="alice")
    assert [x[1] for x in h.dispatcher.steps] == ["a"]
    h.work()
    run = h.run(run_id)
    assert run.status == "succeeded"
    assert run.outputs == {"result": "hi! c"}
    assert h.started == ["a", "b", "c", "d"]
    seqs = [e.seq for e in h.events(run_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    types = [e.type for e in h.events(run_id)]
    assert types[:4] == ["run.received", "run.planning", "run.planned", "run.awaiting_approval"]
    assert types[-1] == "run.succeeded"


def test_b_and_c_are_queued_together_once_a_is_done(h: Harness) -> None:
    run_id = h.engine.submit(h.plan(DIAMOND), approve_plan=False)
    h.work(rounds=1)
    assert sorted(x[1] for x in h.dispatcher.steps) == ["b", "c"]
    assert {k: s.status for k, s in h.steps(run_id).items()} == {
        "a": "succeeded",
        "b": "queued",
        "c": "queued",
        "d": "pending",
    }


def test_a_failing_step_is_retried_with_backoff_then_succeeds(h: Harness) -> None:
    plan = h.plan(
        {
            "name": "flaky",
            "steps": [{"id": "x", "agent": "echo", "retry": {"max": 2, "backoff_s": 2}}],
        }
    )
    run_id = h.engine.submit(plan, approve_plan=False)
    failures = iter([True, True, False])

    def flaky(ticket: StepTicket) -> StepOutcome:
        return StepOutcome.failed("boom") if next(failures) else ok(ticket)

    h.work(flaky)
    step = h.steps(run_id)["x"]
    assert h.run(run_id).status == "succeeded"
    assert step.attempts == 3
    delays = [e.data["in_s"] for e in h.events(run_id) if e.type == "step.retrying"]
    assert delays == [2.0, 4.0]


def test_a_step_out_of_retries_pauses_the_run_for_a_decision(h: Harness) -> None:
    plan = h.plan(
        {
            "name": "fails",
            "steps": [
                {"id": "x", "agent": "echo"},
                {"id": "y", "agent": "echo", "depends_on": ["x"]},
            ],
        }
    )
    run_id = h.engine.submit(plan, approve_plan=False)
    h.work(lambda t: StepOutcome.failed("nope"))
    assert h.run(run_id).status == "paused"
    [cp] = h.checkpoints(run_id)
    assert (cp.kind, cp.step_key) == ("failure", "x")
    assert "nope" in cp.prompt

    h.engine.decide(cp.id, "retry", by="bob")
    h.work()
    assert h.run(run_id).status == "succeeded"
    assert h.steps(run_id)["x"].attempts == 2


def test_skip_lets_the_run_go_on_and_abort_stops_it(h: Harness) -> None:
    plan = h.plan(
        {
            "name": "two",
            "steps": [
                {"id": "x", "agent": "echo"},
                {"id": "y", "agent": "echo", "depends_on": ["x"]},
            ],
        }
    )
    skipped = h.engine.submit(plan, approve_plan=False)
    h.work(lambda t: StepOutcome.failed("nope"))
    h.engine.decide(h.checkpoints(skipped)[0].id, "skip", by="bob")
    h.work()
    assert h.run(skipped).status == "succeeded"
    assert {k: s.status for k, s in h.steps(skipped).items()} == {"x": "skipped", "y": "succeeded"}

    aborted = h.engine.submit(plan, approve_plan=False)
    h.work(lambda t: StepOutcome.failed("nope"))
    h.engine.decide(h.checkpoints(aborted)[0].id, "abort", by="bob")
    assert h.run(aborted).status == "aborted"
    assert h.steps(aborted)["y"].status == "cancelled"
    assert h.killer.killed == []  # nothing was running: nothing to kill


def test_on_failure_fail_ends_the_run_without_asking(h: Harness) -> None:
    plan = h.plan({"name": "strict", "on_failure": "fail", "steps": [{"id": "x", "agent": "echo"}]})
    run_id = h.engine.submit(plan, approve_plan=False)
    h.work(lambda t: StepOutcome.failed("exit code 3"))
    run = h.run(run_id)
    assert run.status == "failed"
    assert "exit code 3" in (run.error or "")
    assert h.checkpoints(run_id) == []


def test_a_gate_holds_its_step_until_continue_with_modified_inputs(h: Harness) -> None:
    plan = h.plan(
        {
            "name": "gated",
            "steps": [
                {"id": "a", "agent": "echo"},
                {
                    "id": "deploy",
                    "agent": "echo",
                    "depends_on": ["a"],
                    "approval": "required",
                    "with": {"target": "staging"},
                },
            ],
        }
    )
    run_id = h.engine.submit(plan, approve_plan=False)
    h.work()
    assert h.run(run_id).status == "paused"
    assert h.steps(run_id)["deploy"].status == "pending"
    [cp] = h.checkpoints(run_id)
    h.engine.decide(cp.id, "continue", by="carol", modifications={"deploy": {"target": "prod"}})
    h.work()
    assert h.run(run_id).status == "succeeded"
    assert h.steps(run_id)["deploy"].outputs == {"target": "prod"}
    assert h.run(run_id).plan_version == 2


def test_decisions_that_cannot_apply_are_clear_errors_and_change_nothing(h: Harness) -> None:
    run_id = h.engine.submit(h.plan(DIAMOND))
    [cp] = h.checkpoints(run_id)
    with pytest.raises(DecisionError, match="not a decision for a plan checkpoint"):
        h.engine.decide(cp.id, "retry", by="x")
    with pytest.raises(NotFound):
        h.engine.decide("nope", "approve", by="x")
    with pytest.raises(DecisionError, match="invalid"):
        h.engine.decide(
            cp.id, "approve", by="x", modifications={"b": {"v": "${{ steps.d.outputs.x }}"}}
        )
    before = [e.type for e in h.events(run_id)]
    h.engine.decide(cp.id, "approve", by="x")
    with pytest.raises(DecisionError, match="decided"):
        h.engine.decide(cp.id, "approve", by="y")
    with pytest.raises(DecisionError, match="decided"):
        h.engine.decide(cp.id, "reject", by="y")
    after = [e.type for e in h.events(run_id)]
    assert after[: len(before)] == before
    assert after.count("checkpoint.decided") == 1
    assert h.run(run_id).status == "running"


def test_cancel_aborts_and_kills_and_a_late_finish_is_ignored(h: Harness) -> None:
    run_id = h.engine.submit(h.plan(DIAMOND), approve_plan=False)
    _, key, attempt, _ = h.dispatcher.steps.pop(0)
    ticket = h.engine.start_step(run_id, key, attempt)
    assert ticket is not None
    h.engine.cancel(run_id, by="dave")
    h.engine.finish_step(ticket, ok(ticket))
    assert h.run(run_id).status == "aborted"
    assert {s.status for s in h.steps(run_id).values()} == {"cancelled"}
    assert h.killer.killed == [(run_id, None)]
    with pytest.raises(DecisionError, match="finished"):
        h.engine.cancel(run_id, by="dave")


def test_a_job_run_twice_claims_the_step_once(h: Harness) -> None:
    run_id = h.engine.submit(h.plan(DIAMOND), approve_plan=False)
    first = h.engine.start_step(run_id, "a", 1)
    second = h.engine.start_step(run_id, "a", 1)
    assert first is not None and second is None


def test_invalid_inputs_record_nothing(h: Harness) -> None:
    with pytest.raises(PlaybookError, match="nope"):
        h.engine.submit(h.plan(DIAMOND), inputs={"nope": "1"})
    with h.store.session() as s:
        assert s.exec(select(Run)).all() == []


def test_reconcile_requeues_a_lost_attempt_and_a_missing_job(h: Harness) -> None:
    run_id = h.engine.submit(h.plan(DIAMOND), approve_plan=False)
    _, key, attempt, _ = h.dispatcher.steps.pop(0)
    ticket = h.engine.start_step(run_id, key, attempt)
    assert ticket is not None
    with h.store.session() as s:  # the worker died: its lease ran out
        step = s.get(Step, (run_id, "a"))
        assert step is not None
        step.lease_until = step.started_at
        s.add(step)
    report = h.engine.reconcile()
    assert report.lost == [f"{run_id}/a"]
    assert h.steps(run_id)["a"].status == "queued"
    h.dispatcher.steps.clear()
    h.dispatcher.jobs.clear()  # and Redis was flushed
    with h.store.session() as s:
        step = s.get(Step, (run_id, "a"))
        assert step is not None and step.queued_at is not None
        step.queued_at = step.queued_at.replace(year=2000)
        s.add(step)
    assert h.engine.reconcile().requeued == [f"{run_id}/a"]
    h.work()
    assert h.run(run_id).status == "succeeded"
    assert h.steps(run_id)["a"].lost_attempts == 1


def test_with_a_key_the_plan_and_logs_are_encrypted_at_rest(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    store = Store(f"sqlite:///{tmp_path / 'fm.db'}")
    artifacts = ArtifactStore(tmp_path / "runs", key)
    engine = Engine(store, MemoryDispatcher(), artifacts)
    plan = parse_plan(
        {
            "name": "secret-plan",
            "steps": [{"id": "a", "agent": "echo", "with": {"password": "hunter2-in-the-plan"}}],
        },
        source="t",
    )
    run_id = engine.submit(plan, approve_plan=False)
    ticket = engine.start_step(run_id, "a", 1)
    assert ticket is not None
    engine.finish_step(ticket, StepOutcome(status="succeeded", log="log says hunter2-in-the-log"))
    on_disk = b"".join(
        p.read_bytes() for p in (tmp_path / "runs" / run_id).rglob("*") if p.is_file()
    )
    assert b"hunter2" not in on_disk
    assert b"secret-plan" not in on_disk
    assert "hunter2-in-the-plan" in artifacts.read_text(run_id, "plan.json")
    assert artifacts.read_text(run_id, "logs/a.1.log") == "log says hunter2-in-the-log"
    store.dispose()


PARENT = {
    "name": "parent",
    "steps": [
        {
            "id": "p",
            "agent": "playbook",
            "retry": {"max": 2, "backoff_s": 0},
            "with": {"playbook": "child"},
        }
    ],
}
CHILD = {"name": "child", "on_failure": "fail", "steps": [{"id": "k", "agent": "echo"}]}


def _start_child(h: Harness, run_id: str, attempt: int) -> str:
    from orchestrator.recovery import child_run_id

    ticket = h.engine.start_step(run_id, "p", attempt)
    assert ticket is not None
    child = h.engine.submit(
        h.plan(CHILD),
        parent=(run_id, "p"),
        run_id=child_run_id(run_id, "p", attempt),
        approve_plan=False,
        workspace=ticket.workspace,
        on_failure="fail",
    )
    h.engine.finish_step(ticket, StepOutcome(status="waiting", outputs={"run_id": child}))
    return child


def _finish_child(h: Harness, child: str, outcome: Outcome) -> None:
    for run_id, key, attempt, _ in list(h.dispatcher.steps):
        if run_id == child:
            h.dispatcher.steps.remove((run_id, key, attempt, _))
            ticket = h.engine.start_step(run_id, key, attempt)
            assert ticket is not None
            h.engine.finish_step(ticket, outcome(ticket))


def test_an_earlier_attempts_child_never_completes_the_current_attempt(h: Harness) -> None:
    run_id = h.engine.submit(h.plan(PARENT), approve_plan=False)
    h.dispatcher.steps.clear()
    first = _start_child(h, run_id, 1)
    _finish_child(h, first, lambda t: StepOutcome.failed("kid broke"))
    assert h.steps(run_id)["p"].status == "queued"  # the failure became a retry
    h.dispatcher.steps.clear()
    second = _start_child(h, run_id, 2)
    for _ in range(3):
        h.engine.reconcile()
    step = h.steps(run_id)["p"]
    assert (step.status, step.attempts) == ("running", 2)
    _finish_child(h, second, ok)
    assert h.steps(run_id)["p"].status == "succeeded"
    assert h.steps(run_id)["p"].outputs["run_id"] == second
    assert h.run(run_id).status == "succeeded"


def test_no_child_starts_for_a_cancelled_parent_and_a_lost_attempt_aborts_its_child(
    h: Harness,
) -> None:
    from orchestrator.recovery import child_run_id

    cancelled = h.engine.submit(h.plan(PARENT), approve_plan=False)
    ticket = h.engine.start_step(cancelled, "p", 1)
    assert ticket is not None
    h.engine.cancel(cancelled, by="x")
    with pytest.raises(DecisionError, match="not running"):
        h.engine.submit(
            h.plan(CHILD),
            parent=(cancelled, "p"),
            run_id=child_run_id(cancelled, "p", 1),
            approve_plan=False,
        )

    lost = h.engine.submit(h.plan(PARENT), approve_plan=False)
    h.dispatcher.steps.clear()
    child = _start_child(h, lost, 1)
    with h.store.session() as s:  # the worker that ran the playbook step was lost
        step = s.get(Step, (lost, "p"))
        assert step is not None and step.started_at is not None
        step.lease_until = step.started_at
        s.add(step)
    h.engine.reconcile()
    assert h.run(child).status == "aborted"
    assert h.steps(lost)["p"].status == "queued"


def test_a_step_whose_worker_keeps_dying_stops_after_the_lost_limit(h: Harness) -> None:
    run_id = h.engine.submit(
        h.plan({"name": "doomed", "steps": [{"id": "x", "agent": "echo"}]}), approve_plan=False
    )
    for attempt in range(1, 10):
        if h.steps(run_id)["x"].status != "queued":
            break
        ticket = h.engine.start_step(run_id, "x", attempt)
        assert ticket is not None
        with h.store.session() as s:
            step = s.get(Step, (run_id, "x"))
            assert step is not None and step.started_at is not None
            step.lease_until = step.started_at
            s.add(step)
        h.engine.reconcile()
    step = h.steps(run_id)["x"]
    assert step.status == "failed"
    assert step.lost_attempts == 4
    assert "lost 4 times" in (step.error or "")
    assert h.run(run_id).status == "paused"
    assert [c.kind for c in h.checkpoints(run_id)] == ["failure"]


def test_parallel_branches_queue_up_to_the_runs_limit(h: Harness) -> None:
    fan = {
        "name": "fan",
        "max_parallel": 2,
        "steps": [{"id": f"s{i}", "agent": "echo"} for i in range(5)],
    }
    run_id = h.engine.submit(h.plan(fan), approve_plan=False)
    assert sorted(x[1] for x in h.dispatcher.steps) == ["s0", "s1"]
    _, key, attempt, _ = h.dispatcher.steps.pop(0)
    ticket = h.engine.start_step(run_id, key, attempt)
    assert ticket is not None
    h.engine.finish_step(ticket, ok(ticket))
    assert sorted(x[1] for x in h.dispatcher.steps) == ["s1", "s2"]
    h.work()
    assert h.run(run_id).status == "succeeded"
