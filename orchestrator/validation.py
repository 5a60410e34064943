"""Validation: the rules every plan must follow, and pydantic's errors in plain words.

The shape of a plan comes from the pydantic models in ``plan.py``; ``shape`` runs them
and turns their errors into ``Issue``s that name the file, step and field. The rules
that span steps (known agents, inputs valid for the agent, unique ids, dependencies that
exist and form no cycle, references only to declared inputs and upstream steps) are
``check``. Both read a ``Draft``, a lenient view of the document, so they run even when
the shape is wrong and one pass reports everything; ``playbooks.parse_plan`` builds the
draft and ``playbooks.validate`` does the same for a plan already built.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.allowlist import OPAQUE
from orchestrator.errors import Issue
from orchestrator.kinds import KINDS, built_kinds
from orchestrator.plan import COMMAND, SLUG, STEP_ID, InputSpec, PlanSpec, RetrySpec, StepSpec
from orchestrator.templating import Reference, bad_expressions, has_template, references

__all__ = [
    "Draft",
    "Node",
    "check",
    "describe",
    "did_you_mean",
    "in_file_order",
    "reachable",
    "shape",
    "step_graph",
]

_FORMS = "${{ inputs.NAME }} or ${{ steps.ID.outputs.NAME }}"


@dataclass(frozen=True)
class Node:
    """What the cross-step rules need of a step, read leniently from a raw document."""

    index: int
    id: str  # "#N" (1-based position) when the step has no usable id
    agent: str | None
    with_: object
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class Draft:
    """A plan document as the rules see it: its source, inputs, outputs and steps."""

    source: str
    inputs: frozenset[str]
    outputs: Mapping[str, object]
    nodes: tuple[Node, ...]

    def issue(self, node: Node | None, field: str | None, message: str) -> Issue:
        """An issue of this document, at ``node`` (or the whole plan) and ``field``."""
        return Issue(self.source, node.id if node else None, field, message)


# ------------------------------------------------------------ pydantic errors, in words


def shape(data: Mapping[object, object], draft: Draft) -> tuple[PlanSpec | None, list[Issue]]:
    """The plan when ``data`` is well shaped, else None and pydantic's errors as issues."""
    issues = list(_opaque_issues(data.get("allowlist"), draft))
    try:
        plan = PlanSpec.model_validate(dict(data))
    except ValidationError as exc:
        return None, [*(_shape_issue(err, draft) for err in exc.errors()), *issues]
    return plan, issues


def _opaque_issues(allowlist: object, draft: Draft) -> Iterator[Issue]:
    """A playbook's ``allowlist:`` entries that would allow every command (``sh``,
    ``xargs``…); read from the raw document, so they are reported with shape errors."""
    if not isinstance(allowlist, list):
        return
    for i, name in enumerate(allowlist):
        if name in OPAQUE:
            why = f"{name!r} runs whatever it is given, so allowing it would allow every"
            yield draft.issue(None, f"allowlist.{i}", f"{why} command; name those instead")


def _shape_issue(err: ErrorDetails, draft: Draft) -> Issue:
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
            f"unknown field{did_you_mean(name, known)}; allowed here: {', '.join(known)}",
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
    COMMAND: "must be a command's name: letters, digits, _ . + and -, no spaces or"
    " paths (at most 63 characters)",
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
        return f"must be {words} {shown} (got {describe(got)})"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]} (got {describe(got)})"
    if kind == "string_pattern_mismatch":
        return f"{_PATTERNS.get(ctx['pattern'], 'must match ' + ctx['pattern'])} (got {got!r})"
    if kind == "literal_error":
        return f"must be {ctx['expected']} (got {describe(got)})"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length", ctx.get("max_length"))
        return f"must have {bound} {limit} item(s) (got {len(got)})"
    msg = err["msg"]
    return msg[:1].lower() + msg[1:]


# ------------------------------------------------------------------ cross-step rules


def check(draft: Draft) -> Iterator[Issue]:
    """Every issue the cross-step rules find in ``draft``, rule by rule."""
    yield from _agent_issues(draft)
    yield from _id_issues(draft)
    yield from _dependency_issues(draft)
    yield from _cycle_issues(draft)
    yield from _reference_issues(draft)
    yield from _output_issues(draft)


