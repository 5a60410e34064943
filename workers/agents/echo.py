"""``echo``: its inputs become its outputs; no sandbox (passing values, measuring the engine)."""

from __future__ import annotations

from orchestrator.outcome import StepOutcome, StepTicket
from workers.agents.base import Services, digest


class EchoAgent:
    kind = "echo"

    def run(self, ticket: StepTicket, services: Services) -> StepOutcome:
        outputs = dict(ticket.inputs)
        return StepOutcome(
            status="succeeded", outputs=outputs, provenance={"output_sha256": digest(outputs)}
        )
