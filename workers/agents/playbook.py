"""``playbook``: runs another playbook as a child run and waits for it.

The attempt only starts the child (with a deterministic id, so running the job twice
starts it once) and returns ``waiting``; the engine completes this step with the
child's result when the child run ends.
"""

from __future__ import annotations

from pydantic import ValidationError

from orchestrator.errors import FirstmateError
from orchestrator.kinds import PlaybookInputs
from orchestrator.outcome import StepOutcome, StepTicket
from orchestrator.recovery import child_run_id
from workers.agents.base import Services


class PlaybookAgent:
    kind = "playbook"

    def run(self, ticket: StepTicket, services: Services) -> StepOutcome:
        try:
            inputs = PlaybookInputs.model_validate(ticket.inputs)
        except ValidationError as exc:
            return StepOutcome.failed(f"playbook inputs: {exc}")
        child = child_run_id(ticket.run_id, ticket.key, ticket.attempt)
        try:
            plan = services.catalog.named(inputs.playbook)
            services.engine.submit(
                plan,
                inputs=inputs.inputs,
                source="playbook",
                requester=ticket.requester,
                workspace=ticket.workspace,
                parent=(ticket.run_id, ticket.key),
                run_id=child,
                approve_plan=False,
                on_failure="fail",
            )
        except FirstmateError as exc:
            return StepOutcome.failed(f"child playbook {inputs.playbook!r}: {exc}")
        return StepOutcome(
            status="waiting",
            outputs={"run_id": child},
            provenance={"child_run_id": child, "playbook": plan.name},
        )