def _agent_issues(draft: Draft) -> Iterator[Issue]:
    built = ", ".join(built_kinds())
    later = ", ".join(sorted(k for k, model in KINDS.items() if model is None))
    for node in draft.nodes:
        if node.agent is None:
            continue  # missing or not text: the shape check said so
        if node.agent not in KINDS:
            hint = did_you_mean(node.agent, list(KINDS))
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
    draft: Draft, node: Node, given: Mapping[object, object], model: type[BaseModel]
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
                hint = did_you_mean(str(key), known)
                takes = ", ".join(known) or "nothing"
                message = f"agent {node.agent!r} takes no input {key!r}{hint}; it takes: {takes}"
                yield draft.issue(node, field, message)
            elif key not in templated or err["type"] == "missing":
                # a templated value's type is only known at run time
                yield draft.issue(node, field, _plain(err))


def _id_issues(draft: Draft) -> Iterator[Issue]:
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


def _dependency_issues(draft: Draft) -> Iterator[Issue]:
    ids = _step_ids(draft)
    for node in draft.nodes:
        for dep in node.depends_on:
            if dep == node.id:
                yield draft.issue(
                    node, "depends_on", f"depends on itself; remove {dep!r} from depends_on"
                )
            elif dep not in ids:
                hint = did_you_mean(dep, ids)
                message = (
                    f"depends on {dep!r}, which is not a step{hint}; steps are: {', '.join(ids)}"
                )
                yield draft.issue(node, "depends_on", message)


def _cycle_issues(draft: Draft) -> Iterator[Issue]:
    graph = step_graph(draft.nodes)
    reach = {step: reachable(graph, step) for step in graph}
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


def _reference_issues(draft: Draft) -> Iterator[Issue]:
    graph = step_graph(draft.nodes)
    for node in draft.nodes:
        if not isinstance(node.with_, Mapping):
            continue
        above = reachable(graph, node.id) - {node.id}
        for key, value in node.with_.items():
            field = f"with.{key}"
            for bad in bad_expressions(value):
                yield draft.issue(node, field, f"malformed expression {bad!r}: write {_FORMS}")
            for ref in references(value):
                problem = _reference_problem(ref, draft, node.id, above)
                if problem:
                    yield draft.issue(node, field, problem)


def _reference_problem(
    ref: Reference, draft: Draft, here: str | None, above: set[str]
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
        return f"{ref.raw}: there is no step {ref.name!r}{did_you_mean(ref.name, ids)}"
    if here is not None and ref.name not in above:
        return (
            f"{ref.raw}: step {ref.name!r} is not upstream of {here!r}; "
            f"add {ref.name!r} to its depends_on"
        )
    return None


def _output_issues(draft: Draft) -> Iterator[Issue]:
    for key, value in draft.outputs.items():
        field = f"outputs.{key}"
        for bad in bad_expressions(value):
            yield draft.issue(None, field, f"malformed expression {bad!r}: write {_FORMS}")
        for ref in references(value):
            problem = _reference_problem(ref, draft, None, set())
            if problem:
                yield draft.issue(None, field, problem)


def _step_ids(draft: Draft) -> list[str]:
    """The steps' ids in file order, each once (positional "#N" stand-ins left out)."""
    return list(dict.fromkeys(n.id for n in draft.nodes if not n.id.startswith("#")))


def step_graph(nodes: Iterable[Node]) -> dict[str, tuple[str, ...]]:
    """Step id → the steps it depends on (known ones, no self-loops, first id wins)."""
    ids = {node.id for node in nodes}
    graph: dict[str, tuple[str, ...]] = {}
    for node in nodes:
        if node.id not in graph:
            deps = dict.fromkeys(d for d in node.depends_on if d in ids and d != node.id)
            graph[node.id] = tuple(deps)
    return graph


def reachable(graph: Mapping[str, Sequence[str]], start: str) -> set[str]:
    """Every step reachable from ``start`` through depends_on (start only if in a cycle)."""
    seen: set[str] = set()
    stack = list(graph.get(start, ()))
    while stack:
        step = stack.pop()
        if step not in seen:
            seen.add(step)
            stack.extend(graph.get(step, ()))
    return seen


def in_file_order(issues: list[Issue], draft: Draft) -> list[Issue]:
    """``issues`` sorted by their step's place in the file; plan-wide ones first."""
    order: dict[str | None, int] = {None: -1}
    for node in draft.nodes:
        order.setdefault(node.id, node.index)
    return sorted(issues, key=lambda issue: order.get(issue.step, -1))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A " (did you mean …?)" hint naming the choice closest to ``name``, or ""."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(value: object) -> str:
    """A short description of a wrong value for a message: its kind, or its repr."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
