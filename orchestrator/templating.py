"""``${{ }}`` references in step inputs: finding them (to validate) and filling them in.

Two forms exist: ``${{ inputs.NAME }}`` and ``${{ steps.ID.outputs.PATH }}``, where PATH
is one or more dot-separated keys into the step's outputs (a number indexes a list), e.g.
``${{ steps.child.outputs.steps.build.stdout }}``. Anything else between ``${{`` and
``}}`` is malformed: ``bad_expressions`` lists it so the validator can report it, and
``substitute`` refuses it. Only strings inside values are looked at, never mapping keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from orchestrator.errors import TemplateError

__all__ = ["Reference", "bad_expressions", "has_template", "references", "substitute"]

# The inside may not contain "}}", so one match is always one expression.
_EXPRESSION = re.compile(r"\$\{\{((?:(?!\}\}).)*)\}\}", re.DOTALL)
_OPENER = "${{"
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY = r"[A-Za-z0-9_-]+"
_INPUT = re.compile(rf"inputs\.({_NAME})")
_STEP = re.compile(rf"steps\.({_NAME})\.outputs((?:\.{_KEY})+)")
_FORMS = "${{ inputs.NAME }} or ${{ steps.ID.outputs.NAME }}"


@dataclass(frozen=True)
class Reference:
    """One well-formed ``${{ }}`` reference; ``path`` is what follows ``outputs``."""

    kind: Literal["inputs", "steps"]
    name: str
    path: tuple[str, ...]
    raw: str

    def __str__(self) -> str:
        return self.raw


def references(value: object) -> list[Reference]:
    """Every well-formed reference in the strings of ``value``, in order of appearance."""
    found: list[Reference] = []
    for text in _strings(value):
        for match in _EXPRESSION.finditer(text):
            ref = _parse(match)
            if ref is not None:
                found.append(ref)
    return found


def bad_expressions(value: object) -> list[str]:
    """The raw text of every malformed ``${{ }}`` expression (or unclosed ``${{``)."""
    bad: list[str] = []
    for text in _strings(value):
        bad.extend(m.group(0) for m in _EXPRESSION.finditer(text) if _parse(m) is None)
        rest = _EXPRESSION.sub("", text)
        if _OPENER in rest:
            bad.append(rest[rest.index(_OPENER) :])
    return bad


def has_template(value: object) -> bool:
    """Whether any string in ``value`` contains ``${{`` (well-formed or not)."""
    return any(_OPENER in text for text in _strings(value))


def substitute(
    value: object,
    *,
    inputs: Mapping[str, object],
    steps: Mapping[str, Mapping[str, object]],
    quote: Callable[[str], str] | None = None,
) -> object:
    """A copy of ``value`` with every reference replaced.

    A string that is exactly one reference becomes the referenced value (its own type);
    a reference inside a longer string is rendered as text (JSON for mappings and lists,
    ``""`` for None, ``true``/``false`` for booleans). When ``quote`` is given (the engine
    passes ``shlex.quote`` for shell commands) every substituted value is rendered as text
    and quoted, whole-string references included, so that no input or output can ever
    become shell syntax. Raises TemplateError for an unknown input or step, a missing
    output, or a malformed expression.
    """
    if isinstance(value, str):
        return _substitute_text(value, _Context(inputs, steps, quote))
    if isinstance(value, Mapping):
        return {k: substitute(v, inputs=inputs, steps=steps, quote=quote) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, inputs=inputs, steps=steps, quote=quote) for v in value]
    return value


@dataclass(frozen=True)
class _Context:
    inputs: Mapping[str, object]
    steps: Mapping[str, Mapping[str, object]]
    quote: Callable[[str], str] | None


def _substitute_text(text: str, ctx: _Context) -> object:
    bad = bad_expressions(text)
    if bad:
        raise TemplateError(f"malformed expression {bad[0]!r}: write {_FORMS}")
    whole = _EXPRESSION.fullmatch(text)
    if whole is not None and ctx.quote is None:
        return _resolve(_require(whole), ctx)

    def render(match: re.Match[str]) -> str:
        rendered = _render(_resolve(_require(match), ctx))
        return ctx.quote(rendered) if ctx.quote is not None else rendered

    return _EXPRESSION.sub(render, text)


def _require(match: re.Match[str]) -> Reference:
    ref = _parse(match)
    if ref is None:  # bad_expressions() ran first; this keeps the types honest
        raise TemplateError(f"malformed expression {match.group(0)!r}: write {_FORMS}")
    return ref


def _resolve(ref: Reference, ctx: _Context) -> object:
    if ref.kind == "inputs":
        if ref.name not in ctx.inputs:
            raise TemplateError(
                f"{ref.raw}: there is no input {ref.name!r}; inputs are: {_names(ctx.inputs)}"
            )
        return ctx.inputs[ref.name]
    outputs = ctx.steps.get(ref.name)
    if outputs is None:
        ready = _names({k: v for k, v in ctx.steps.items() if v is not None})
        raise TemplateError(
            f"{ref.raw}: step {ref.name!r} has no outputs; steps with outputs are: {ready}"
        )
    return _walk(ref, outputs)


def _walk(ref: Reference, outputs: Mapping[str, object]) -> object:
    current: object = outputs
    for depth, key in enumerate(ref.path):
        where = ".".join(ref.path[:depth])
        owner = f"output {where!r} of step {ref.name!r}" if where else f"step {ref.name!r}"
        if isinstance(current, Mapping):
            if key not in current:
                noun = "key" if where else "output"
                raise TemplateError(
                    f"{ref.raw}: {owner} has no {noun} {key!r}; it has: {_names(current)}"
                )
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            kind = type(current).__name__
            raise TemplateError(f"{ref.raw}: {owner} is a {kind}, so it has no {key!r}")
    return current


def _render(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _parse(match: re.Match[str]) -> Reference | None:
    expr = match.group(1).strip()
    raw = match.group(0)
    if m := _INPUT.fullmatch(expr):
        return Reference(kind="inputs", name=m.group(1), path=(), raw=raw)
    if m := _STEP.fullmatch(expr):
        return Reference(
            kind="steps", name=m.group(1), path=tuple(m.group(2)[1:].split(".")), raw=raw
        )
    return None


def _strings(value: object) -> Iterator[str]:
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))


def _names(mapping: Mapping[str, object]) -> str:
    return ", ".join(sorted(str(k) for k in mapping)) or "(none)"
