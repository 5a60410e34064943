"""The plan structure: what a playbook's YAML (or the LLM planner) becomes.

These models check shape and ranges only; the graph rules (known agents, unique ids,
dependencies that exist, no cycles, references only to upstream steps, inputs valid for
the agent) are checked by ``orchestrator.playbooks.validate``, which reports every issue
with its file, step and field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
STEP_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$"
COMMAND = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,62}$"
MAX_STEPS = 200


class RetrySpec(BaseModel):
    """Retries after a failed attempt: up to ``max`` more, waiting ``backoff_s`` × 2ⁿ."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(default=0, ge=0, le=10)
    backoff_s: float = Field(default=1.0, ge=0, le=3600)
    max_backoff_s: float = Field(default=300.0, gt=0, le=86400)

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait before the next attempt, after ``failed_attempts`` failures."""
        grown = self.backoff_s * float(2 ** max(failed_attempts - 1, 0))
        return min(grown, self.max_backoff_s)


class StepSpec(BaseModel):
    """One node of the plan."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=STEP_ID)
    agent: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    depends_on: list[str] = Field(default_factory=list)
    approval: Literal["required", "none"] = "none"
    retry: RetrySpec = Field(default_factory=RetrySpec)
    timeout_s: float = Field(default=600.0, gt=0, le=86400)
    description: str = ""


class InputSpec(BaseModel):
    """A playbook input: a default (then optional) or required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Any = None
    required: bool = False
    description: str = ""


class PlanSpec(BaseModel):
    """A validated plan is one of these; a playbook adds ``name``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, pattern=SLUG)
    version: int = Field(default=1, ge=1)
    description: str = ""
    approvers: list[str] = Field(default_factory=list)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)
    # Extensions of the contract: what the run returns (expressions over steps' outputs,
    # e.g. for a parent playbook), how many steps may run at once, and whether a step
    # that exhausts its retries pauses the run for a decision or fails it.
    outputs: dict[str, str] = Field(default_factory=dict)
    max_parallel: int = Field(default=4, ge=1, le=64)
    on_failure: Literal["pause", "fail"] = "pause"
    # Four-eyes: the requester may not approve (or continue) their own run.
    four_eyes: bool = False
    # Commands a model may run in this plan's steps (a ``code`` step's ``run`` tool)
    # besides the global allowlist (ours plus FIRSTMATE_COMMAND_ALLOWLIST). A playbook
    # sets it; the planner never does.
    allowlist: list[Annotated[str, Field(pattern=COMMAND)]] = Field(
        default_factory=list, max_length=200
    )

    def step(self, step_id: str) -> StepSpec:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)
