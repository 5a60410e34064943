"""Playbooks: every validation rule, loading files and folders, inputs, order, Markdown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import Issue, NotFound, PlaybookError
from orchestrator.plan import PlanSpec, StepSpec
from orchestrator.playbooks import (
    MAX_FILE_BYTES,
    load_playbook,
    load_playbooks,
    parse_plan,
    render_markdown,
    resolve_inputs,
    topological_order,
    upstream,
    validate,
)

# The example playbook of CONTRACTS.md, verbatim.
CONTRACT_EXAMPLE = """\
name: python-check                 # unique slug
description: Lint and test a Python repository
approvers: [U0123ABC, S0456DEF]    # Slack users / user groups (optional; default: anyone in the channel)
inputs:
  target: {default: "."}
steps:
  - id: lint
    agent: shell
    with: {command: "python3 -m compileall -q ${{ inputs.target }}"}
  - id: test
    agent: shell
    depends_on: [lint]
    with: {command: "python3 -m pytest -q"}
    retry: {max: 2, backoff_s: 1}
    timeout_s: 120
  - id: report
    agent: shell
    depends_on: [test]
    approval: required             # a checkpoint before this step runs
    with: {command: "echo tests said: ${{ steps.test.outputs.stdout }}"}
"""


def step(step_id: str, *deps: str, agent: str = "echo", **fields: object) -> dict[str, object]:
    """A raw step mapping; ``with_`` in fields becomes ``with``."""
    raw: dict[str, object] = {"id": step_id, "agent": agent, "depends_on": list(deps)}
    if "with_" in fields:
        raw["with"] = fields.pop("with_")
    return {**raw, **fields}


def doc(*steps: dict[str, object], **fields: object) -> dict[str, object]:
    return {"name": "demo", **fields, "steps": list(steps)}


def issues_of(data: object, *, require_name: bool = False) -> list[Issue]:
    with pytest.raises(PlaybookError) as caught:
        parse_plan(data, source="pb.yaml", require_name=require_name)
    return caught.value.issues


def only_issue(data: object, *, require_name: bool = False) -> Issue:
    issues = issues_of(data, require_name=require_name)
    assert len(issues) == 1, issues
    return issues[0]


def where(issues: list[Issue]) -> set[tuple[str | None, str | None]]:
    return {(i.step, i.field) for i in issues}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------ the contract


def test_the_contract_example_parses(tmp_path: Path) -> None:
    plan = load_playbook(write(tmp_path, "python-check.yaml", CONTRACT_EXAMPLE))
    assert plan.name == "python-check"
    assert [s.id for s in plan.steps] == ["lint", "test", "report"]
    assert plan.step("test").retry.max == 2
    assert plan.step("report").approval == "required"
    assert plan.step("lint").with_ == {"command": "python3 -m compileall -q ${{ inputs.target }}"}
    assert plan.inputs["target"].default == "."


def test_a_file_with_four_problems_reports_all_four(tmp_path: Path) -> None:
    text = CONTRACT_EXAMPLE.replace("max: 2", "max: 50")
    text = text.replace("id: lint\n    agent: shell", "id: lint\n    agent: shel")
    text = text.replace("approval: required", "approval: requird")
    text = text.replace("inputs.target", "inputs.targt")
    path = write(tmp_path, "broken.yaml", text)
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    issues = caught.value.issues
    assert [(i.file, i.step, i.field) for i in issues] == [
        (str(path), "lint", "agent"),
        (str(path), "lint", "with.command"),
        (str(path), "test", "retry.max"),
        (str(path), "report", "approval"),
    ]
    agent, reference, retry, approval = (i.message for i in issues)
    assert agent.startswith("unknown agent 'shel' (did you mean 'shell'?)")
    assert "no input 'targt' is declared" in reference
    assert retry == "must be at most 10 (got 50)"
    assert approval == "must be 'required' or 'none' (got 'requird')"


# --------------------------------------------------------------------------- the shape


def test_pydantic_locations_become_step_and_field() -> None:
    issue = only_issue(doc(step("a"), step("test", retry={"max": 11})))
    assert (issue.step, issue.field, issue.message) == (
        "test",
        "retry.max",
        "must be at most 10 (got 11)",
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"timeout_s": 0}, "timeout_s", "must be more than 0 (got 0)"),
        ({"timeout_s": "soon"}, "timeout_s", "must be a number (got 'soon')"),
        ({"retry": {"backoff_s": -1}}, "retry.backoff_s", "must be at least 0 (got -1)"),
        ({"approval": "maybe"}, "approval", "must be 'required' or 'none' (got 'maybe')"),
        ({"depends_on": "x"}, "depends_on", "must be a list (got 'x')"),
        ({"with": "echo hi"}, "with", "must be a mapping (got 'echo hi')"),
        ({"retry": {"max": 1.5}}, "retry.max", "must be a whole number (got 1.5)"),
    ],
)
def test_shape_errors_are_in_plain_words(
    fields: dict[str, object], field: str, message: str
) -> None:
    issue = only_issue(doc({**step("a"), **fields}))
    assert (issue.step, issue.field, issue.message) == ("a", field, message)


def test_an_unknown_field_suggests_the_right_one_and_lists_the_allowed() -> None:
    issue = only_issue(doc(step("a", retires=2)))
    assert (issue.step, issue.field) == ("a", "retires")
    assert issue.message.startswith("unknown field (did you mean 'retry'?); allowed here: id,")
    issue = only_issue(doc(step("a", retry={"maxx": 2})))
    assert issue.field == "retry.maxx"
    assert issue.message.endswith("allowed here: max, backoff_s, max_backoff_s")


def test_a_step_without_an_id_is_named_by_its_position() -> None:
    issue = only_issue(doc(step("a"), {"agent": "echo"}))
    assert (issue.step, issue.field, issue.message) == ("#2", "id", "is required")


def test_a_bad_step_id_and_a_bad_name_say_what_is_allowed() -> None:
    issues = issues_of(doc(step("has space"), name="Has Caps"))
    assert where(issues) == {(None, "name"), ("has space", "id")}
    assert issues[0].message.startswith("must be a slug: lowercase letters")
    assert issues[1].message.startswith("must start with a letter or _")


def test_a_playbook_allowlist_names_commands_and_is_shown_with_the_plan() -> None:
    plan = parse_plan(doc(step("a"), allowlist=["make", "npm"]), source="pb.yaml")
    assert plan.allowlist == ["make", "npm"]
    assert "A model may also run: `make`, `npm`" in render_markdown(plan)
    bad = ["make test", "bash", "/usr/bin/rm", "env"]
    issues = {i.field: i.message for i in issues_of(doc(step("a"), allowlist=bad))}
    assert sorted(issues) == ["allowlist.0", "allowlist.1", "allowlist.2", "allowlist.3"]
    assert issues["allowlist.0"].startswith("must be a command's name: letters, digits")
    assert issues["allowlist.2"].endswith("(got '/usr/bin/rm')")
    assert issues["allowlist.1"].startswith("'bash' runs whatever it is given, so allowing")
    assert issues["allowlist.3"].startswith("'env' runs whatever")


def test_a_plan_needs_steps() -> None:
    assert only_issue({"name": "x", "steps": []}).message.startswith("must have at least 1 item")
    issue = only_issue({"name": "x"})
    assert (issue.field, issue.message) == ("steps", "is required")


def test_a_document_that_is_not_a_mapping_is_one_issue() -> None:
    issue = only_issue(["a", "b"])
    assert issue.message.startswith("a plan must be a mapping")


def test_name_is_required_only_for_playbooks() -> None:
    plan = parse_plan({"steps": [step("a")]}, source="planner")
    assert plan.name is None
    issue = only_issue({"steps": [step("a")]}, require_name=True)
    assert (issue.step, issue.field) == (None, "name")
    assert issue.message.startswith("is required")


# ------------------------------------------------------------------------------ agents


def test_an_unknown_agent_lists_the_known_ones() -> None:
    issue = only_issue(doc(step("a", agent="bash")))
    assert (issue.step, issue.field) == ("a", "agent")
    known = "known agents: analyze, code, echo, gate, llm, playbook, shell, test"
    assert known in issue.message


def test_an_agent_not_built_yet_is_refused_at_validation() -> None:
    issue = only_issue(doc(step("a", agent="http")))
    assert (issue.step, issue.field) == ("a", "agent")
    assert issue.message == (
        "agent 'http' is not available yet; use one of:"
        " analyze, code, echo, gate, llm, playbook, shell, test"
    )


def test_with_is_checked_against_the_agent() -> None:
    issues = issues_of(doc(step("a", agent="shell", with_={"comand": "ls", "network": [1]})))
    assert [(i.field, i.message) for i in issues] == [
        ("with.command", "is required"),
        ("with.network", "must be true or false (got a list)"),
        (
            "with.comand",
            "agent 'shell' takes no input 'comand' (did you mean 'command'?); "
            "it takes: command, network",
        ),
    ]


def test_a_missing_with_is_missing_required_inputs() -> None:
    issue = only_issue(doc(step("a", agent="shell")))
    assert (issue.field, issue.message) == ("with.command", "is required")


def test_a_templated_value_skips_the_type_check_but_not_the_key_checks() -> None:
    inputs = {"net": {"default": False}}
    plan = parse_plan(
        doc(
            step("a", agent="shell", with_={"command": "ls", "network": "${{ inputs.net }}"}),
            inputs=inputs,
        ),
        source="pb.yaml",
    )
    assert plan.steps[0].with_["network"] == "${{ inputs.net }}"
    issues = issues_of(
        doc(step("a", agent="shell", with_={"netwrk": "${{ inputs.net }}"}), inputs=inputs)
    )
    assert {i.field for i in issues} == {"with.command", "with.netwrk"}


def test_echo_takes_any_inputs() -> None:
    plan = parse_plan(doc(step("a", with_={"anything": [1, {"b": 2}]})), source="pb.yaml")
    assert plan.steps[0].with_ == {"anything": [1, {"b": 2}]}


# ------------------------------------------------------------------------------- graph


def test_duplicate_step_ids() -> None:
    issue = only_issue(doc(step("a"), step("b"), step("a")))
    assert (issue.step, issue.field) == ("a", "id")
    assert (
        issue.message == "duplicate step id: steps 1 and 3 are both 'a'; give each step its own id"
    )


def test_depending_on_a_missing_step() -> None:
    issue = only_issue(doc(step("build"), step("test", "biuld")))
    assert (issue.step, issue.field) == ("test", "depends_on")
    assert issue.message == (
        "depends on 'biuld', which is not a step (did you mean 'build'?); steps are: build, test"
    )


def test_depending_on_itself() -> None:
    issue = only_issue(doc(step("a", "a")))
    assert (issue.step, issue.field, issue.message) == (
        "a",
        "depends_on",
        "depends on itself; remove 'a' from depends_on",
    )


def test_a_three_step_cycle_is_named_step_by_step() -> None:
    issue = only_issue(doc(step("start"), step("a", "b"), step("b", "c"), step("c", "a", "start")))
    assert (issue.step, issue.field) == ("a", "depends_on")
    assert issue.message == "cycle: a → b → c → a; remove one of these dependencies"


def test_each_separate_cycle_is_reported_once() -> None:
    issues = issues_of(doc(step("a", "b"), step("b", "a"), step("x", "y"), step("y", "x")))
    assert [i.message.split(";")[0] for i in issues] == ["cycle: a → b → a", "cycle: x → y → x"]


def test_a_diamond_is_not_a_cycle() -> None:
    plan = parse_plan(
        doc(step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")), source="x"
    )
    assert len(plan.steps) == 4


# -------------------------------------------------------------------------- references


def test_a_reference_to_an_undeclared_input() -> None:
    issue = only_issue(doc(step("a", with_={"x": "${{ inputs.target }}"}), inputs={"tgt": {}}))
    assert (issue.step, issue.field) == ("a", "with.x")
    assert issue.message == (
        "${{ inputs.target }}: no input 'target' is declared; add it under inputs: (declared: tgt)"
    )


def test_a_reference_to_a_step_that_is_not_upstream() -> None:
    issue = only_issue(
        doc(step("a"), step("b"), step("c", "a", with_={"x": "${{ steps.b.outputs.y }}"}))
    )
    assert (issue.step, issue.field) == ("c", "with.x")
    assert issue.message == (
        "${{ steps.b.outputs.y }}: step 'b' is not upstream of 'c'; add 'b' to its depends_on"
    )


def test_a_reference_to_a_later_step_is_not_upstream() -> None:
    issue = only_issue(doc(step("a", with_={"x": "${{ steps.b.outputs.y }}"}), step("b", "a")))
    assert "step 'b' is not upstream of 'a'" in issue.message


def test_a_transitively_upstream_step_may_be_referenced() -> None:
    ref = {"x": "${{ steps.a.outputs.stdout }}", "deep": ["${{ steps.b.outputs.p.q }}"]}
    plan = parse_plan(doc(step("a"), step("b", "a"), step("c", "b", with_=ref)), source="x")
    assert plan.steps[2].with_ == ref


def test_a_reference_to_a_missing_step_or_its_own_outputs() -> None:
    issues = issues_of(
        doc(step("a", with_={"x": "${{ steps.nope.outputs.y }}", "z": "${{ steps.a.outputs.y }}"}))
    )
    assert [(i.field, i.message) for i in issues] == [
        ("with.x", "${{ steps.nope.outputs.y }}: there is no step 'nope'"),
        ("with.z", "${{ steps.a.outputs.y }}: a step cannot use its own outputs"),
    ]


def test_a_malformed_expression_is_reported_where_it_is() -> None:
    issue = only_issue(doc(step("a", with_={"x": ["ok", "${{ input.target }}"]})))
    assert (issue.step, issue.field) == ("a", "with.x")
    assert issue.message.startswith("malformed expression '${{ input.target }}': write ")


def test_plan_outputs_must_name_existing_steps() -> None:
    outputs = {"diff": "${{ steps.code.outputs.diff }}", "bad": "${{ steps.cod.outputs.diff }}"}
    issue = only_issue(doc(step("code"), outputs=outputs))
    assert (issue.step, issue.field) == (None, "outputs.bad")
    assert (
        issue.message
        == "${{ steps.cod.outputs.diff }}: there is no step 'cod' (did you mean 'code'?)"
    )
    broken = only_issue(doc(step("code"), outputs={"x": "${{ steps }}"}))
    assert (broken.field, broken.message.split(":")[0]) == (
        "outputs.x",
        "malformed expression '${{ steps }}'",
    )


def test_validate_checks_a_plan_built_in_code() -> None:
    plan = PlanSpec(
        steps=[
            StepSpec(id="a", agent="nope"),
            StepSpec(id="b", agent="echo", depends_on=["a", "b"]),
        ]
    )
    assert where(validate(plan, source="planner")) == {("a", "agent"), ("b", "depends_on")}
    assert validate(parse_plan(contract_doc(), source="x")) == []


def contract_doc() -> dict[str, object]:
    data = yaml.safe_load(CONTRACT_EXAMPLE)
    assert isinstance(data, dict)
    return data


# ------------------------------------------------------------------------------- files


def test_a_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "name: x\nsteps:\n  - id: a\n   agent: shell\n")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    [issue] = caught.value.issues
    assert issue.file == str(path)
    assert issue.message.startswith("YAML syntax error at line 4, column 4:")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty; a playbook needs at least name: and steps:"),
        ("# only a comment\n", "is empty; a playbook needs at least name: and steps:"),
        ("- a\n- b\n", "must be a mapping with name: and steps:, not a list"),
        ("just text\n", "must be a mapping with name: and steps:, not 'just text'"),
    ],
)
def test_an_empty_or_non_mapping_document(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        load_playbook(write(tmp_path, "p.yaml", text))
    assert [i.message for i in caught.value.issues] == [message]


def test_a_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "big.yaml", CONTRACT_EXAMPLE + "#" * MAX_FILE_BYTES + "\n")
    with pytest.raises(PlaybookError, match="larger than 1048576 bytes"):
        load_playbook(path)


def test_a_missing_file_a_folder_and_non_utf8_are_issues(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    expected = {
        "nope.yaml": "no such file",
        "dir.yaml": "is not a regular file",
        "latin1.yaml": "is not UTF-8 text",
    }
    for name, message in expected.items():
        with pytest.raises(PlaybookError) as caught:
            load_playbook(tmp_path / name)
        [issue] = caught.value.issues
        assert (issue.file, issue.message.split(" (")[0]) == (str(tmp_path / name), message)


def test_only_safe_yaml_is_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"name: x\nsteps: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(PlaybookError, match="YAML syntax error at line 2"):
        load_playbook(write(tmp_path, "evil.yaml", text))
    assert not marker.exists()


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["name: lol", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines.append("steps: [{id: s, agent: echo, with: {v: *a8}}]")
    started = time.monotonic()
    with pytest.raises(PlaybookError, match="expands to more than"):
        load_playbook(write(tmp_path, "lol.yaml", "\n".join(lines) + "\n"))
    assert time.monotonic() - started < 5


def test_load_playbooks_reads_yaml_and_yml_but_not_subfolders(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", CONTRACT_EXAMPLE)
    write(tmp_path, "two.yml", "name: two\nsteps: [{id: a, agent: echo}]\n")
    write(tmp_path, "notes.txt", "not a playbook")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "three.yaml", "name: three\nsteps: [{id: a, agent: echo}]\n")
    plans = load_playbooks(tmp_path)
    assert sorted(plans) == ["python-check", "two"]
    assert plans["two"].steps[0].id == "a"


def test_load_playbooks_collects_the_issues_of_every_file(tmp_path: Path) -> None:
    bad_agent = write(tmp_path, "a.yaml", "name: a\nsteps: [{id: s, agent: nope}]\n")
    no_name = write(tmp_path, "b.yaml", "steps: [{id: s, agent: echo}]\n")
    write(tmp_path, "c.yaml", CONTRACT_EXAMPLE)
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(tmp_path)
    assert [(i.file, i.field) for i in caught.value.issues] == [
        (str(bad_agent), "agent"),
        (str(no_name), "name"),
    ]


def test_two_playbooks_with_one_name(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", CONTRACT_EXAMPLE)
    second = write(tmp_path, "b.yaml", CONTRACT_EXAMPLE)
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(tmp_path)
    [issue] = caught.value.issues
    assert (issue.file, issue.field) == (str(second), "name")
    assert (
        issue.message
        == f"name 'python-check' is already used by {first}; playbook names must be unique"
    )


def test_load_playbooks_needs_a_folder(tmp_path: Path) -> None:
    assert load_playbooks(tmp_path) == {}
    with pytest.raises(PlaybookError, match="is not a folder"):
        load_playbooks(tmp_path / "missing")


# ------------------------------------------------------------------------------ inputs


def plan_with_inputs() -> PlanSpec:
    inputs = {
        "target": {"default": "."},
        "token": {"required": True},
        "opts": {"default": {"v": [1]}},
    }
    return parse_plan(doc(step("a"), inputs=inputs), source="x")


def test_resolve_inputs_applies_defaults() -> None:
    plan = plan_with_inputs()
    assert resolve_inputs(plan, {"token": "t"}) == {"target": ".", "token": "t", "opts": {"v": [1]}}
    assert resolve_inputs(plan, {"token": "t", "target": "src"})["target"] == "src"


def test_resolved_defaults_are_copies() -> None:
    plan = plan_with_inputs()
    opts = resolve_inputs(plan, {"token": "t"})["opts"]
    assert isinstance(opts, dict)
    opts["v"].append(2)
    assert plan.inputs["opts"].default == {"v": [1]}


def test_resolve_inputs_names_unknown_and_missing_inputs() -> None:
    with pytest.raises(PlaybookError) as caught:
        resolve_inputs(plan_with_inputs(), {"targte": "src"})
    assert [(i.file, i.field) for i in caught.value.issues] == [
        ("inputs", "targte"),
        ("inputs", "token"),
    ]
    unknown, missing = (i.message for i in caught.value.issues)
    assert unknown == (
        "playbook 'demo' takes no input 'targte' (did you mean 'target'?); "
        "it takes: target, token, opts"
    )
    assert missing == "input 'token' is required by playbook 'demo'; give it a value"


# ------------------------------------------------------------------------------- order


def test_topological_order_keeps_file_order_for_ties() -> None:
    plan = parse_plan(doc(step("a"), step("b", "d"), step("c"), step("d", "a")), source="x")
    assert topological_order(plan) == ["a", "c", "d", "b"]
    independent = parse_plan(doc(step("z"), step("y"), step("x")), source="x")
    assert topological_order(independent) == ["z", "y", "x"]


def test_topological_order_refuses_a_cycle_in_an_unchecked_plan() -> None:
    plan = PlanSpec(
        steps=[
            StepSpec(id="a", agent="echo", depends_on=["b"]),
            StepSpec(id="b", agent="echo", depends_on=["a"]),
        ]
    )
    with pytest.raises(PlaybookError, match="cannot be ordered"):
        topological_order(plan)


def test_upstream_is_transitive() -> None:
    plan = parse_plan(doc(step("a"), step("b", "a"), step("c"), step("d", "b")), source="x")
    assert upstream(plan, "d") == {"a", "b"}
    assert upstream(plan, "a") == set()
    with pytest.raises(NotFound, match="no step 'e'"):
        upstream(plan, "e")


# ---------------------------------------------------------------------------- Markdown


def test_render_markdown_shows_the_plan_in_running_order() -> None:
    plan = parse_plan(contract_doc(), source="x")
    text = render_markdown(plan, {"target": "src"})
    assert text.startswith("# python-check\n\nLint and test a Python repository\n")
    assert "- `target`: `src`" in text
    assert text.index("### 1. lint") < text.index("### 2. test") < text.index("### 3. report")
    test_section = text[text.index("### 2. test") : text.index("### 3. report")]
    assert "- Agent: `shell`" in test_section
    assert "- Depends on: `lint`" in test_section
    assert "- Retries: up to 2 more attempt(s)" in test_section
    assert "- Timeout: 120 s" in test_section
    assert "```yaml\ncommand: python3 -m pytest -q\n```" in test_section
    assert "- Approval: required before it runs" in text[text.index("### 3. report") :]


def test_render_markdown_without_inputs_shows_defaults_and_requirements() -> None:
    text = render_markdown(plan_with_inputs())
    assert "- `target`: default `.`" in text
    assert "- `token`: required" in text


def test_render_markdown_numbers_steps_topologically() -> None:
    plan = parse_plan(doc(step("late", "early"), step("early")), source="x")
    text = render_markdown(plan)
    assert text.index("### 1. early") < text.index("### 2. late")


def test_render_markdown_fences_cannot_be_closed_by_the_content() -> None:
    plan = parse_plan(doc(step("a", with_={"x": "```\n# injected"})), source="x")
    text = render_markdown(plan)
    assert "````yaml\n" in text
    assert text.rstrip().endswith("````")
