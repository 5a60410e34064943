"""What the engine hands a worker to run a step, and what the worker hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class StepTicket:
    """One attempt of one step, claimed by a worker: everything it needs to run it."""

    run_id: str
    key: str
    attempt: int
    agent: str
    inputs: dict[str, Any]
    timeout_s: float
    workspace: Path | None
    requester: str | None = None
    # Commands a model may run in this step besides the global allowlist (the plan's).
    allowlist: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What an attempt produced.

    ``waiting`` means the step goes on elsewhere (a child run) and will be completed
    by the engine when that ends.
    """

    status: Literal["succeeded", "failed", "waiting"]
    outputs: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    error: str | None = None
    log: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    budget_reached: bool = False  # failed because the run's LLM budget is spent
    # The step did its work but what happened is not what was expected (a coder whose
    # tests still fail after its fix rounds): a person looks at ``error`` and decides.
    needs_review: bool = False

    @classmethod
    def failed(cls, error: str, **kwargs: Any) -> StepOutcome:
        return cls(status="failed", error=error, **kwargs)
