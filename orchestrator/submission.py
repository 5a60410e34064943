"""Submitting runs: the engine's half that records a new run and plans it."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from orchestrator import playbooks
from orchestrator import workspace as workspaces
from orchestrator.effects import Effects
from orchestrator.errors import DecisionError
from orchestrator.events import emit
from orchestrator.models import Run, Step
from orchestrator.plan import PlanSpec
from orchestrator.recovery import child_run_id
from orchestrator.states import RUN_TERMINAL, RunState, StepState
from orchestrator.transitions import (
    load_run,
    load_step,
    move_run,
    new_id,
    open_checkpoint,
)

if TYPE_CHECKING:
    from orchestrator.artifacts import ArtifactStore
    from orchestrator.store import Store
    from orchestrator.transitions import RunRef


class Submission:
    """Recording a run of a plan, its steps and its first transitions."""

    if TYPE_CHECKING:  # provided by Engine
        store: Store
        artifacts: ArtifactStore
        default_reply_to: str | None

        def _tx(self, effects: Effects) -> AbstractContextManager[Session]: ...
        def _act(self, effects: Effects) -> None: ...
        def _advance(self, s: Session, run: Run | RunRef, effects: Effects) -> None: ...

    def submit(
        self,
        plan: PlanSpec,
        *,
        inputs: Mapping[str, object] | None = None,
        source: str = "cli",
        requester: str | None = None,
        request: str | None = None,
        repo: Path | None = None,
        workspace: Path | None = None,
        origin: Mapping[str, Any] | None = None,
        parent: tuple[str, str] | None = None,
        run_id: str | None = None,
        approve_plan: bool = True,
        on_failure: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Record a run of ``plan`` and plan it; return its id.

        With ``approve_plan`` the run waits at a plan checkpoint; without, it starts.
        Invalid inputs raise PlaybookError and record nothing. With an explicit
        ``run_id`` that exists already, nothing happens (a job that runs twice, a
        delivery received twice, even at the same moment). ``reply_to`` names where the
        run's progress is delivered (through ``Dispatcher.notify``).
        """
        resolved = playbooks.resolve_inputs(plan, inputs or {})
        run_id = run_id or new_id()
        with self.store.session() as s:
            if s.get(Run, run_id) is not None:
                return run_id
        ws = workspace or workspaces.prepare(self.artifacts.run_dir(run_id), repo)
        effects = Effects(plans=[(run_id, plan, resolved)])
        try:
            self._record(
                run_id,
                plan,
                resolved,
                ws,
                effects,
                source=source,
                requester=requester,
                request=request,
                origin=origin,
                parent=parent,
                approve=approve_plan,
                on_failure=on_failure,
                reply_to=reply_to,
            )
        except IntegrityError:
            with self.store.session() as s:
                if s.get(Run, run_id) is None:
                    raise
            return run_id  # the same run, recorded by a concurrent call
        self._act(effects)
        return run_id

    def _record(
        self,
        run_id: str,
        plan: PlanSpec,
        resolved: dict[str, Any],
        ws: Path,
        effects: Effects,
        *,
        source: str,
        requester: str | None,
        request: str | None,
        origin: Mapping[str, Any] | None,
        parent: tuple[str, str] | None,
        approve: bool,
        on_failure: str | None,
        reply_to: str | None,
    ) -> None:
        with self._tx(effects) as s:
            if parent is not None:
                # A child reports where its parent does (its card joins the thread).
                above = self._check_parent(s, parent, run_id)
                origin, reply_to = origin or above.origin, reply_to or above.reply_to
            reply_to = reply_to or self.default_reply_to
            run = Run(
                id=run_id,
                status=RunState.RECEIVED,
                source=source,
                playbook=plan.name,
                request=request,
                requester=requester,
                inputs=resolved,
                plan=plan.model_dump(mode="json", by_alias=True),
                plan_version=1,
                origin=dict(origin or {}),
                parent_run_id=parent[0] if parent else None,
                parent_step=parent[1] if parent else None,
                workspace=str(ws),
                on_failure=on_failure or plan.on_failure,
                reply_to=reply_to,
            )
            s.add(run)
            s.flush()
            emit(s, run_id, "run.received", data={"source": source, "playbook": plan.name})
            self._plan(s, run, plan, approve, effects)

    def _check_parent(self, s: Session, parent: tuple[str, str], run_id: str) -> Run:
        """A child run starts only for the current attempt of a running parent step.

        The parent run is locked first: the order every transaction takes (parent, then
        child), so cancelling a parent and finishing a child cannot deadlock."""
        parent_run = load_run(s, parent[0])
        step = load_step(s, *parent)
        current = child_run_id(parent[0], parent[1], step.attempts)
        if parent_run.status in RUN_TERMINAL or step.status != StepState.RUNNING:
            raise DecisionError(f"step {parent[1]!r} of run {parent[0]} is not running any more")
        if run_id != current:
            raise DecisionError(f"{run_id} is not the child of the current attempt ({current})")
        return parent_run

    def _plan(self, s: Session, run: Run, plan: PlanSpec, approve: bool, effects: Effects) -> None:
        if run.status != RunState.PLANNING:  # a request's run is planning already
            move_run(s, run, RunState.PLANNING)
        for position, spec in enumerate(plan.steps):
            s.add(
                Step(
                    run_id=run.id,
                    key=spec.id,
                    position=position,
                    agent=spec.agent,
                    status=StepState.PENDING,
                    max_attempts=spec.retry.max + 1,
                    depends_on=list(spec.depends_on),
                    inputs=dict(spec.with_),
                )
            )
        s.flush()
        emit(s, run.id, "run.planned", data={"steps": [x.id for x in plan.steps]})
        if approve:
            move_run(s, run, RunState.AWAITING_APPROVAL)
            prompt = f"Run {plan.name or 'plan'} ({len(plan.steps)} steps)?"
            if plan.allowlist:  # what approving lets a model run, said where it is approved
                prompt += f" A model may also run: {', '.join(plan.allowlist)}."
            open_checkpoint(s, run, None, "plan", prompt)
        else:
            move_run(s, run, RunState.RUNNING, reason="plan approved with the request")
            self._advance(s, run, effects)

    def _write_plan(self, run_id: str, plan: PlanSpec, inputs: Mapping[str, object]) -> None:
        document = plan.model_dump_json(by_alias=True, indent=2)
        self.artifacts.write(run_id, "plan.json", document)
        self.artifacts.write(run_id, "plan.md", playbooks.render_markdown(plan, inputs))
