"""What a person typed to Firstmate (``/mate …``, ``@Firstmate …``, a thread reply),
parsed into a command. Pure: no Slack, no database."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from orchestrator.errors import FirstmateError

USAGE = (
    "*Firstmate* — what I understand:\n"
    "• `/mate run <playbook> [key=value …]` — run a playbook (its plan is posted for approval)\n"
    "• `/mate <what you want done>` — a request in your words (needs an LLM: `FIRSTMATE_LLM`)\n"
    "• `/mate status [run]` — the newest runs, or one run\n"
    "• `/mate help` — this message\n"
    "In a run's thread: `status`, `cancel`, `retry <step>`."
)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
# Slack sends a link as ``<url>`` or ``<url|what was typed>``, and ``&``, ``<``, ``>``
# escaped as HTML entities (in slash commands too): a command reads what was typed.
_LINK = re.compile(r"<((?:https?|mailto):[^|>]*)(?:\|([^>]*))?>")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class UsageError(FirstmateError):
    """The text is not a command Firstmate understands (the message says why)."""


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Status:
    run_id: str | None = None


@dataclass(frozen=True)
class RunPlaybook:
    playbook: str
    inputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    text: str


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Retry:
    step: str


Command = Help | Status | RunPlaybook | Request
ThreadCommand = Status | Cancel | Retry


def without_mentions(text: str) -> str:
    """The text as typed, with ``<@U123>`` mentions removed (what an app mention
    carries), links unwrapped and ``&amp;``, ``&lt;``, ``&gt;`` unescaped."""
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), _MENTION.sub(" ", text))
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text.strip()


def parse(text: str) -> Command:
    """Parse the text of a slash command or a mention."""
    text = without_mentions(text)
    word, _, rest = text.partition(" ")
    verb = word.lower()
    if verb in ("", "help", "-h", "--help"):
        return Help()
    if verb == "status":
        return Status(rest.strip() or None)
    if verb == "run":
        return _run(rest)
    return Request(text)


def parse_thread(text: str) -> ThreadCommand | None:
    """Parse a reply in a run's thread; None when it is not addressed to Firstmate."""
    words = without_mentions(text).split()
    if not words:
        return None
    verb = words[0].lower()
    if verb == "status" and len(words) == 1:
        return Status()
    if verb == "cancel" and len(words) == 1:
        return Cancel()
    if verb == "retry" and len(words) == 2:
        return Retry(words[1])
    return None


def _run(rest: str) -> RunPlaybook:
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"cannot read that: {exc}") from exc
    if not words:
        raise UsageError("which playbook? `/mate run <playbook> [key=value …]`")
    playbook, inputs = words[0], {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(
                f"{word!r} is not an input: write inputs as key=value (quote values with spaces)"
            )
        if key in inputs:
            raise UsageError(f"input {key!r} is given twice")
        inputs[key] = value
    return RunPlaybook(playbook, inputs)
