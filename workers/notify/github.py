"""Delivering a run to GitHub: one comment per run on its issue or pull request, created
on the first delivery and edited in place whenever what it shows changes.

The comment is recorded in ``deliveries`` (target ``github``, key ``comment``) right
after it is created, and edited only when its Markdown changed (a digest), at most once
every two seconds. GitHub's HTTP errors are translated once, in ``GitHubClient``: a rate
limit waits its ``Retry-After`` (or until ``x-ratelimit-reset``), a 5xx or a network
failure backs off, and a refusal is logged and backs off too; the run's next delivery
renders the state again from the database, so nothing is lost while GitHub is away.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any
from urllib.parse import quote

import httpx

from orchestrator import deliveries
from orchestrator.deliveries import Destination
from orchestrator.models import utcnow
from orchestrator.queries import run_report
from orchestrator.store import Store
from workers.notify.blocks import CardContext
from workers.notify.markdown import run_markdown
from workers.notify.notifier import Deferred

log = logging.getLogger(__name__)
TARGET = "github"
COMMENT = "comment"
API_VERSION = "2022-11-28"
TIMEOUT_S = 10.0
# GitHub asks to wait at least a minute after a rate limit that names no time.
DEFAULT_RATE_LIMIT_WAIT_S = 60.0
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")


class GitHubClient:
    """The few REST calls Firstmate makes, with GitHub's errors turned into ``Deferred``.

    ``base_url`` is ``https://api.github.com`` or a GitHub Enterprise ``…/api/v3``;
    ``transport`` is the seam for tests (``httpx.MockTransport``)."""

    def __init__(
        self,
        token: str,
        base_url: str,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "firstmate",
            },
            timeout=timeout_s,
            transport=transport,
        )

    def create_comment(self, repo: str, number: int, body: str) -> int:
        """Comment on issue or pull request ``number`` of ``repo`` (``owner/name``);
        return the new comment's id."""
        path = f"repos/{_repo_path(repo)}/issues/{number}/comments"
        response = self._send("POST", path, {"body": body}, what="create a comment")
        assert response is not None  # only a 404 on an edit comes back as None
        try:
            return int(response.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise Deferred(None, "create a comment: GitHub's answer has no comment id") from exc

    def edit_comment(self, repo: str, comment_id: int, body: str) -> bool:
        """Replace the body of comment ``comment_id``; False when it no longer exists."""
        path = f"repos/{_repo_path(repo)}/issues/comments/{comment_id}"
        response = self._send("PATCH", path, {"body": body}, what="edit a comment", gone_ok=True)
        return response is not None

    def close(self) -> None:
        self._http.close()

    def _send(
        self, method: str, path: str, payload: dict[str, Any], *, what: str, gone_ok: bool = False
    ) -> httpx.Response | None:
        try:
            response = self._http.request(method, path, json=payload)
        except httpx.HTTPError as exc:  # connection refused, timeout, broken answer
            raise Deferred(None, f"{what}: GitHub unreachable ({exc})") from exc
        if response.is_success:
            return response
        status = response.status_code
        if status in (404, 410) and gone_ok:
            return None
        if status in (403, 429) and (wait := rate_limit_wait(response)) is not None:
            raise Deferred(wait, f"{what}: rate limited by GitHub")
        if status >= 500:
            raise Deferred(None, f"{what}: GitHub answered {status}")
        # A refusal (no access, issue locked, token revoked…) will not fix itself quickly:
        # say so loudly and try again later rather than drop the run's comment.
        message = _message(response)
        log.error("GitHub refused to %s: %s %s", what, status, message)
        raise Deferred(None, f"{what}: GitHub refused it ({status} {message})")


def rate_limit_wait(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait when ``response`` is a rate limit (primary or secondary), else None.

    Every GitHub response carries ``x-ratelimit-*`` headers, so a 403 is a rate limit
    only when it says ``Retry-After``, has no requests left, or says so in its message."""
    headers = response.headers
    retry_after = headers.get("retry-after", "")
    if retry_after.strip().isdigit():
        return max(1.0, float(retry_after))
    reset = headers.get("x-ratelimit-reset", "")
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(1.0, float(reset) - (time.time() if now is None else now))
    if response.status_code == 429 or "rate limit" in _message(response).lower():
        return DEFAULT_RATE_LIMIT_WAIT_S
    return None


class GitHubChannel:
    """The ``github`` destination of the notifier: one comment per run."""

    def __init__(self, client: GitHubClient, store: Store, *, min_edit_s: float = 2.0) -> None:
        self.client = client
        self.store = store
        self.min_edit_s = min_edit_s

    def deliver(self, destination: Destination) -> None:
        origin = destination.origin.get(TARGET) or {}
        repo, number = str(origin.get("repo") or ""), origin.get("issue")
        if not _REPO.match(repo) or not isinstance(number, int):
            log.error("run %s reports to GitHub but names no issue", destination.run_id)
            return
        body = self.render(destination, origin)
        digest = hashlib.sha256(body.encode()).hexdigest()[:32]
        comment = deliveries.posted(self.store, destination.run_id, TARGET).get(COMMENT)
        if comment is None:
            self._record(destination, self.client.create_comment(repo, number, body), digest)
            return
        if comment.digest != digest:
            if comment.age_s < self.min_edit_s:
                raise Deferred(self.min_edit_s - comment.age_s, "the comment was edited just now")
            if not self.client.edit_comment(repo, int(comment.ref), body):
                log.warning("run %s: its comment was deleted, posting it again", destination.run_id)
                self._record(destination, self.client.create_comment(repo, number, body), digest)
                return
        self._record(destination, int(comment.ref), digest)

    def render(self, destination: Destination, origin: dict[str, Any]) -> str:
        """The comment's Markdown for the run as the database has it now."""
        report = run_report(self.store, destination.run_id, checkpoints=True)
        cost = sum(s.cost_usd for s in report.steps)
        ctx = CardContext(
            title=destination.playbook or destination.request or "request",
            requester=destination.requester,
            now=utcnow(),
            cost_usd=cost or None,
        )
        url = origin.get("html_url")
        return run_markdown(report, ctx, request_url=url if isinstance(url, str) else None)

    def _record(self, destination: Destination, comment_id: int, digest: str) -> None:
        deliveries.record(
            self.store,
            destination.run_id,
            TARGET,
            COMMENT,
            ref=str(comment_id),
            digest=digest,
            seq=destination.event_seq,
        )


def _repo_path(repo: str) -> str:
    """``owner/name`` as two escaped path segments (it came from a payload)."""
    owner, _, name = repo.partition("/")
    return f"{quote(owner, safe='')}/{quote(name, safe='')}"


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:200] if message else ""
