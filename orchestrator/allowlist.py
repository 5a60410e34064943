"""The command allowlist: what the commands of a plan an LLM made may run unapproved.

Commands a model plans are not trusted. Each command a step would run (a ``shell``
step's ``command``, a ``test`` step's ``command``, a ``code`` step's ``tests``) is named
(every segment of a pipeline or list, past ``VAR=value`` prefixes, by its basename);
one outside the allowlist, or a construct that hides what runs (``$(…)``, backquotes,
``eval``), marks the step as needing an explicit approval that names it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.kinds import SHELL_FIELDS
from orchestrator.plan import PlanSpec, StepSpec

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
_SEPARATORS = frozenset("|;&\n()")  # of simple commands, outside quotes
_HIDDEN = (("$(", "command substitution $(…)"), ("`", "command substitution `…`"))
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Commands that run whatever they are given: never allowed, so always named.
OPAQUE = frozenset({"eval", "exec", "source", ".", "sh", "bash", "dash", "zsh", "env"})


@dataclass(frozen=True)
class Allowlist:
    """The commands allowed: ours plus ``extra`` (FIRSTMATE_COMMAND_ALLOWLIST)."""

    allowed: frozenset[str] = DEFAULT_ALLOWED

    @classmethod
    def with_extra(cls, extra: Iterable[str]) -> Allowlist:
        return cls().extended(extra)

    @classmethod
    def from_setting(cls, value: str) -> Allowlist:
        """From the comma- or space-separated setting."""
        return cls.with_extra(re.split(r"[,\s]+", value))

    def extended(self, extra: Iterable[str]) -> Allowlist:
        """These commands plus ``extra`` (e.g. a playbook's ``allowlist:``)."""
        return Allowlist(self.allowed | {x.strip() for x in extra if x.strip()})

    def outside(self, command: str) -> list[str]:
        """What in ``command`` is not allowed (empty: all of it is), in order, once each."""
        found: list[str] = [why for token, why in _HIDDEN if token in command]
        for segment in _segments(command):
            name = _command_name(segment)
            if name is None:
                continue
            if name in OPAQUE or name not in self.allowed:
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
    hidden = {why for _, why in _HIDDEN}
    return ", ".join(x if x in hidden else f"`{x}`" for x in found)


def _segments(command: str) -> list[str]:
    """The simple commands of ``command``: split at ``| || & && ; ( )`` and newlines,
    except inside quotes or after a backslash (``python3 -c "a; b"`` is one command);
    the bodies of here-documents are data, not commands."""
    segments: list[str] = []
    current: list[str] = []
    quote, escaped, pending, depth = "", False, [], 0
    i = 0
    while i < len(command):
        char = command[i]
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif command.startswith("<<", i) and not command.startswith("<<<", i):
            delimiter, tabs, i = _heredoc(command, i)
            pending.append((delimiter, tabs))
            current.append("<<")
            continue
        elif (char == "(" and current[-1:] == ["$"]) or (char == ")" and depth):
            depth += 1 if char == "(" else -1  # $( … ) is named as hidden, not split
        elif char in _SEPARATORS:
            segments.append("".join(current))
            current = []
            i += 1
            if char == "\n" and pending:
                i, pending = _after_bodies(command, i, pending), []
            continue
        current.append(char)
        i += 1
    segments.append("".join(current))
    return segments


def _heredoc(command: str, at: int) -> tuple[str, bool, int]:
    """The here-document at ``<<``: its delimiter as the shell reads it (quotes and
    backslashes removed), whether ``<<-`` strips tabs, and where its word ends."""
    i = at + 2
    tabs = command.startswith("-", i)
    i += tabs
    while i < len(command) and command[i] in " \t":
        i += 1
    word: list[str] = []
    quote = ""
    while i < len(command):
        char = command[i]
        if quote:
            if char == quote:
                quote = ""
            else:
                word.append(char)
        elif char in "'\"":
            quote = char
        elif char == "\\" and i + 1 < len(command):
            i += 1
            word.append(command[i])
        elif char.isspace() or char in "|;&<>()":
            break
        else:
            word.append(char)
        i += 1
    return "".join(word), tabs, i


def _after_bodies(command: str, start: int, pending: list[tuple[str, bool]]) -> int:
    """Where the commands go on after the here-document bodies that begin at ``start``;
    ``start`` itself when a body never ends (its lines are then read as commands, which
    can only name more than the shell runs, never less)."""
    at = start
    for delimiter, tabs in pending:
        while True:
            if at >= len(command) or not delimiter:
                return start
            end = command.find("\n", at)
            end = len(command) if end < 0 else end
            line = command[at:end]
            at = end + 1
            if (line.lstrip("\t") if tabs else line) == delimiter:
                break
    return min(at, len(command))


def _command_name(segment: str) -> str | None:
    """The command a simple command runs (its basename), past redirections and
    variable assignments; None for an empty segment."""
    try:
        words = shlex.split(segment, comments=True)
    except ValueError:  # unbalanced quotes: let the whole segment be named
        return segment.strip().split(" ", 1)[0] or None
    for word in words:
        if _ASSIGNMENT.match(word) or word in ("!", "{", "}", "then", "do", "else"):
            continue
        if word[:1] in "<>" or word[:2] in ("2>", "1>", "&>"):
            continue
        if word.startswith(("$(", "`")):  # already named: it hides what runs
            return None
        return word.rsplit("/", 1)[-1]
    return None
