"""Playbooks: reading them, validating every rule, ordering their steps, showing them.

``parse_plan`` turns a YAML document (or the planner's JSON) into a ``PlanSpec``, or
raises ``PlaybookError`` with every issue found, each naming its file, step and field.
The shape comes from the pydantic models in ``plan.py``; the rules that span steps
(known agents, inputs valid for the agent, unique ids, dependencies that exist and form
no cycle, references only to declared inputs and upstream steps) live here, in
``validate``, and run even when the shape is wrong, so one pass reports everything.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.errors import Issue, NotFound, PlaybookError
from orchestrator.kinds import KINDS, built_kinds
from orchestrator.plan import MAX_STEPS, SLUG, STEP_ID, InputSpec, PlanSpec, RetrySpec, StepSpec
from orchestrator.templating import Reference, bad_expressions, has_template, references

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
_FORMS = "${{ inputs.NAME }} or ${{ steps.ID.outputs.NAME }}"


@dataclass(frozen=True)
class _Node:
    """What the cross-step rules need of a step, read leniently from a raw document."""

    index: int
    id: str  # "#N" (1-based position) when the step has no usable id
    agent: str | None
    with_: object
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class _Draft:
    source: str
    inputs: frozenset[str]
    outputs: Mapping[str, object]
    nodes: tuple[_Node, ...]

    def issue(self, node: _Node | None, field: str | None, message: str) -> Issue:
        return Issue(self.source, node.id if node else None, field, message)


# ---------------------------------------------------------------------------- parsing


def parse_plan(data: object, *, source: str, require_name: bool = False) -> PlanSpec:
    """Validate a plan document; raise PlaybookError listing every issue in it."""
    if not isinstance(data, Mapping):
        message = f"a plan must be a mapping with at least steps:, not {_describe(data)}"
        raise PlaybookError([Issue(source, None, None, message)])
    draft = _draft_of(data, source)
    plan, issues = _shape(data, draft)
    if require_name and data.get("name") is None:
        hint = "is required: give the playbook a unique slug, e.g. name: python-check"
        issues.append(Issue(source, None, "name", hint))
    if len(draft.nodes) <= MAX_STEPS:  # beyond that the shape error is enough
        issues.extend(_check(draft))
    if issues or plan is None:
        raise PlaybookError(_in_file_order(issues, draft))
    return plan


def validate(plan: PlanSpec, *, source: str = "plan") -> list[Issue]:
    """The cross-step issues of an already well-shaped plan (empty when it is valid)."""
    draft = _Draft(source, frozenset(plan.inputs), plan.outputs, _plan_nodes(plan))
    return _in_file_order(list(_check(draft)), draft)


def _plan_nodes(plan: PlanSpec) -> tuple[_Node, ...]:
    return tuple(
        _Node(i, s.id, s.agent, s.with_, tuple(s.depends_on)) for i, s in enumerate(plan.steps)
    )


def _draft_of(data: Mapping[object, object], source: str) -> _Draft:
    steps = data.get("steps")
    inputs = data.get("inputs")
    outputs = data.get("outputs")
    return _Draft(
        source=source,
        inputs=frozenset(str(k) for k in inputs) if isinstance(inputs, Mapping) else frozenset(),
        outputs={str(k): v for k, v in outputs.items()} if isinstance(outputs, Mapping) else {},
        nodes=tuple(_node_of(i, s) for i, s in enumerate(steps if isinstance(steps, list) else [])),
    )


def _node_of(index: int, raw: object) -> _Node:
    if not isinstance(raw, Mapping):
        return _Node(index, f"#{index + 1}", None, {}, ())
    step_id, agent, deps = raw.get("id"), raw.get("agent"), raw.get("depends_on")
    return _Node(
        index=index,
        id=step_id if isinstance(step_id, str) else f"#{index + 1}",
        agent=agent if isinstance(agent, str) else None,
        with_=raw.get("with", raw.get("with_", {})),
        depends_on=tuple(d for d in deps if isinstance(d, str)) if isinstance(deps, list) else (),
    )


def _shape(data: Mapping[object, object], draft: _Draft) -> tuple[PlanSpec | None, list[Issue]]:
    try:
        return PlanSpec.model_validate(dict(data)), []
    except ValidationError as exc:
        return None, [_shape_issue(err, draft) for err in exc.errors()]


def _shape_issue(err: ErrorDetails, draft: _Draft) -> Issue:
    loc = err["loc"]
    node = None
    if (
        len(loc) >= 2
        and loc[0] == "steps"
        and isinstance(loc[1], int)
        and loc[1] < len(draft.nodes)
    ):
        node, loc = draft.nodes[loc[1]], loc[2:]
    field = ".".join(str(part) for part in loc) or None
    if err["type"] == "extra_forbidden":
        known = _fields(_model_at(err["loc"][:-1]))
        name = str(err["loc"][-1])
        return draft.issue(
            node,
            field,
            f"unknown field{_did_you_mean(name, known)}; allowed here: {', '.join(known)}",
        )
    return draft.issue(node, field, _plain(err))


def _model_at(loc: Sequence[int | str]) -> type[BaseModel]:
    if len(loc) >= 2 and loc[0] == "inputs":
        return InputSpec
    if len(loc) >= 2 and loc[0] == "steps":
        return RetrySpec if tuple(loc[2:]) == ("retry",) else StepSpec
    return PlanSpec


def _fields(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


_BOUNDS = {
    "less_than_equal": ("at most", "le"),
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than": ("less than", "lt"),
}
_TYPES = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}
_PATTERNS = {
    STEP_ID: "must start with a letter or _ and hold only letters, digits, _ and - "
    "(at most 63 characters)",
    SLUG: "must be a slug: lowercase letters, digits, _ and -, starting with a letter or "
    "digit (at most 63 characters)",
}


def _plain(err: ErrorDetails) -> str:
    """A pydantic error in plain words, with the offending value where it helps."""
    kind, ctx, got = err["type"], err.get("ctx", {}), err["input"]
    if kind == "missing":
        return "is required"
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        limit = ctx[key]
        shown = f"{limit:g}" if isinstance(limit, float) else str(limit)
        return f"must be {words} {shown} (got {_describe(got)})"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]} (got {_describe(got)})"
    if kind == "string_pattern_mismatch":
        return f"{_PATTERNS.get(ctx['pattern'], 'must match ' + ctx['pattern'])} (got {got!r})"
    if kind == "literal_error":
        return f"must be {ctx['expected']} (got {_describe(got)})"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length", ctx.get("max_length"))
        return f"must have {bound} {limit} item(s) (got {len(got)})"
    msg = err["msg"]
    return msg[:1].lower() + msg[1:]


# ------------------------------------------------------------------ cross-step rules


def _check(draft: _Draft) -> Iterator[Issue]:
    yield from _agent_issues(draft)
    yield from _id_issues(draft)
    yield from _dependency_issues(draft)
    yield from _cycle_issues(draft)
    yield from _reference_issues(draft)
    yield from _output_issues(draft)


def _agent_issues(draft: _Draft) -> Iterator[Issue]:
    built = ", ".join(built_kinds())
    later = ", ".join(sorted(k for k, model in KINDS.items() if model is None))
    for node in draft.nodes:
        if node.agent is None:
            continue  # missing or not text: the shape check said so
        if node.agent not in KINDS:
            hint = _did_you_mean(node.agent, list(KINDS))
            message = (
                f"unknown agent {node.agent!r}{hint}; known agents: {built} "
                f"(not available yet: {later})"
            )
            yield draft.issue(node, "agent", message)
        elif (model := KINDS[node.agent]) is None:
            message = f"agent {node.agent!r} is not available yet; use one of: {built}"
            yield draft.issue(node, "agent", message)
        elif isinstance(node.with_, Mapping):
            yield from _with_issues(draft, node, node.with_, model)


def _with_issues(
    draft: _Draft, node: _Node, given: Mapping[object, object], model: type[BaseModel]
) -> Iterator[Issue]:
    templated = {key for key, value in given.items() if has_template(value)}
    try:
        model.model_validate(dict(given))
    except ValidationError as exc:
        for err in exc.errors():
            key = err["loc"][0] if err["loc"] else None
            field = "with." + ".".join(str(p) for p in err["loc"]) if key is not None else "with"
            if err["type"] == "extra_forbidden":
                known = _fields(model)
                hint = _did_you_mean(str(key), known)
                takes = ", ".join(known) or "nothing"
                message = f"agent {node.agent!r} takes no input {key!r}{hint}; it takes: {takes}"
                yield draft.issue(node, field, message)
            elif key not in templated or err["type"] == "missing":
                # a templated value's type is only known at run time
                yield draft.issue(node, field, _plain(err))


def _id_issues(draft: _Draft) -> Iterator[Issue]:
    first: dict[str, int] = {}
    for node in draft.nodes:
        if node.id in first:
            message = (
                f"duplicate step id: steps {first[node.id] + 1} and {node.index + 1} "
                f"are both {node.id!r}; give each step its own id"
            )
            yield draft.issue(node, "id", message)
        else:
            first[node.id] = node.index


def _dependency_issues(draft: _Draft) -> Iterator[Issue]:
    ids = _step_ids(draft)
    for node in draft.nodes:
        for dep in node.depends_on:
            if dep == node.id:
                yield draft.issue(
                    node, "depends_on", f"depends on itself; remove {dep!r} from depends_on"
                )
            elif dep not in ids:
                hint = _did_you_mean(dep, ids)
                message = (
                    f"depends on {dep!r}, which is not a step{hint}; steps are: {', '.join(ids)}"
                )
                yield draft.issue(node, "depends_on", message)


def _cycle_issues(draft: _Draft) -> Iterator[Issue]:
    graph = _graph(draft.nodes)
    reach = {step: _reachable(graph, step) for step in graph}
    reported: set[str] = set()
    for node in draft.nodes:
        start = node.id
        if start in reported or start not in reach[start]:
            continue
        component = {s for s in reach[start] if start in reach[s]}
        reported |= component
        cycle = _shortest_cycle(graph, start, component)
        text = " → ".join([*cycle, start])
        yield draft.issue(node, "depends_on", f"cycle: {text}; remove one of these dependencies")


def _shortest_cycle(graph: Mapping[str, Sequence[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path start → … → x with x depending on start (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        step = queue.popleft()
        if start in graph[step]:
            path = [step]
            while path[-1] != start:
                path.append(came_from[path[-1]])
            return path[::-1]
        for dep in graph[step]:
            if dep in within and dep not in came_from and dep != start:
                came_from[dep] = step
                queue.append(dep)
    return [start]  # unreachable for a real cycle


def _reference_issues(draft: _Draft) -> Iterator[Issue]:
    graph = _graph(draft.nodes)
    for node in draft.nodes:
        if not isinstance(node.with_, Mapping):
            continue
        above = _reachable(graph, node.id) - {node.id}
        for key, value in node.with_.items():
            field = f"with.{key}"
            for bad in bad_expressions(value):
                yield draft.issue(node, field, f"malformed expression {bad!r}: write {_FORMS}")
            for ref in references(value):
                problem = _reference_problem(ref, draft, node.id, above)
                if problem:
                    yield draft.issue(node, field, problem)


def _reference_problem(
    ref: Reference, draft: _Draft, here: str | None, above: set[str]
) -> str | None:
    if ref.kind == "inputs":
        if ref.name in draft.inputs:
            return None
        declared = "declared: " + (", ".join(sorted(draft.inputs)) or "none")
        return f"{ref.raw}: no input {ref.name!r} is declared; add it under inputs: ({declared})"
    ids = _step_ids(draft)
    if ref.name == here:
        return f"{ref.raw}: a step cannot use its own outputs"
    if ref.name not in ids:
        return f"{ref.raw}: there is no step {ref.name!r}{_did_you_mean(ref.name, ids)}"
    if here is not None and ref.name not in above:
        return (
            f"{ref.raw}: step {ref.name!r} is not upstream of {here!r}; "
            f"add {ref.name!r} to its depends_on"
        )
    return None


def _output_issues(draft: _Draft) -> Iterator[Issue]:
    for key, value in draft.outputs.items():
        field = f"outputs.{key}"
        for bad in bad_expressions(value):
            yield draft.issue(None, field, f"malformed expression {bad!r}: write {_FORMS}")
        for ref in references(value):
            problem = _reference_problem(ref, draft, None, set())
            if problem:
                yield draft.issue(None, field, problem)


def _step_ids(draft: _Draft) -> list[str]:
    """The steps' ids in file order, each once (positional "#N" stand-ins left out)."""
    return list(dict.fromkeys(n.id for n in draft.nodes if not n.id.startswith("#")))


