"""The engine: the only place run, step and checkpoint states change.

Each public method reads state, decides transitions (through the tables in
``states.py``), records them with conditional updates (``… WHERE status = <expected>``)
and an event each, commits, and only then acts: enqueues jobs with deterministic ids,
kills sandboxes, writes the diff. Every method is safe to call twice: a second call
finds nothing to do. The database is the truth; the queue only carries work.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from orchestrator import templating
from orchestrator import workspace as workspaces
from orchestrator.artifacts import ArtifactStore
from orchestrator.decisions import check_decision, modify_plan
from orchestrator.effects import Effects
from orchestrator.errors import DecisionError, NotFound, TemplateError
from orchestrator.events import emit, to_notify
from orchestrator.kinds import SHELL_FIELDS
from orchestrator.models import Checkpoint, Run, Step, utcnow
from orchestrator.outcome import StepOutcome, StepTicket
from orchestrator.plan import PlanSpec
from orchestrator.planning import Planning
from orchestrator.ports import Dispatcher, SandboxKiller
from orchestrator.recovery import Recovery
from orchestrator.states import (
    RUN_TERMINAL,
    STEP_ACTIVE,
    STEP_DONE,
    RunState,
    StepState,
)
from orchestrator.store import Store
from orchestrator.submission import Submission
from orchestrator.transitions import (
    RunRef,
    StepRef,
    committed,
    load_claim,
    load_plan,
    load_run,
    load_step,
    load_steps,
    move_run,
    move_step,
    open_checkpoint,
    open_checkpoints,
    snapshot,
    update_step,
)

log = logging.getLogger(__name__)

BUDGET_STEP_USD = 1.0  # what "continue" adds when a run had no budget to double


class Engine(Submission, Planning, Recovery):
    """Runs, steps and checkpoints move only through these methods."""

    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        artifacts: ArtifactStore,
        *,
        killer: SandboxKiller | None = None,
        lease_s: float = 30.0,
        default_reply_to: str | None = None,
        default_budget_usd: float | None = None,
    ) -> None:
        self.store = store
        # Where runs that name no destination report (``webhooks`` when outgoing
        # subscriptions are configured: every run's events are delivered then).
        self.default_reply_to = default_reply_to
        # What a request's run may spend on LLM calls unless told otherwise (None: no limit).
        self.default_budget_usd = default_budget_usd
        self.dispatcher = dispatcher
        self.artifacts = artifacts
        self.killer = killer
        self.lease = timedelta(seconds=lease_s)
        self._plans: dict[tuple[str, int], PlanSpec] = {}

    # -- advancing -------------------------------------------------------------------

    def advance(self, run_id: str) -> None:
        """Queue every step that is ready (up to the run's parallel limit); finish the run
        when nothing is left to do. Safe to call any number of times."""
        effects = Effects()
        with self._tx(effects) as s:
            run = load_run(s, run_id)
            self._advance(s, run, effects)
        self._act(effects)

    def _advance(self, s: Session, run: Run | RunRef, effects: Effects) -> None:
        if run.status != RunState.RUNNING:
            return
        steps = snapshot(s, run.id)
        status = {x.key: x.status for x in steps}
        if self._finished(s, run, steps, effects):
            return
        plan = self._plan_of(s, run)
        active = sum(1 for x in steps if x.status in STEP_ACTIVE)
        gated = False
        for step in steps:
            if step.status != StepState.PENDING:
                continue
            if not all(status[d] in STEP_DONE for d in step.depends_on):
                continue
            spec = plan.step(step.key)
            if (spec.approval == "required" or step.agent == "gate") and not step.gate_passed:
                why = spec.with_.get("message", "") if step.agent == "gate" else ""
                if spec.description and step.agent != "gate":  # e.g. what the allowlist saw
                    why = f"Step {step.key!r} needs approval before it runs: {spec.description}"
                gated = self._gate(s, run, step, why) or gated
                continue
            if active >= plan.max_parallel:
                continue
            self._queue(s, step, spec.timeout_s, None, effects)
            active += 1
        if gated:
            move_run(s, run, RunState.PAUSED, reason="waiting for a decision")

    def _gate(self, s: Session, run: Run | RunRef, step: StepRef, message: object) -> bool:
        if open_checkpoints(s, run.id, step.key):
            return True
        prompt = str(message) or f"Step {step.key!r} needs approval before it runs."
        open_checkpoint(s, run, step.key, "gate", prompt)
        return True

    def _queue(
        self,
        s: Session,
        step: Step | StepRef,
        timeout_s: float,
        not_before: datetime | None,
        effects: Effects,
    ) -> None:
        moved = move_step(s, step, StepState.QUEUED, queued_at=utcnow(), not_before=not_before)
        if moved:
            effects.jobs.append((step.run_id, step.key, step.attempts + 1, not_before, timeout_s))

    def _finished(
        self, s: Session, ref: Run | RunRef, steps: Sequence[Step | StepRef], effects: Effects
    ) -> bool:
        """End the run when no step can move any more; say whether it ended."""
        if any(x.status in (StepState.PENDING, *STEP_ACTIVE) for x in steps):
            return False
        if open_checkpoints(s, ref.id):
            return False
        run = ref if isinstance(ref, Run) else load_run(s, ref.id)
        failed = [x.key for x in steps if x.status not in STEP_DONE]
        if failed:
            why = f"steps did not succeed: {', '.join(failed)}"
            self._end_run(s, run, RunState.FAILED, why, effects)
        else:
            self._end_run(s, run, RunState.SUCCEEDED, None, effects)
        return True

    # -- running a step --------------------------------------------------------------

    def start_step(self, run_id: str, key: str, attempt: int) -> StepTicket | None:
        """Claim ``attempt`` of a queued step; None when it is not ours to run (any more)."""
        effects = Effects()
        ticket = None
        with self._tx(effects) as s:
            run, step, raw = load_claim(s, run_id, key)
            if run.status in RUN_TERMINAL or step.status != StepState.QUEUED:
                return None
            if step.attempts != attempt - 1:
                return None
            now = utcnow()
            if not move_step(
                s,
                step,
                StepState.RUNNING,
                data={"attempt": attempt},
                attempts=attempt,
                started_at=now,
                finished_at=None,
                lease_until=now + self.lease,
                error=None,
            ):
                return None
            try:
                inputs = self._resolve(s, run, step.agent, raw)
            except TemplateError as exc:
                failure = StepOutcome.failed(str(exc))
                full = load_run(s, run_id)
                self._fail_attempt(s, full, load_step(s, run_id, key), failure, effects)
            else:
                plan = self._plan_of(s, run)
                ticket = StepTicket(
                    run_id=run_id,
                    key=key,
                    attempt=attempt,
                    agent=step.agent,
                    inputs=inputs,
                    timeout_s=plan.step(key).timeout_s,
                    workspace=Path(run.workspace) if run.workspace else None,
                    requester=run.requester,
                    allowlist=tuple(plan.allowlist),
                )
        self._act(effects)
        return ticket

    def _resolve(
        self, s: Session, run: RunRef, agent: str, raw: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The step's inputs with ``${{ }}`` references filled in (shell fields quoted)."""
        named = {r.name for r in templating.references(dict(raw)) if r.kind == "steps"}
        upstream: dict[str, Any] = {}
        if named:
            rows = s.connection().execute(
                select(col(Step.key), col(Step.outputs)).where(
                    col(Step.run_id) == run.id, col(Step.key).in_(named)
                )
            )
            upstream = {key: outputs for key, outputs in rows}
        shell = SHELL_FIELDS.get(agent, frozenset())
        resolved: dict[str, Any] = {}
        for name, value in raw.items():
            quote = shlex.quote if name in shell else None
            resolved[name] = templating.substitute(
                value, inputs=run.inputs, steps=upstream, quote=quote
            )
        return resolved

    def heartbeat(self, ticket: StepTicket) -> bool:
        """Extend the attempt's lease; False when the attempt is no longer current."""
        with self.store.session() as s:
            result = s.connection().execute(
                update(Step)
                .where(
                    col(Step.run_id) == ticket.run_id,
                    col(Step.key) == ticket.key,
                    col(Step.status) == StepState.RUNNING,
                    col(Step.attempts) == ticket.attempt,
                    col(Step.lease_until).is_not(None),
                )
                .values(lease_until=utcnow() + self.lease)
            )
            return bool(result.rowcount)

    def finish_step(self, ticket: StepTicket, outcome: StepOutcome) -> None:
        """Record what an attempt produced, then move the run on."""
        if outcome.log:
            name = f"logs/{ticket.key}.{ticket.attempt}.log"
            self.artifacts.write(ticket.run_id, name, outcome.log)
        effects = Effects()
        with self._tx(effects) as s:
            ref, current, _ = load_claim(s, ticket.run_id, ticket.key)
            if current.status != StepState.RUNNING or current.attempts != ticket.attempt:
                return  # cancelled, or claimed again after this worker was given up for lost
            if outcome.status == "succeeded":
                self._succeed(s, current, outcome)
                self._advance(s, ref, effects)
            else:
                run, step = load_run(s, ticket.run_id), load_step(s, ticket.run_id, ticket.key)
                if outcome.status == "waiting":
                    self._wait_on_child(s, step, outcome)
                else:
                    self._fail_attempt(s, run, step, outcome, effects)
        self._act(effects)

    def _succeed(self, s: Session, step: Step | StepRef, outcome: StepOutcome) -> None:
        move_step(
            s,
            step,
            StepState.SUCCEEDED,
            data={"attempt": step.attempts, "exit_code": outcome.exit_code},
            outputs=outcome.outputs,
            exit_code=outcome.exit_code,
            error=None,
            provenance=outcome.provenance,
            finished_at=utcnow(),
            lease_until=None,
        )

    def _wait_on_child(self, s: Session, step: Step, outcome: StepOutcome) -> None:
        update_step(
            s, step, outputs=outcome.outputs, provenance=outcome.provenance, lease_until=None
        )
        emit(s, step.run_id, "step.waiting", step=step.key, data=dict(outcome.outputs))

    def _fail_attempt(
        self,
        s: Session,
        run: Run,
        step: Step,
        outcome: StepOutcome,
        effects: Effects,
        *,
        retry: bool = True,
    ) -> None:
        move_step(
            s,
            step,
            StepState.FAILED,
            data={"attempt": step.attempts, "error": outcome.error, "exit_code": outcome.exit_code},
            outputs=outcome.outputs,
            exit_code=outcome.exit_code,
            error=outcome.error,
            provenance=outcome.provenance,
            finished_at=utcnow(),
            lease_until=None,
        )
        spec = self._plan_of(s, run).step(step.key)
        used = step.attempts - step.lost_attempts
        if outcome.budget_reached:  # not the step's fault: a person raises the budget
            budget = run.budget_usd or 0.0
            prompt = (
                f"LLM budget reached in step {step.key!r} (${run.cost_usd:.4f} spent of"
                f" ${budget:.4f}): continue with +${budget or BUDGET_STEP_USD:.2f}?"
            )
            open_checkpoint(s, run, step.key, "budget", prompt)
            if run.status == RunState.RUNNING:
                move_run(s, run, RunState.PAUSED, reason="LLM budget reached")
        elif outcome.needs_review:  # retrying blindly would repeat it: a person decides
            prompt = f"Step {step.key!r} did not do what was expected: {outcome.error}"
            open_checkpoint(s, run, step.key, "failure", prompt)
            if run.status == RunState.RUNNING:
                move_run(s, run, RunState.PAUSED, reason=f"step {step.key!r} needs review")
        elif retry and used < step.max_attempts:
            delay = spec.retry.delay(used)
            not_before = utcnow() + timedelta(seconds=delay)
            emit(s, run.id, "step.retrying", step=step.key, data={"in_s": delay, "after": used})
            self._queue(s, step, spec.timeout_s, not_before, effects)
        elif run.on_failure == "fail":
            why = f"step {step.key!r} failed: {outcome.error}"
            self._end_run(s, run, RunState.FAILED, why, effects)
        else:
            prompt = f"Step {step.key!r} failed after {used} attempt(s): {outcome.error}"
            open_checkpoint(s, run, step.key, "failure", prompt)
            if run.status == RunState.RUNNING:
                move_run(s, run, RunState.PAUSED, reason=f"step {step.key!r} failed")

    # -- decisions -----------------------------------------------------------------

    def decide(
        self,
        checkpoint_id: str,
        decision: str,
        *,
        by: str,
        modifications: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Apply a person's decision, once. A second decision is a DecisionError."""
        effects = Effects()
        with self._tx(effects) as s:
            cp = s.get(Checkpoint, checkpoint_id)
            if cp is None:
                raise NotFound(f"no checkpoint {checkpoint_id!r}")
            run = load_run(s, cp.run_id)
            check_decision(cp, run, decision)
            if modifications:
                modified = modify_plan(s, run, cp, modifications)
                effects.plans.append((run.id, modified, run.inputs))
            claimed = s.connection().execute(
                update(Checkpoint)
                .where(col(Checkpoint.id) == cp.id, col(Checkpoint.status) == "open")
                .values(
                    status="decided",
                    decision=decision,
                    decided_by=by,
                    decided_at=utcnow(),
                    modifications=dict(modifications or {}),
                )
            )
            if not claimed.rowcount:
                raise DecisionError(f"checkpoint {cp.id} was decided by someone else just now")
            emit(
                s,
                run.id,
                "checkpoint.decided",
                step=cp.step_key,
                data={"checkpoint": cp.id, "kind": cp.kind, "decision": decision, "by": by},
            )
            if cp.kind == "plan" and modifications and decision == "approve":
                # An approval is of one exact plan: the changed plan asks for its own.
                prompt = f"Plan version {run.plan_version}, changed by {by}: approve it?"
                open_checkpoint(s, run, None, "plan", prompt)
            else:
                self._apply(s, run, cp, decision, by, effects)
        self._act(effects)

    def _apply(
        self, s: Session, run: Run, cp: Checkpoint, decision: str, by: str, effects: Effects
    ) -> None:
        if decision in ("reject", "abort"):
            self._end_run(s, run, RunState.ABORTED, f"{decision}ed by {by}", effects)
            return
        if cp.kind == "plan":
            move_run(s, run, RunState.RUNNING, reason=f"plan approved by {by}")
            self._advance(s, run, effects)
            return
        if cp.kind == "budget":
            self._raise_budget(s, run, by)
        if cp.step_key is None:  # screening or budget while planning: plan (again)
            if cp.kind not in ("screening", "budget"):
                raise DecisionError(f"checkpoint {cp.id} names no step")
            move_run(s, run, RunState.PLANNING, reason=f"{cp.kind}: {decision} by {by}")
            effects.planning.append(run.id)
            return
        step = load_step(s, run.id, cp.step_key)
        if decision == "skip" or (cp.kind == "failure" and decision == "continue"):
            move_step(s, step, StepState.SKIPPED, data={"by": by}, finished_at=utcnow())
        elif cp.kind == "gate":  # continue or approve: the step may run
            update_step(s, step, gate_passed=True)
        elif cp.kind == "budget":  # the step runs again, on the raised budget
            spec = self._plan_of(s, run).step(step.key)
            update_step(s, step, max_attempts=step.attempts - step.lost_attempts + 1)
            self._queue(s, step, spec.timeout_s, None, effects)
        else:  # a failed step, retried with a fresh budget
            spec = self._plan_of(s, run).step(step.key)
            used = step.attempts - step.lost_attempts
            update_step(s, step, max_attempts=used + spec.retry.max + 1)
            self._queue(s, step, spec.timeout_s, None, effects)
        self._resume(s, run)
        self._advance(s, run, effects)

    def _raise_budget(self, s: Session, run: Run, by: str) -> None:
        """Continue past a budget: the run may spend its budget once more."""
        budget = run.budget_usd or 0.0
        raised = max(run.cost_usd, budget) + (budget or BUDGET_STEP_USD)
        s.execute(update(Run).where(col(Run.id) == run.id).values(budget_usd=raised))
        committed(run, budget_usd=raised)
        emit(s, run.id, "run.budget_raised", data={"budget_usd": raised, "by": by})

    def _resume(self, s: Session, run: Run) -> None:
        if run.status == RunState.PAUSED and not open_checkpoints(s, run.id):
            move_run(s, run, RunState.RUNNING, reason="decided")

    # -- cancelling ------------------------------------------------------------------

    def cancel(self, run_id: str, *, by: str) -> None:
        """Abort a run and its child runs; their running sandboxes are killed."""
        effects = Effects()
        with self._tx(effects) as s:
            run = load_run(s, run_id)
            if run.status in RUN_TERMINAL:
                raise DecisionError(f"run {run_id} has finished ({run.status}): nothing to cancel")
            self._end_run(s, run, RunState.ABORTED, f"cancelled by {by}", effects)
        self._act(effects)

    # -- ending ----------------------------------------------------------------------

    def _end_run(
        self, s: Session, run: Run, state: RunState, error: str | None, effects: Effects
    ) -> None:
        """Finish a run: stop its steps, close its checkpoints, end its children, tell
        its parent; after commit its sandboxes are killed and its diff written."""
        if state == RunState.SUCCEEDED:
            try:
                committed(run, outputs=self._run_outputs(s, run))
            except TemplateError as exc:
                state, error = RunState.FAILED, f"the run's outputs: {exc}"
        steps = load_steps(s, run.id)
        if any(x.status in STEP_ACTIVE for x in steps):
            effects.kills.append((run.id, None))  # after commit: its sandboxes die too
        for step in steps:
            if step.status not in (StepState.SUCCEEDED, StepState.SKIPPED, StepState.CANCELLED):
                if step.status == StepState.FAILED and state == RunState.FAILED:
                    continue  # the failure stands as the record
                move_step(s, step, StepState.CANCELLED, finished_at=utcnow(), lease_until=None)
        for cp in open_checkpoints(s, run.id):
            s.execute(
                update(Checkpoint)
                .where(col(Checkpoint.id) == cp.id)
                .values(status="cancelled", decided_at=utcnow())
            )
        move_run(
            s, run, state, reason=error, error=error, finished_at=utcnow(), outputs=run.outputs
        )
        if run.parent_run_id is None:
            effects.diffs.append(run.id)
        for child in s.exec(select(Run).where(col(Run.parent_run_id) == run.id)).all():
            if child.status not in RUN_TERMINAL:
                self._end_run(s, child, RunState.ABORTED, f"parent run {run.id} ended", effects)
        if run.parent_run_id and run.parent_step:
            effects.parents.append(run.id)  # in its own transaction: parent locks come first

    def _run_outputs(self, s: Session, run: Run) -> dict[str, Any]:
        plan = self._plan_of(s, run)
        upstream = {x.key: x.outputs for x in load_steps(s, run.id)}
        return {
            name: templating.substitute(expr, inputs=run.inputs, steps=upstream)
            for name, expr in plan.outputs.items()
        }

    # -- small helpers ---------------------------------------------------------------

    @contextmanager
    def _tx(self, effects: Effects) -> Iterator[Session]:
        """A transaction; after it commits, the runs it gave events to that report
        somewhere are left in ``effects`` to be handed to the notify queue."""
        with self.store.session() as s:
            yield s
        effects.notify |= to_notify(s)

    def _plan_of(self, s: Session, run: Run | RunRef) -> PlanSpec:
        """The run's plan, parsed once per plan version (it is read on every transition)."""
        key = (run.id, run.plan_version)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > 512:
                self._plans.clear()
            plan = self._plans[key] = PlanSpec.model_validate(load_plan(s, run.id))
        return plan

    def _act(self, effects: Effects) -> None:
        """After commit: kill, enqueue, write, tell parents. Each action stands alone: one
        that fails is logged, and the reconciler repairs what it left undone."""
        for what, action in self._actions(effects):
            try:
                action()
            except Exception:
                log.exception("after commit: %s failed (the reconciler repairs it)", what)

    def _actions(self, effects: Effects) -> list[tuple[str, Callable[[], object]]]:
        # Kills come first: a requeued attempt must not lose its new sandbox to the kill
        # meant for the attempt before it.
        killer = self.killer
        actions: list[tuple[str, Callable[[], object]]] = []
        if killer is not None:
            actions += [(f"kill {r}/{k}", partial(killer.kill, r, k)) for r, k in effects.kills]
        actions += [
            (
                f"enqueue {r}/{k}",
                partial(self.dispatcher.enqueue_step, r, k, a, not_before=nb, timeout_s=t),
            )
            for r, k, a, nb, t in effects.jobs
        ]
        actions += [
            (f"plan of {r}", partial(self._write_plan, r, p, i)) for r, p, i in effects.plans
        ]
        actions += [(f"diff of {r}", partial(self._write_diff, r)) for r in effects.diffs]
        actions += [(f"parent of {c}", partial(self._complete_parent, c)) for c in effects.parents]
        actions += [
            (f"plan job {r}", partial(self.dispatcher.enqueue_plan, r)) for r in effects.planning
        ]
        actions += [(f"notify {r}", partial(self.dispatcher.notify, r)) for r in effects.notify]
        return actions

    def _write_diff(self, run_id: str) -> None:
        run_dir = self.artifacts.run_dir(run_id)
        base, current = run_dir / "base", run_dir / "workspace"
        if base.is_dir() and current.is_dir():
            self.artifacts.write(run_id, "diff.patch", workspaces.diff(base, current))
