"""Property-based tests of the REST API from its own OpenAPI document (schemathesis):
generated requests, valid and not, sent to the live app on a real runtime, one by one
and in sequences that follow the document's links; never a 5xx, and every answer as
documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis import Case
from schemathesis.specs.openapi.checks import allow_header_conformance

from bot.webhooks import create_app
from bot.webhooks.api import api_router
from bot.webhooks.ratelimit import RateLimiter
from orchestrator.config import Settings
from tests.bot.test_api import TOKEN, Api, api_env
from workers.runtime import Runtime

# The playbook the document names as its example: the examples phase starts real runs.
EXAMPLE = """
name: python-check
inputs:
  target: {default: "."}
steps:
  - id: lint
    agent: echo
    with: {target: "${{ inputs.target }}"}
  - id: report
    agent: echo
    depends_on: [lint]
    approval: required
    with: {said: "${{ steps.lint.outputs.target }}"}
"""


def _document() -> dict[str, Any]:
    """The app's OpenAPI document. It is made from the routes and models alone, so a
    stand-in runtime will do at import time, when the pytest integration needs it
    (its fixture-based loader does not work with pytest 9); the live app serves the same
    document (checked below)."""
    stand_in = SimpleNamespace(settings=Settings(api_tokens=SecretStr(TOKEN)))
    router = api_router(cast(Runtime, stand_in), cast(RateLimiter, None))
    return create_app(routers=[router]).openapi()


DOCUMENT = _document()
# The token goes through schemathesis's auth, not as a plain header: it then knows when
# it leaves the token out on purpose, and expects the 401.
CONFIG = schemathesis.Config.from_dict(
    {
        "auth": {"openapi": {"HTTPBearer": {"bearer": TOKEN}}},
        "request-timeout": 10,
        "operations": [
            {
                # A playbook's inputs are known only once its name is: inputs that fit
                # the document but not the playbook are 422 `invalid_inputs`.
                "include-operation-id": "submit_run",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2XX", 401, 404, 409, 422, 429]
                    }
                },
            }
        ],
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
# Starlette's routing answers a 405 (OPTIONS /api/runs) with the methods of the first
# route on the path only (`Allow: POST`, not `GET, POST`): its routing, not this API.
# Every other check runs, not_a_server_error and response_schema_conformance included.
EXCLUDED = [allow_header_conformance]
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Api]:
    with api_env(tmp_path_factory.mktemp("api"), redis_url) as env:
        (env.rt.catalog.folder / "python-check.yaml").write_text(EXAMPLE)
        yield env


@pytest.fixture
def waiting(tmp_path: Path, redis_url: str) -> Iterator[Api]:
    """An API whose newest run waits for its plan to be approved."""
    with api_env(tmp_path, redis_url) as env:
        (env.rt.catalog.folder / "python-check.yaml").write_text(EXAMPLE)
        env.submit("python-check", approve_plan=True)
        yield env


def test_the_live_app_serves_the_document_under_test(served: Api) -> None:
    assert httpx.get(f"{served.url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@SETTINGS
def test_every_operation_answers_as_documented(case: Case, served: Api) -> None:
    case.call_and_validate(base_url=served.url, excluded_checks=EXCLUDED)


def test_sequences_that_follow_the_links_answer_as_documented(waiting: Api) -> None:
    # Without the event stream: on a run that waits for a decision, it waits too.
    machine = schema.exclude(operation_id="run_events").as_state_machine()

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": waiting.url}

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(response, excluded_checks=EXCLUDED, transport_kwargs=kwargs)

    [newest] = waiting.client.get("/api/runs").json()
    Workflow.run(settings=settings(SETTINGS, max_examples=40, stateful_step_count=6))
    # list → show → decide or cancel reached the run: the links were followed
    assert waiting.report(newest["run_id"]).status in ("running", "aborted")
