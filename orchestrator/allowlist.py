"""The command allowlist: what the commands of a plan an LLM made may run unapproved.

Commands a model plans are not trusted. Each command a step would run (a ``shell``
step's ``command``, a ``test`` step's ``command``, a ``code`` step's ``tests``) is named
(every simple command of a pipeline or list, as ``shellsplit`` reads it); one outside
the allowlist, or a construct that hides what runs (``$(…)``, backquotes, ``eval``,
``xargs``, ``PATH=…``), marks the step as needing an explicit approval that names it.

The allowlist names programs; it does not read their arguments. An allowed program
that can run others (``python3 -c``, ``find -exec``, ``awk``'s ``system()``, ``git``'s
aliases) can run anything, so the sandbox, not this list, is what contains a command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.kinds import SHELL_FIELDS
from orchestrator.plan import PlanSpec, StepSpec
from orchestrator.shellsplit import Unreadable, command_name, segments

# Read-only or workspace-local tools (a sandbox has no network and only the workspace
# is writable; this list is about what a person would want to see before it runs).
DEFAULT_ALLOWED = frozenset(
    (
        "awk",
        "basename",
        "cat",
        "cd",
        "cmp",
        "comm",
        "cut",
        "date",
        "diff",
        "dirname",
        "echo",
        "expr",
        "false",
        "file",
        "find",
        "grep",
        "head",
        "jq",
        "ls",
        "md5sum",
        "mkdir",
        "mypy",
        "nl",
        "od",
        "paste",
        "printf",
        "pwd",
        "pytest",
        "python",
        "python3",
        "realpath",
        "ruff",
        "sed",
        "seq",
        "sha256sum",
        "sleep",
        "sort",
        "stat",
        "tail",
        "tee",
        "test",
        "touch",
        "tr",
        "true",
        "uniq",
        "wc",
        "which",
        "[",
        "git",
    )
)
_HIDDEN = (
    ("$(", "command substitution $(…)"),
    ("`", "command substitution `…`"),
    ("$'", "bash quoting $'…'"),
)
# Commands that run whatever they are given (another command, a script they read):
# never allowed, so always named.
OPAQUE = frozenset(
    {"eval", "exec", "source", ".", "sh", "bash", "dash", "zsh", "ksh", "env", "xargs"}
    | {"timeout", "nice", "nohup", "time", "command", "builtin", "busybox", "stdbuf"}
    | {"setsid", "sudo", "su", "doas", "chroot", "unshare", "nsenter", "watch", "strace"}
    | {"alias", "trap", "function"}
)


@dataclass(frozen=True)
class Allowlist:
    """The commands allowed: ours, plus any ``extended`` with (FIRSTMATE_COMMAND_ALLOWLIST,
    a playbook's ``allowlist:``)."""

    allowed: frozenset[str] = DEFAULT_ALLOWED

    @classmethod
    def from_setting(cls, value: str) -> Allowlist:
        """Ours plus the comma- or space-separated setting."""
        return cls().extended(re.split(r"[,\s]+", value))

    def extended(self, extra: Iterable[str]) -> Allowlist:
        """These commands plus ``extra`` (e.g. a playbook's ``allowlist:``)."""
        return Allowlist(self.allowed | {x.strip() for x in extra if x.strip()})

    def outside(self, command: str) -> list[str]:
        """What in ``command`` is not allowed (empty: all of it is), in order, once each."""
        found: list[str] = [why for token, why in _HIDDEN if token in command]
        try:
            simple = segments(command)
        except Unreadable as exc:
            return [*found, str(exc)]
        for segment in simple:
            name = command_name(segment)
            if name is not None and (name in OPAQUE or name not in self.allowed):
                found.append(name)
        return list(dict.fromkeys(found))

    def mark(self, plan: PlanSpec) -> tuple[PlanSpec, dict[str, list[str]]]:
        """The plan with every step whose command runs something outside the allowlist
        marked ``approval: required`` (its description naming what), and what was
        found per step."""
        found: dict[str, list[str]] = {}
        steps: list[StepSpec] = []
        for step in plan.steps:
            fields = SHELL_FIELDS.get(step.agent, frozenset())  # shell, test, code's tests
            commands = [v for k, v in step.with_.items() if k in fields and isinstance(v, str)]
            outside = list(dict.fromkeys(x for c in commands for x in self.outside(c)))
            if outside:
                found[step.id] = outside
                note = f"needs approval: runs {listed(outside)} (not in the command allowlist)"
                description = f"{note}. {step.description}".strip()
                step = step.model_copy(update={"approval": "required", "description": description})
            steps.append(step)
        return plan.model_copy(update={"steps": steps}), found


def listed(found: Iterable[str]) -> str:
    """What ``outside`` found, for people: commands in backquotes, constructs in words."""
    return ", ".join(x if " " in x else f"`{x}`" for x in found)
