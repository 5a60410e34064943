"""A whole Firstmate behind Slack for integration tests: ``firstmate serve`` and worker
processes on a real Redis and SQLite, talking to a local fake of Slack's Web API, with
requests signed as Slack signs them."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from orchestrator import queries
from orchestrator.config import Settings
from orchestrator.queries import RunReport
from tests.conftest import IMAGE
from tests.services import Workers, start_serve, stop
from tests.slack_api import SlackAPI, interactive_body, signed_headers, slash_body
from workers import runtime

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slack"
FAST = {"FIRSTMATE_LEASE_S": "3", "FIRSTMATE_RECONCILE_S": "1", "FIRSTMATE_SANDBOX_POOL_SIZE": "1"}


def fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return payload


class SlackEnv:
    """One test's Firstmate behind Slack."""

    def __init__(self, tmp: Path, redis_url: str, api: SlackAPI) -> None:
        self.tmp, self.api = tmp, api
        self.playbooks = tmp / "playbooks"
        self.playbooks.mkdir()
        self.vars = {
            "FIRSTMATE_DATA_DIR": str(tmp / "data"),
            "DATABASE_URL": f"sqlite:///{tmp / 'data' / 'firstmate.db'}",
            "REDIS_URL": redis_url,
            "FIRSTMATE_PLAYBOOKS": str(self.playbooks),
            "FIRSTMATE_SANDBOX_IMAGE": IMAGE,
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "FIRSTMATE_SLACK_API_URL": api.url,
            **FAST,
        }
        self.rt = runtime.build(Settings(**_settings(self.vars)))
        self.workers = Workers(self.vars, tmp / "logs")
        self.server: subprocess.Popen[bytes] | None = None
        self.url = ""

    def playbook(self, name: str, text: str) -> None:
        (self.playbooks / f"{name}.yaml").write_text(text)

    def serve(self) -> None:
        """Start ``firstmate serve`` and wait until it answers."""
        self.server, self.url = start_serve(self.vars, self.tmp / "serve.log", self.logs)

    def logs(self) -> str:
        serve = self.tmp / "serve.log"
        text = serve.read_text(errors="replace") if serve.exists() else ""
        return text[-4000:] + "\n" + self.workers.output()[-4000:]

    # -- requests as Slack sends them ------------------------------------------------

    def post(
        self,
        body: bytes,
        *,
        content_type: str,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
    ) -> httpx.Response:
        signed = signed_headers(body, SECRET, timestamp=timestamp)
        all_headers = {**signed, "Content-Type": content_type, **(headers or {})}
        return httpx.post(f"{self.url}/slack/events", content=body, headers=all_headers, timeout=10)

    def command(
        self,
        text: str,
        *,
        user: str = "UREQ",
        trigger: str = "111.222.a",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        fields = fixture("slash_command_body.json")
        fields.update(command="/mate", text=text, user_id=user, trigger_id=trigger)
        body = slash_body(**fields)
        return self.post(body, content_type="application/x-www-form-urlencoded", headers=headers)

    def click(self, action_id: str, *, user: str, ts: str = "1.0") -> httpx.Response:
        payload = fixture("block_actions_button.json")
        payload["user"] = {"id": user}
        payload["actions"][0].update(action_id=action_id, value=action_id.rsplit(":", 1)[-1])
        payload["container"]["message_ts"] = ts
        return self.interactive(payload)

    def interactive(self, payload: dict[str, Any]) -> httpx.Response:
        return self.post(
            interactive_body(payload), content_type="application/x-www-form-urlencoded"
        )

    # -- what happened ---------------------------------------------------------------

    def run_ids(self) -> list[str]:
        return [r.run_id for r in queries.list_runs(self.rt.store)]

    def report(self, run_id: str) -> RunReport:
        return queries.run_report(self.rt.store, run_id, detail=True)

    def wait(self, what: str, until: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = until()
            if value:
                return value
            time.sleep(0.05)
        calls = [(c.method, c.answered) for c in self.api.calls()]
        raise AssertionError(f"never: {what}\nSlack calls: {calls}\n{self.logs()}")

    def close(self) -> None:
        stop(self.server)
        self.workers.stop()
        self.rt.close()


def _settings(env: dict[str, str]) -> dict[str, Any]:
    return {
        "data_dir": Path(env["FIRSTMATE_DATA_DIR"]),
        "database_url": env["DATABASE_URL"],
        "redis_url": env["REDIS_URL"],
        "playbooks": Path(env["FIRSTMATE_PLAYBOOKS"]),
        "sandbox_image": env["FIRSTMATE_SANDBOX_IMAGE"],
        "lease_s": 3,
        "reconcile_s": 1,
    }


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    """Every action_id in a message's blocks."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "action_id" in node:
                found.append(str(node["action_id"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return found


def text_of(blocks: list[dict[str, Any]]) -> str:
    """All the text in a message's blocks, joined."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(parts)
