"""``firstmate playbook validate``: ok lines on stdout, every issue on stderr, exit status."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bot.cli.playbook import playbook_group

VALID = """\
name: python-check
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
"""

BROKEN = """\
name: broken
steps:
  - id: lint
    agent: shel
  - id: test
    agent: shell
    depends_on: [lnt]
    with: {command: "pytest"}
    retry: {max: 50}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_prints_ok_and_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, "check.yaml", VALID)
    result = CliRunner().invoke(playbook_group, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: {path} (python-check, 2 steps)\n"
    assert result.stderr == ""


def test_every_issue_goes_to_stderr_with_file_step_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", BROKEN)
    result = CliRunner().invoke(playbook_group, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{path}: step 'lint': agent: unknown agent 'shel'")
    assert lines[1] == f"{path}: step 'test': retry.max: must be at most 10 (got 50)"
    assert lines[2].startswith(f"{path}: step 'test': depends_on: depends on 'lnt'")


def test_one_bad_file_fails_the_run_but_the_others_are_still_checked(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", VALID)
    bad = write(tmp_path, "bad.yaml", "name: x\nsteps: [\n")
    result = CliRunner().invoke(playbook_group, ["validate", str(bad), str(good)])
    assert result.exit_code == 1
    assert result.stdout == f"ok: {good} (python-check, 2 steps)\n"
    assert result.stderr.startswith(f"{bad}: YAML syntax error at line 3")


def test_a_missing_file_is_an_issue_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(playbook_group, ["validate", str(missing)])
    assert result.exit_code == 1
    assert result.stderr == f"{missing}: no such file\n"
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_validate_needs_at_least_one_file() -> None:
    result = CliRunner().invoke(playbook_group, ["validate"])
    assert result.exit_code == 2
    assert "Missing argument 'FILES...'" in result.stderr