def _graph(nodes: Iterable[_Node]) -> dict[str, tuple[str, ...]]:
    """Step id → the steps it depends on (known ones, no self-loops, first id wins)."""
    ids = {node.id for node in nodes}
    graph: dict[str, tuple[str, ...]] = {}
    for node in nodes:
        if node.id not in graph:
            deps = dict.fromkeys(d for d in node.depends_on if d in ids and d != node.id)
            graph[node.id] = tuple(deps)
    return graph


def _reachable(graph: Mapping[str, Sequence[str]], start: str) -> set[str]:
    """Every step reachable from ``start`` through depends_on (start only if in a cycle)."""
    seen: set[str] = set()
    stack = list(graph.get(start, ()))
    while stack:
        step = stack.pop()
        if step not in seen:
            seen.add(step)
            stack.extend(graph.get(step, ()))
    return seen


def _in_file_order(issues: list[Issue], draft: _Draft) -> list[Issue]:
    order: dict[str | None, int] = {None: -1}
    for node in draft.nodes:
        order.setdefault(node.id, node.index)
    return sorted(issues, key=lambda issue: order.get(issue.step, -1))


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------- files


def load_playbook(path: Path) -> PlanSpec:
    """Read and validate one playbook file (YAML, at most 1 MiB, ``name`` required)."""
    source = str(path)
    data = _read_yaml(path, source)
    return parse_plan(data, source=source, require_name=True)


