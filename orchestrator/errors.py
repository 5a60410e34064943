"""Errors of the core.

FirstmateError
├── ConfigError            a setting is missing or wrong for the feature in use
├── PlaybookError          a playbook or plan is invalid (carries every issue found)
├── NotFound               no run, step, checkpoint or playbook by that id or name
├── InvalidTransition      a state change the state machine does not allow
├── DecisionError          a decision that cannot apply (decided already, wrong kind, …)
├── TemplateError          a ${{ }} reference that cannot be resolved at run time
└── ArtifactError          an artifact cannot be written or read (or decrypted)
"""

from __future__ import annotations

from dataclasses import dataclass


class FirstmateError(Exception):
    """Base of every error the core raises."""


class ConfigError(FirstmateError):
    """A setting is missing or invalid for the feature in use."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One thing wrong with a playbook: where (file, step, field) and what."""

    file: str
    step: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.step:
            where.append(f"step {self.step!r}")
        if self.field:
            where.append(self.field)
        return f"{': '.join(where)}: {self.message}"


class PlaybookError(FirstmateError):
    """A playbook or plan is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class NotFound(FirstmateError):
    """No such run, step, checkpoint or playbook."""


class InvalidTransition(FirstmateError):
    """A state change that the state machine does not allow."""


class DecisionError(FirstmateError):
    """A decision that cannot be applied: decided already, wrong kind, or run finished."""


class TemplateError(FirstmateError):
    """A ``${{ }}`` reference that cannot be resolved when the step is about to run."""


class ArtifactError(FirstmateError):
    """An artifact cannot be written or read."""
