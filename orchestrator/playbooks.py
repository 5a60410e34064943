"""Playbooks: reading them, checking them, ordering their steps.

``parse_plan`` turns a YAML document (or the planner's JSON) into a ``PlanSpec``, or
raises ``PlaybookError`` with every issue found, each naming its file, step and field.
The rules themselves, and pydantic's errors in plain words, live in ``validation.py``;
``validate`` runs the cross-step rules on a plan already built. ``render_markdown``
lives in ``plandoc.py`` and is re-exported here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from orchestrator.errors import Issue, NotFound, PlaybookError
from orchestrator.plan import MAX_STEPS, PlanSpec
from orchestrator.plandoc import render_markdown
from orchestrator.validation import (
    Draft,
    Node,
    check,
    describe,
    did_you_mean,
    in_file_order,
    reachable,
    shape,
    step_graph,
)

__all__ = [
    "MAX_FILE_BYTES",
    "load_playbook",
    "load_playbooks",
    "parse_plan",
    "render_markdown",
    "resolve_inputs",
    "topological_order",
    "upstream",
    "validate",
]

MAX_FILE_BYTES = 1024 * 1024
# YAML aliases can make a small file expand to billions of values; refuse before walking.
_MAX_VALUES = 100_000
_MAX_DEPTH = 64


# ---------------------------------------------------------------------------- parsing


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C one parses ~8x faster


def parse_plan(data: object, *, source: str, require_name: bool = False) -> PlanSpec:
    """Validate a plan document; raise PlaybookError listing every issue in it."""
    if not isinstance(data, Mapping):
        message = f"a plan must be a mapping with at least steps:, not {describe(data)}"
        raise PlaybookError([Issue(source, None, None, message)])
    draft = _draft_of(data, source)
    plan, issues = shape(data, draft)
    if require_name and data.get("name") is None:
        hint = "is required: give the playbook a unique slug, e.g. name: python-check"
        issues.append(Issue(source, None, "name", hint))
    if len(draft.nodes) <= MAX_STEPS:  # beyond that the shape error is enough
        issues.extend(check(draft))
    if issues or plan is None:
        raise PlaybookError(in_file_order(issues, draft))
    return plan


def validate(plan: PlanSpec, *, source: str = "plan") -> list[Issue]:
    """The cross-step issues of an already well-shaped plan (empty when it is valid)."""
    draft = Draft(source, frozenset(plan.inputs), plan.outputs, _plan_nodes(plan))
    return in_file_order(list(check(draft)), draft)


def _plan_nodes(plan: PlanSpec) -> tuple[Node, ...]:
    return tuple(
        Node(i, s.id, s.agent, s.with_, tuple(s.depends_on)) for i, s in enumerate(plan.steps)
    )


def _draft_of(data: Mapping[object, object], source: str) -> Draft:
    steps = data.get("steps")
    inputs = data.get("inputs")
    outputs = data.get("outputs")
    return Draft(
        source=source,
        inputs=frozenset(str(k) for k in inputs) if isinstance(inputs, Mapping) else frozenset(),
        outputs={str(k): v for k, v in outputs.items()} if isinstance(outputs, Mapping) else {},
        nodes=tuple(_node_of(i, s) for i, s in enumerate(steps if isinstance(steps, list) else [])),
    )


def _node_of(index: int, raw: object) -> Node:
    if not isinstance(raw, Mapping):
        return Node(index, f"#{index + 1}", None, {}, ())
    step_id, agent, deps = raw.get("id"), raw.get("agent"), raw.get("depends_on")
    return Node(
        index=index,
        id=step_id if isinstance(step_id, str) else f"#{index + 1}",
        agent=agent if isinstance(agent, str) else None,
        with_=raw.get("with", raw.get("with_", {})),
        depends_on=tuple(d for d in deps if isinstance(d, str)) if isinstance(deps, list) else (),
    )


# ---------------------------------------------------------------------------- files


def load_playbook(path: Path) -> PlanSpec:
    """Read and validate one playbook file (YAML, at most 1 MiB, ``name`` required)."""
    source = str(path)
    data = _read_yaml(path, source)
    return parse_plan(data, source=source, require_name=True)


def load_playbooks(
    folder: Path, load: Callable[[Path], PlanSpec] | None = None
) -> dict[str, PlanSpec]:
    """Every ``*.yaml``/``*.yml`` playbook in ``folder`` by name; all issues of all files.
    ``load`` reads one file (``load_playbook``, or a cache in front of it)."""
    load = load or load_playbook
    if not folder.is_dir():
        message = "is not a folder; point FIRSTMATE_PLAYBOOKS at the folder of playbooks"
        raise PlaybookError([Issue(str(folder), None, None, message)])
    plans: dict[str, PlanSpec] = {}
    where: dict[str, str] = {}
    issues: list[Issue] = []
    for path in _playbook_files(folder):
        try:
            plan = load(path)
        except PlaybookError as exc:
            issues.extend(exc.issues)
            continue
        name = plan.name or ""  # require_name makes it present
        if name in where:
            message = (
                f"name {name!r} is already used by {where[name]}; playbook names must be unique"
            )
            issues.append(Issue(str(path), None, "name", message))
        else:
            plans[name], where[name] = plan, str(path)
    if issues:
        raise PlaybookError(issues)
    return plans


def _playbook_files(folder: Path) -> list[Path]:
    found = [*folder.glob("*.yaml"), *folder.glob("*.yml")]
    return sorted(p for p in found if p.is_file() and not p.name.startswith("."))


def _fail(source: str, message: str) -> PlaybookError:
    return PlaybookError([Issue(source, None, None, message)])


def _read_yaml(path: Path, source: str) -> object:
    text = _read_text(path, source)
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader, in C when built)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise _fail(source, f"YAML syntax error{where}: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise _fail(source, f"YAML error: {exc}") from exc
    except RecursionError as exc:
        raise _fail(source, "is nested too deeply for YAML to read; flatten it") from exc
    if data is None:
        raise _fail(source, "is empty; a playbook needs at least name: and steps:")
    if not isinstance(data, dict):
        raise _fail(source, f"must be a mapping with name: and steps:, not {describe(data)}")
    problem = _too_large(data)
    if problem:
        raise _fail(source, problem)
    return data


def _read_text(path: Path, source: str) -> str:
    try:
        if not path.is_file():
            exists = path.exists()
            raise _fail(source, "is not a regular file" if exists else "no such file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _fail(source, f"cannot be read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(source, f"is larger than {MAX_FILE_BYTES} bytes (1 MiB); split the playbook")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(source, f"is not UTF-8 text (byte {exc.start})") from exc


def _too_large(data: object) -> str | None:
    """Why a loaded document is too big to walk (aliases expanded), or None."""
    stack: list[tuple[object, int]] = [(data, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > _MAX_VALUES:
            return f"expands to more than {_MAX_VALUES} values (YAML aliases?); simplify it"
        if depth > _MAX_DEPTH:
            return f"is nested more than {_MAX_DEPTH} levels deep; flatten it"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


# --------------------------------------------------------------------- using a plan


def resolve_inputs(plan: PlanSpec, given: Mapping[str, object]) -> dict[str, object]:
    """The run's inputs: ``given`` plus defaults; unknown or missing required → error."""
    issues: list[Issue] = []
    declared = ", ".join(plan.inputs) or "none"
    for name in given:
        if name not in plan.inputs:
            hint = did_you_mean(name, plan.inputs)
            message = f"{_title(plan)} takes no input {name!r}{hint}; it takes: {declared}"
            issues.append(Issue("inputs", None, name, message))
    resolved: dict[str, object] = {}
    for name, spec in plan.inputs.items():
        if name in given:
            resolved[name] = given[name]
        elif spec.required:
            message = f"input {name!r} is required by {_title(plan)}; give it a value"
            issues.append(Issue("inputs", None, name, message))
        else:
            resolved[name] = copy.deepcopy(spec.default)
    if issues:
        raise PlaybookError(issues)
    return resolved


def topological_order(plan: PlanSpec) -> list[str]:
    """Step ids so that every step comes after what it depends on; ties in file order."""
    graph = _plan_graph(plan)
    pending = [s.id for s in plan.steps]
    done: set[str] = set()
    order: list[str] = []
    while pending:
        ready = next((step for step in pending if done.issuperset(graph[step])), None)
        if ready is None:
            message = f"steps {', '.join(pending)} cannot be ordered: their depends_on form a cycle"
            raise PlaybookError([Issue("plan", None, "depends_on", message)])
        pending.remove(ready)
        done.add(ready)
        order.append(ready)
    return order


def upstream(plan: PlanSpec, step_id: str) -> set[str]:
    """Every step that ``step_id`` depends on, directly or through other steps."""
    graph = _plan_graph(plan)
    if step_id not in graph:
        raise NotFound(f"no step {step_id!r} in {_title(plan)}; steps are: {', '.join(graph)}")
    return reachable(graph, step_id) - {step_id}


def _plan_graph(plan: PlanSpec) -> dict[str, tuple[str, ...]]:
    return step_graph(_plan_nodes(plan))


def _title(plan: PlanSpec) -> str:
    return f"playbook {plan.name!r}" if plan.name else "the plan"
