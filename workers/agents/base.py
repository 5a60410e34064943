"""What an agent is, and what it may use while it runs a step."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from orchestrator.catalog import Catalog
from orchestrator.engine import Engine
from orchestrator.outcome import StepOutcome, StepTicket
from sandbox import SandboxPool


class Services(Protocol):
    """The process-wide things an agent may use."""

    engine: Engine
    catalog: Catalog

    def pool(self) -> SandboxPool: ...


class Agent(Protocol):
    """Runs one attempt of one step. Returns an outcome; raises only on a bug."""

    kind: str

    def run(self, ticket: StepTicket, services: Services) -> StepOutcome: ...


def digest(value: Any) -> str:
    """A stable sha256 of a JSON-able value (provenance: input and output hashes)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
