"""The primitives every state change goes through: conditional updates that record an
event, checked against the state tables. Only the engine (and its decisions) call them."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from orchestrator.errors import DecisionError, NotFound
from orchestrator.events import emit
from orchestrator.models import Checkpoint, Run, Step
from orchestrator.states import RunState, StepState, ensure_run_transition, ensure_step_transition


def new_id() -> str:
    """A short random id for runs and checkpoints."""
    return secrets.token_hex(6)


def committed(obj: object, **values: Any) -> None:
    """Reflect values a Core UPDATE already wrote, without marking the object dirty."""
    for name, value in values.items():
        set_committed_value(obj, name, value)


def move_run(
    s: Session, run: Run, to: RunState, *, reason: str | None = None, **values: Any
) -> None:
    current = RunState(run.status)
    ensure_run_transition(current, to)
    changed = s.execute(
        update(Run)
        .where(col(Run.id) == run.id, col(Run.status) == current)
        .values(status=to, **values)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        raise DecisionError(f"run {run.id} changed underneath: try again")
    committed(run, status=to, **values)
    data: dict[str, Any] = {"from": current.value}
    if reason:
        data["reason"] = reason
    emit(s, run.id, f"run.{to.value}", data=data)


def move_step(
    s: Session,
    step: Step,
    to: StepState,
    *,
    data: dict[str, Any] | None = None,
    **values: Any,
) -> bool:
    current = StepState(step.status)
    ensure_step_transition(current, to)
    changed = s.execute(
        update(Step)
        .where(
            col(Step.run_id) == step.run_id, col(Step.key) == step.key, col(Step.status) == current
        )
        .values(status=to, **values)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        return False
    committed(step, status=to, **values)
    emit(
        s,
        step.run_id,
        f"step.{to.value}",
        step=step.key,
        data={"from": current.value, **(data or {})},
    )
    return True


def update_step(s: Session, step: Step, **values: Any) -> None:
    s.execute(
        update(Step)
        .where(col(Step.run_id) == step.run_id, col(Step.key) == step.key)
        .values(**values)
    )
    committed(step, **values)


def open_checkpoint(
    s: Session, run: Run, step_key: str | None, kind: str, prompt: str
) -> Checkpoint:
    cp = Checkpoint(
        id=new_id(),
        run_id=run.id,
        step_key=step_key,
        kind=kind,
        prompt=prompt,
        plan_version=run.plan_version,
    )
    s.add(cp)
    s.flush()
    emit(
        s,
        run.id,
        "checkpoint.opened",
        step=step_key,
        data={"checkpoint": cp.id, "kind": kind, "prompt": prompt},
    )
    return cp


def open_checkpoints(s: Session, run_id: str, step_key: str | None = None) -> list[Checkpoint]:
    query = select(Checkpoint).where(
        col(Checkpoint.run_id) == run_id, col(Checkpoint.status) == "open"
    )
    if step_key is not None:
        query = query.where(col(Checkpoint.step_key) == step_key)
    return list(s.exec(query).all())


def load_run(s: Session, run_id: str) -> Run:
    # FOR UPDATE: on PostgreSQL, transactions on one run take turns (SQLite's
    # BEGIN IMMEDIATE already serialises every writer).
    run = s.get(Run, run_id, populate_existing=True, with_for_update=True)
    if run is None:
        raise NotFound(f"no run {run_id!r}")
    return run


def load_step(s: Session, run_id: str, key: str) -> Step:
    step = s.get(Step, (run_id, key), populate_existing=True)
    if step is None:
        raise NotFound(f"no step {key!r} in run {run_id!r}")
    return step


def load_steps(s: Session, run_id: str) -> list[Step]:
    query = select(Step).where(col(Step.run_id) == run_id).order_by(col(Step.position))
    return list(s.exec(query, execution_options={"populate_existing": True}).all())