def load_playbooks(folder: Path) -> dict[str, PlanSpec]:
    """Every ``*.yaml``/``*.yml`` playbook in ``folder`` by name; all issues of all files."""
    if not folder.is_dir():
        message = "is not a folder; point FIRSTMATE_PLAYBOOKS at the folder of playbooks"
        raise PlaybookError([Issue(str(folder), None, None, message)])
    plans: dict[str, PlanSpec] = {}
    where: dict[str, str] = {}
    issues: list[Issue] = []
    for path in _playbook_files(folder):
        try:
            plan = load_playbook(path)
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
        data = yaml.safe_load(text)
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
        raise _fail(source, f"must be a mapping with name: and steps:, not {_describe(data)}")
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
            hint = _did_you_mean(name, plan.inputs)
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
    return _reachable(graph, step_id) - {step_id}


def _plan_graph(plan: PlanSpec) -> dict[str, tuple[str, ...]]:
    return _graph(_plan_nodes(plan))


def _title(plan: PlanSpec) -> str:
    return f"playbook {plan.name!r}" if plan.name else "the plan"


# ------------------------------------------------------------------------- showing


def render_markdown(plan: PlanSpec, inputs: Mapping[str, object] | None = None) -> str:
    """The plan as Markdown for people: inputs, then each step in the order it runs."""
    lines = [f"# {plan.name or 'Plan'}", ""]
    if plan.description:
        lines += [plan.description, ""]
    if plan.approvers:
        lines += [f"Approvers: {', '.join(plan.approvers)}", ""]
    lines += _inputs_section(plan, inputs)
    policy = "pauses the run for a decision" if plan.on_failure == "pause" else "fails the run"
    lines += ["## Steps", ""]
    lines += [
        f"Up to {plan.max_parallel} steps run at once; a step that fails after its "
        f"retries {policy}.",
        "",
    ]
    for number, step_id in enumerate(topological_order(plan), 1):
        lines += _step_section(number, plan.step(step_id))
    if plan.outputs:
        lines += ["## Outputs", ""]
        lines += [f"- `{key}`: {_code(value)}" for key, value in plan.outputs.items()] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _inputs_section(plan: PlanSpec, inputs: Mapping[str, object] | None) -> list[str]:
    if not plan.inputs:
        return []
    lines = ["## Inputs", ""]
    for name, spec in plan.inputs.items():
        if inputs is not None and name in inputs:
            value = _code(_text(inputs[name]))
        elif spec.required:
            value = "required"
        else:
            value = f"default {_code(_text(spec.default))}"
        about = f" — {spec.description}" if spec.description else ""
        lines.append(f"- `{name}`: {value}{about}")
    return [*lines, ""]


