"""``${{ }}`` references: finding them, spotting malformed ones, and filling them in."""

from __future__ import annotations

import shlex

import pytest

from orchestrator.errors import TemplateError
from orchestrator.templating import (
    Reference,
    bad_expressions,
    has_template,
    references,
    substitute,
)

OUTPUTS: dict[str, dict[str, object]] = {
    "build": {"stdout": "built\n", "exit_code": 0, "ok": True},
    "child": {"steps": {"build": {"stdout": "nested"}}, "files": ["a.py", "b.py"]},
}


def test_references_finds_both_forms_with_their_parts() -> None:
    text = "x=${{ inputs.target }} y=${{steps.child.outputs.steps.build.stdout}}"
    assert references(text) == [
        Reference(kind="inputs", name="target", path=(), raw="${{ inputs.target }}"),
        Reference(
            kind="steps",
            name="child",
            path=("steps", "build", "stdout"),
            raw="${{steps.child.outputs.steps.build.stdout}}",
        ),
    ]


def test_references_walks_nested_values_in_order_but_not_keys() -> None:
    value = {
        "${{ inputs.key }}": "plain",
        "a": ["${{ inputs.one }}", {"b": "${{ steps.s.outputs.x }}"}],
        "c": 3,
    }
    assert [(r.kind, r.name) for r in references(value)] == [
        ("inputs", "one"),
        ("steps", "s"),
    ]


def test_reference_is_frozen() -> None:
    ref = references("${{ inputs.a }}")[0]
    with pytest.raises(AttributeError):
        ref.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    "expression",
    [
        "${{ foo }}",
        "${{ inputs }}",
        "${{ inputs.a.b }}",
        "${{ steps.build.stdout }}",
        "${{ steps.build.outputs }}",
        "${{ steps.build.outputs. }}",
        "${{ }}",
    ],
)
def test_malformed_expressions_are_reported_and_not_references(expression: str) -> None:
    text = f"echo {expression} and ${{{{ inputs.ok }}}}"
    assert bad_expressions(text) == [expression]
    assert [r.name for r in references(text)] == ["ok"]


def test_an_unclosed_expression_is_malformed() -> None:
    assert bad_expressions(["fine", "echo ${{ inputs.x"]) == ["${{ inputs.x"]


def test_shell_dollar_braces_are_not_templates() -> None:
    text = "echo ${HOME} $((1 + 2)) ${x:-y}"
    assert bad_expressions(text) == []
    assert references(text) == []
    assert not has_template(text)
    assert has_template({"a": ["${{ inputs.x }}"]})


def test_a_whole_string_reference_keeps_its_type() -> None:
    inputs: dict[str, object] = {"n": 3, "cfg": {"a": [1]}, "none": None}
    assert substitute("${{ inputs.n }}", inputs=inputs, steps={}) == 3
    assert substitute("${{ inputs.cfg }}", inputs=inputs, steps={}) == {"a": [1]}
    assert substitute("${{ inputs.none }}", inputs=inputs, steps={}) is None
    assert substitute("${{ steps.child.outputs.files }}", inputs={}, steps=OUTPUTS) == [
        "a.py",
        "b.py",
    ]


def test_an_embedded_reference_is_rendered_as_text() -> None:
    inputs: dict[str, object] = {"n": 3, "cfg": {"a": [1]}, "none": None, "yes": True}
    text = "n=${{ inputs.n }} cfg=${{ inputs.cfg }} none=[${{ inputs.none }}] ${{ inputs.yes }}"
    assert substitute(text, inputs=inputs, steps={}) == 'n=3 cfg={"a": [1]} none=[] true'


def test_dotted_paths_reach_into_nested_outputs_and_lists() -> None:
    text = "${{ steps.child.outputs.steps.build.stdout }}/${{ steps.child.outputs.files.1 }}"
    assert substitute(text, inputs={}, steps=OUTPUTS) == "nested/b.py"


def test_substitute_walks_structures_and_leaves_the_original_alone() -> None:
    value: dict[str, object] = {"list": ["${{ inputs.a }}", 5], "map": {"k": "v${{ inputs.a }}"}}
    result = substitute(value, inputs={"a": "A"}, steps={})
    assert result == {"list": ["A", 5], "map": {"k": "vA"}}
    assert value == {"list": ["${{ inputs.a }}", 5], "map": {"k": "v${{ inputs.a }}"}}


def test_quote_keeps_outputs_from_becoming_shell_syntax() -> None:
    evil = "x; rm -rf / $(id) `id` 'q'"
    steps: dict[str, dict[str, object]] = {"s": {"stdout": evil}}
    command = substitute(
        "echo ${{ steps.s.outputs.stdout }}", inputs={}, steps=steps, quote=shlex.quote
    )
    assert isinstance(command, str)
    assert shlex.split(command) == ["echo", evil]


def test_quote_applies_to_a_whole_string_reference_too() -> None:
    command = substitute("${{ inputs.cmd }}", inputs={"cmd": "ls; id"}, steps={}, quote=shlex.quote)
    assert command == "'ls; id'"


def test_quote_is_not_applied_to_the_literal_text() -> None:
    command = substitute(
        "grep -r 'a b' ${{ inputs.dir }}", inputs={"dir": "my dir"}, steps={}, quote=shlex.quote
    )
    assert command == "grep -r 'a b' 'my dir'"


def test_an_unknown_input_names_the_reference_and_the_inputs() -> None:
    with pytest.raises(TemplateError) as caught:
        substitute("${{ inputs.nope }}", inputs={"a": 1, "b": 2}, steps={})
    assert str(caught.value) == "${{ inputs.nope }}: there is no input 'nope'; inputs are: a, b"


def test_an_unknown_step_names_the_reference_and_the_steps() -> None:
    with pytest.raises(TemplateError) as caught:
        substitute("x ${{ steps.lint.outputs.stdout }}", inputs={}, steps=OUTPUTS)
    message = str(caught.value)
    assert message.startswith("${{ steps.lint.outputs.stdout }}: step 'lint' has no outputs")
    assert message.endswith("build, child")


def test_a_missing_output_lists_what_the_step_has() -> None:
    with pytest.raises(TemplateError) as caught:
        substitute("${{ steps.build.outputs.stdot }}", inputs={}, steps=OUTPUTS)
    assert str(caught.value) == (
        "${{ steps.build.outputs.stdot }}: step 'build' has no output 'stdot'; "
        "it has: exit_code, ok, stdout"
    )


def test_a_missing_nested_key_names_the_path_walked() -> None:
    with pytest.raises(TemplateError) as caught:
        substitute("${{ steps.child.outputs.steps.test.stdout }}", inputs={}, steps=OUTPUTS)
    assert "output 'steps' of step 'child' has no key 'test'; it has: build" in str(caught.value)


def test_a_path_through_a_scalar_is_an_error() -> None:
    with pytest.raises(TemplateError, match="is a str, so it has no 'x'"):
        substitute("${{ steps.build.outputs.stdout.x }}", inputs={}, steps=OUTPUTS)
    with pytest.raises(TemplateError, match="is a list, so it has no '7'"):
        substitute("${{ steps.child.outputs.files.7 }}", inputs={}, steps=OUTPUTS)


def test_substitute_refuses_a_malformed_expression() -> None:
    with pytest.raises(TemplateError, match=r"malformed expression '\$\{\{ foo \}\}'"):
        substitute("echo ${{ foo }}", inputs={}, steps={})
