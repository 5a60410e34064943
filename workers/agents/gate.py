"""``gate``: a checkpoint and nothing else. The engine holds the step until a person
lets it through; running it then records what the gate said."""

from __future__ import annotations

from pydantic import ValidationError

from orchestrator.kinds import GateInputs
from orchestrator.outcome import StepOutcome, StepTicket
from workers.agents.base import Services


class GateAgent:
    kind = "gate"

    def run(self, ticket: StepTicket, services: Services) -> StepOutcome:
        try:
            inputs = GateInputs.model_validate(ticket.inputs)
        except ValidationError as exc:
            return StepOutcome.failed(f"gate inputs: {exc}")
        return StepOutcome(status="succeeded", outputs={"message": inputs.message, "passed": True})