def _step_section(number: int, step: StepSpec) -> list[str]:
    lines = [f"### {number}. {step.id}", ""]
    if step.description:
        lines += [step.description, ""]
    deps = ", ".join(f"`{d}`" for d in step.depends_on) or "nothing"
    approval = "required before it runs" if step.approval == "required" else "not needed"
    retry = step.retry
    retries = (
        f"up to {retry.max} more attempt(s), waiting {retry.backoff_s:g} s, doubling "
        f"(at most {retry.max_backoff_s:g} s)"
        if retry.max
        else "none"
    )
    lines += [
        f"- Agent: `{step.agent}`",
        f"- Depends on: {deps}",
        f"- Approval: {approval}",
        f"- Retries: {retries}",
        f"- Timeout: {step.timeout_s:g} s",
        "",
    ]
    if step.with_:
        lines += [*_fenced(_yaml_text(step.with_)), ""]
    return lines


def _yaml_text(value: Mapping[str, object]) -> str:
    try:
        return yaml.safe_dump(dict(value), sort_keys=False, allow_unicode=True, width=100)
    except yaml.YAMLError:  # a plan built in code may hold values YAML cannot show
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _fence_for(text: str, char: str, least: int) -> str:
    """A run of ``char`` longer than any run inside ``text``, so it cannot be closed early."""
    longest = max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)
    return char * max(least, longest + 1)


def _code(text: str) -> str:
    one_line = " ".join(text.splitlines())
    fence = _fence_for(one_line, "`", 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


def _fenced(text: str) -> list[str]:
    fence = _fence_for(text, "`", 3)
    return [f"{fence}yaml", text.rstrip("\n"), fence]
