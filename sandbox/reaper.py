"""Finding and removing sandbox containers nobody holds any more.

A worker killed by RQ (or by SIGKILL) leaves its containers behind. Every sandbox is
labelled ``firstmate.sandbox=1`` with its owner (boot id, pid namespace, pid and the
pid's start time) and an expiry, so any process on the engine can tell an orphan:

- a container that is not running (its supervisor exited when its owner hung up);
- a running one whose owner is checkable from here (same boot and pid namespace) and
  gone, or whose pid now belongs to a younger process;
- a created one (never started) whose owner is gone like that, or that has waited
  more than two minutes for its start;
- a running one past its expiry, whoever owns it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import docker
import docker.errors

from sandbox.container import (
    DOCKER_ERRORS,
    LABEL,
    LABEL_EXPIRES,
    LABEL_OWNER,
    LABEL_RUN,
    LABEL_STEP,
    NAME_PREFIX,
    owner_key,
    process_start,
    remove_container,
    sandbox_name,
)
from sandbox.errors import DockerUnavailable

_CREATED_GRACE_S = 120  # a container may sit in "created" while its owner starts it


@dataclass(frozen=True, slots=True)
class Seen:
    """What the reaper knows of one sandbox container."""

    labels: Mapping[str, str]
    state: str
    created: int
    id: str = ""
    name: str = ""


def is_orphan(seen: Seen, *, me: str, now: float) -> bool:
    """Whether ``seen`` belongs to nobody (``me`` is this process's owner key)."""
    if seen.state == "created":
        return now - seen.created > _CREATED_GRACE_S or _owner_gone(seen, me)
    if seen.state != "running":
        return True
    try:
        if now > int(seen.labels.get(LABEL_EXPIRES, "")):
            return True
    except ValueError:
        return True
    return _owner_gone(seen, me)


def _owner_gone(seen: Seen, me: str) -> bool:
    """Whether the owner is checkable from here and has exited (or its pid was reused)."""
    owner = seen.labels.get(LABEL_OWNER, "").split(":")
    here = me.split(":")
    if len(owner) != 4 or owner[:2] != here[:2]:
        return False  # another machine or pid namespace: only the expiry speaks
    return process_start(int(owner[2])) != owner[3]


def reap_orphans(client: docker.DockerClient, *, now: float | None = None) -> list[str]:
    """Remove every orphaned sandbox container; return the names removed."""
    now = time.time() if now is None else now
    me = owner_key()
    removed = []
    for seen in _sandboxes(client):
        if is_orphan(seen, me=me, now=now):
            _remove(client, seen)
            removed.append(seen.name)
    return removed


def kill_sandboxes(
    client: docker.DockerClient, run_id: str, step_id: str | None = None
) -> list[str]:
    """Remove the sandboxes of a run (or of one of its steps); return their names.

    Cold containers carry the ids as labels; warm ones got them in their name when
    they were acquired, since Docker cannot relabel a container.
    """
    prefix = sandbox_name(run_id, step_id).rsplit("-", 1)[0] + "-"
    removed = []
    for seen in _sandboxes(client):
        labels = seen.labels
        by_label = labels.get(LABEL_RUN) == run_id and step_id in (None, labels.get(LABEL_STEP))
        if by_label or seen.name.startswith(prefix):
            _remove(client, seen)
            removed.append(seen.name)
    return removed


def _sandboxes(client: docker.DockerClient) -> list[Seen]:
    try:
        found = client.api.containers(all=True, filters={"label": f"{LABEL}=1"})
    except DOCKER_ERRORS as exc:
        raise DockerUnavailable(f"cannot list sandbox containers: {exc}") from exc
    return [
        Seen(
            labels={str(k): str(v) for k, v in (info.get("Labels") or {}).items()},
            state=str(info.get("State")),
            created=int(info.get("Created") or 0),
            id=str(info["Id"]),
            name=str((info.get("Names") or ["/"])[0]).lstrip("/"),
        )
        for info in found
    ]


def _remove(client: docker.DockerClient, seen: Seen) -> None:
    name = seen.name
    if not name.startswith(NAME_PREFIX):
        return  # labelled by someone else: not ours to remove
    remove_container(client, seen.id, name)
