"""The plan document: a plan shown as Markdown for people, steps in the order they run."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import yaml

from orchestrator.plan import PlanSpec, StepSpec

__all__ = ["render_markdown"]


def render_markdown(plan: PlanSpec, inputs: Mapping[str, object] | None = None) -> str:
    """The plan as Markdown for people: inputs, then each step in the order it runs."""
    # Imported here: playbooks re-exports render_markdown, so a top-level import would be
    # circular (plandoc <-> playbooks).
    from orchestrator.playbooks import topological_order

    lines = [f"# {plan.name or 'Plan'}", ""]
    if plan.description:
        lines += [plan.description, ""]
    if plan.approvers:
        lines += [f"Approvers: {', '.join(plan.approvers)}", ""]
    if plan.allowlist:
        allowed = ", ".join(f"`{x}`" for x in plan.allowlist)
        lines += [f"A model may also run: {allowed}", ""]
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
