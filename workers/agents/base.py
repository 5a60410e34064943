"""What an agent is, and what it may use while it runs a step."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from orchestrator.allowlist import Allowlist
from orchestrator.catalog import Catalog
from orchestrator.engine import Engine
from orchestrator.outcome import StepOutcome, StepTicket
from orchestrator.providers.client import LLM
from orchestrator.screening import Screener
from sandbox import ExecResult, SandboxPool


class Services(Protocol):
    """The process-wide things an agent may use."""

    engine: Engine
    catalog: Catalog

    def pool(self) -> SandboxPool: ...

    def llm(self, spec: str | None = None) -> LLM:
        """The LLM named ``provider:model`` (FIRSTMATE_LLM by default)."""

    def screener(self) -> Screener:
        """What screens every text before it reaches a model."""

    def allowlist(self) -> Allowlist:
        """The commands a model may run (ours plus FIRSTMATE_COMMAND_ALLOWLIST)."""


class Agent(Protocol):
    """Runs one attempt of one step. Returns an outcome; raises only on a bug."""

    kind: str

    def run(self, ticket: StepTicket, services: Services) -> StepOutcome: ...


def digest(value: Any) -> str:
    """A stable sha256 of a JSON-able value (provenance: input and output hashes)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def exec_record(
    command: str, result: ExecResult, sandbox_name: str, inputs: Any, outputs: Any
) -> tuple[dict[str, Any], str]:
    """The provenance and the log of a step that ran ``command`` in a sandbox."""
    provenance = {
        "image_digest": result.image_digest,
        "command": command,
        "exit_code": result.exit_code,
        "duration_s": round(result.duration_s, 4),
        "timed_out": result.timed_out,
        "oom_killed": result.oom_killed,
        "truncated": result.truncated,
        "sandbox": sandbox_name,
        "input_sha256": digest(inputs),
        "output_sha256": digest(outputs),
    }
    log = f"$ {command}\n{result.stdout}"
    if result.stderr:
        log += f"\n--- stderr ---\n{result.stderr}"
    return provenance, log
