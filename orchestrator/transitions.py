"""The primitives every state change goes through: conditional updates that record an
event, checked against the state tables. Only the engine (and its decisions) call them.

They run as Core statements on the session's connection: the ORM's bulk-update
machinery costs more than the statement itself on this hot path (one step is three
transitions), and objects are kept in step with ``committed``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import defer
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
    mapped = hasattr(obj, "_sa_instance_state")
    for name, value in values.items():
        if mapped:
            set_committed_value(obj, name, value)
        else:
            setattr(obj, name, value)


@dataclass
class StepRef:
    """The columns scheduling needs, read without building ORM objects (hot path)."""

    run_id: str
    key: str
    status: str
    agent: str
    attempts: int
    depends_on: list[str]
    gate_passed: bool


_STEPS = Step.__table__  # type: ignore[attr-defined]
_SNAPSHOT = (
    sa_select(
        *(
            _STEPS.c[name]
            for name in ("key", "status", "agent", "attempts", "depends_on", "gate_passed")
        )
    )
    .where(_STEPS.c.run_id == bindparam("run"))
    .order_by(_STEPS.c.position)
)


@dataclass
class RunRef:
    """The run columns a step's start and finish need, read without the ORM (hot path)."""

    id: str
    status: str
    plan_version: int
    inputs: dict[str, Any]
    workspace: str | None
    requester: str | None


_RUNS = Run.__table__  # type: ignore[attr-defined]
_CLAIM = (
    sa_select(
        *(_RUNS.c[n] for n in ("status", "plan_version", "inputs", "workspace", "requester")),
        *(_STEPS.c[n] for n in ("status", "agent", "attempts", "depends_on", "gate_passed")),
        _STEPS.c.inputs,
    )
    .select_from(_STEPS.join(_RUNS, _RUNS.c.id == _STEPS.c.run_id))
    .where(_STEPS.c.run_id == bindparam("run"), _STEPS.c.key == bindparam("key"))
    .with_for_update(of=_RUNS)
)
_PLAN = sa_select(_RUNS.c.plan).where(_RUNS.c.id == bindparam("run"))


def load_claim(s: Session, run_id: str, key: str) -> tuple[RunRef, StepRef, dict[str, Any]]:
    """A run and one of its steps (with the step's inputs) in one query, the run locked
    as ``load_run`` locks it."""
    row = s.connection().execute(_CLAIM, {"run": run_id, "key": key}).one_or_none()
    if row is None:
        raise NotFound(f"no step {key!r} in run {run_id!r}")
    status, version, inputs, workspace, requester, *step, step_inputs = row
    run = RunRef(run_id, status, version, inputs or {}, workspace, requester)
    s_status, agent, attempts, deps, gate = step
    ref = StepRef(run_id, key, s_status, agent, attempts, list(deps or []), bool(gate))
    return run, ref, step_inputs or {}


def load_plan(s: Session, run_id: str) -> dict[str, Any]:
    """A run's plan document (the column ``load_run`` defers)."""
    plan = s.connection().execute(_PLAN, {"run": run_id}).scalar_one()
    return dict(plan or {})


def snapshot(s: Session, run_id: str) -> list[StepRef]:
    """The run's steps in plan order, as light rows."""
    rows = s.connection().execute(_SNAPSHOT, {"run": run_id})
    return [
        StepRef(run_id, key, status, agent, attempts, list(deps or []), bool(gate))
        for key, status, agent, attempts, deps, gate in rows
    ]


def move_run(
    s: Session, run: Run | RunRef, to: RunState, *, reason: str | None = None, **values: Any
) -> None:
    current = RunState(run.status)
    ensure_run_transition(current, to)
    changed = s.connection().execute(
        _conditional(Run, ("id",), values), {"w_id": run.id, "w_status": current, **_v(values, to)}
    )
    if not changed.rowcount:
        raise DecisionError(f"run {run.id} changed underneath: try again")
    committed(run, status=to, **values)
    data: dict[str, Any] = {"from": current.value}
    if reason:
        data["reason"] = reason
    emit(s, run.id, f"run.{to.value}", data=data)


def move_step(
    s: Session,
    step: Step | StepRef,
    to: StepState,
    *,
    data: dict[str, Any] | None = None,
    **values: Any,
) -> bool:
    current = StepState(step.status)
    ensure_step_transition(current, to)
    changed = s.connection().execute(
        _conditional(Step, ("run_id", "key"), values),
        {"w_run_id": step.run_id, "w_key": step.key, "w_status": current, **_v(values, to)},
    )
    if not changed.rowcount:
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


_STATEMENTS: dict[tuple[str, tuple[str, ...], frozenset[str], bool], Any] = {}


def _conditional(
    model: type[Run] | type[Step],
    keys: tuple[str, ...],
    values: dict[str, Any],
    *,
    status: bool = True,
) -> Any:
    """``UPDATE … SET status, <values> WHERE <keys> [AND status = :from]``, built once per
    shape with bind parameters (building statements cost more than running them)."""
    shape = (model.__name__, keys, frozenset(values), status)
    statement = _STATEMENTS.get(shape)
    if statement is None:
        table = model.__table__  # type: ignore[union-attr]
        where = [table.c[k] == bindparam(f"w_{k}") for k in keys]
        if status:
            where.append(table.c.status == bindparam("w_status"))
        names = [*values, "status"] if status else list(values)
        statement = update(table).where(*where).values({n: bindparam(f"v_{n}") for n in names})
        _STATEMENTS[shape] = statement
    return statement


def _v(values: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    params = {f"v_{k}": v for k, v in values.items()}
    if status is not None:
        params["v_status"] = status
    return params


def update_step(s: Session, step: Step, **values: Any) -> None:
    s.connection().execute(
        _conditional(Step, ("run_id", "key"), values, status=False),
        {"w_run_id": step.run_id, "w_key": step.key, **_v(values)},
    )
    committed(step, **values)


def open_checkpoint(
    s: Session, run: Run | RunRef, step_key: str | None, kind: str, prompt: str
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
    # The plan column is deferred: the engine keeps parsed plans per version.
    run = s.get(
        Run,
        run_id,
        populate_existing=True,
        with_for_update=True,
        options=[defer(Run.plan)],  # type: ignore[arg-type]
    )
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
