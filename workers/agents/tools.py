"""The coder's tools (CONTRACTS: list_files, read_file, write_file, run, finish), carried
out in the step's sandbox on its copy of the workspace.

The model is not trusted. A path must stay inside ``/workspace`` after every symlink is
resolved (in the sandbox, where the links live), and nothing is written into ``.git``,
whose hooks and config git runs. A command runs only if everything it runs is in the
command allowlist (ours, FIRSTMATE_COMMAND_ALLOWLIST and the playbook's ``allowlist:``),
and then in the sandbox (no network, limits, a timeout per command and the step's
deadline). Every answer is capped before it goes
back to the model; a refusal is an answer too (the model may try something else) and
is reported in the step's outputs and events.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

from orchestrator.allowlist import Allowlist, listed
from orchestrator.providers.base import Tool, ToolCall
from sandbox import Sandbox, SandboxError

WORKSPACE = "/workspace"
READ_LIMIT = 256 * 1024  # bytes of one file the model may read
WRITE_LIMIT = 1024 * 1024  # bytes of one file the model may write
ANSWER_CHARS = 12_000  # characters of one tool answer sent back to the model
LISTED = 400  # entries of one listing
COMMAND_TIMEOUT_S = 120.0
_SKIPPED_DIRS = (".git", "__pycache__", ".venv", "node_modules", ".pytest_cache")
# Caches a command would leave in the workspace are not part of the change.
_RUN_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_ADDOPTS": "-p no:cacheprovider"}


def _schema(**props: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": d} for name, d in props.items()},
        "required": list(props),
        "additionalProperties": False,
    }


TOOLS = (
    Tool("list_files", "List files under a directory of the workspace.", _schema(path="dir")),
    Tool("read_file", "Read a text file of the workspace.", _schema(path="file path")),
    Tool(
        "write_file",
        "Create or replace a file of the workspace with the given content.",
        _schema(path="file path", content="the whole new content"),
    ),
    Tool(
        "run",
        "Run a shell command in the workspace (sandboxed, no network); returns its output.",
        _schema(command="sh -c command"),
    ),
    Tool("finish", "Say you are done, with a short summary of the change.", _schema(summary="")),
)


class Refused(Exception):
    """A tool call the workbench will not carry out; the message says why."""


@dataclass
class Answer:
    """What one tool call gave: the text for the model, and what the event records."""

    text: str
    ok: bool = True
    refused: str | None = None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Workbench:
    """The tools, on one sandbox, until ``deadline`` (a ``time.monotonic()`` value)."""

    box: Sandbox
    deadline: float
    allowlist: Allowlist = field(default_factory=Allowlist)
    written: set[str] = field(default_factory=set)
    refusals: list[dict[str, str]] = field(default_factory=list)

    def call(self, call: ToolCall) -> Answer:
        """Carry out one tool call (``finish`` is the loop's business, not ours)."""
        started = time.monotonic()
        try:
            answer = self._dispatch(call.name, call.arguments)
        except Refused as exc:
            reason = str(exc)
            self.refusals.append({"tool": call.name, "reason": reason})
            answer = Answer(f"refused: {reason}", ok=False, refused=reason)
        except SandboxError as exc:
            answer = Answer(f"error: the sandbox failed: {exc}", ok=False)
        answer.record = {
            "tool": call.name,
            **_described(call.arguments),
            **answer.record,
            "ok": answer.ok,
            "duration_s": round(time.monotonic() - started, 3),
        }
        if answer.refused:
            answer.record["refused"] = answer.refused
        answer.text = _capped(answer.text)
        return answer

    def _dispatch(self, name: str, args: dict[str, Any]) -> Answer:
        if name == "list_files":
            return self.list_files(_text(args, "path", default="."))
        if name == "read_file":
            return self.read_file(_text(args, "path"))
        if name == "write_file":
            return self.write_file(_text(args, "path"), _text(args, "content", default=""))
        if name == "run":
            return self.run(_text(args, "command"))
        raise Refused(f"there is no tool {name!r}; the tools are {', '.join(_names())}")

    def list_files(self, path: str) -> Answer:
        where = self.resolve(path)
        prune = " -o ".join(f"-name {d}" for d in _SKIPPED_DIRS)
        command = f"find . \\( {prune} \\) -prune -o \\( -type f -o -type l \\) -print | sort"
        result = self.box.exec(["sh", "-c", command], cwd=where, timeout=self._seconds(30))
        if result.exit_code != 0:
            return Answer(f"error: cannot list {path!r}: {result.stderr.strip()}", ok=False)
        names = [line[2:] for line in result.stdout.splitlines() if line.startswith("./")]
        shown = "\n".join(names[:LISTED])
        more = f"\n… and {len(names) - LISTED} more" if len(names) > LISTED else ""
        return Answer(shown + more or "(no files)", record={"entries": len(names)})

    def read_file(self, path: str) -> Answer:
        where = self.resolve(path)
        try:
            data = self.box.get_file(where, limit=READ_LIMIT)
        except SandboxError as exc:
            return Answer(f"error: cannot read {path!r}: {exc}", ok=False)
        if b"\0" in data[:8192]:
            return Answer(f"error: {path!r} is a binary file", ok=False)
        return Answer(data.decode("utf-8", "replace"), record={"bytes": len(data)})

    def write_file(self, path: str, content: str) -> Answer:
        where = self.resolve(path)
        relative = posixpath.relpath(where, WORKSPACE)
        if relative == "." or relative.split("/")[0] == ".git":
            raise Refused(f"{path!r}: writing there is not allowed")
        data = content.encode()
        if len(data) > WRITE_LIMIT:
            raise Refused(f"{path!r}: {len(data)} bytes is over the limit of {WRITE_LIMIT}")
        parent = posixpath.dirname(where)
        made = self.box.exec(["mkdir", "-p", "--", parent], timeout=self._seconds(10))
        if made.exit_code != 0:
            return Answer(f"error: cannot create {parent!r}: {made.stderr.strip()}", ok=False)
        try:
            self.box.put_file(where, data)
        except SandboxError as exc:
            return Answer(f"error: cannot write {path!r}: {exc}", ok=False)
        self.written.add(relative)
        return Answer(f"wrote {relative} ({len(data)} bytes)", record={"bytes": len(data)})

    def run(self, command: str) -> Answer:
        if not command.strip():
            raise Refused("an empty command")
        outside = self.allowlist.outside(command)
        if outside:
            raise Refused(
                f"outside the command allowlist: {listed(outside)} (a person adds commands"
                " with FIRSTMATE_COMMAND_ALLOWLIST or the playbook's allowlist:); use the"
                " other tools or allowed commands"
            )
        result = self.box.exec(command, env=_RUN_ENV, timeout=self._seconds(COMMAND_TIMEOUT_S))
        output = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")
        if result.timed_out:
            status = "killed: it ran past its time limit"
        elif result.oom_killed:
            status = "killed: out of memory"
        else:
            status = f"exit code {result.exit_code}"
        record = {"exit_code": result.exit_code, "timed_out": result.timed_out}
        return Answer(f"{status}\n{_tail(output)}", ok=result.ok, record=record)

    def resolve(self, path: str) -> str:
        """``path`` (relative to the workspace, or absolute inside it) with every symlink
        resolved in the sandbox; Refused when it leads outside the workspace."""
        if "\0" in path:
            raise Refused("a path with a NUL byte")
        joined = posixpath.normpath(posixpath.join(WORKSPACE, path))
        if not _inside(joined):
            raise Refused(f"{path!r} is outside the workspace")
        real = self.box.exec(["realpath", "-m", "--", joined], timeout=self._seconds(10))
        resolved = real.stdout.strip()
        if real.exit_code != 0 or not _inside(resolved):
            raise Refused(f"{path!r} leads outside the workspace")
        return resolved

    def _seconds(self, cap: float) -> float:
        left = self.deadline - time.monotonic()
        if left <= 1:
            raise Refused("the step's time is up")
        return min(cap, left)


def _inside(path: str) -> bool:
    return path == WORKSPACE or path.startswith(WORKSPACE + "/")


def _text(args: dict[str, Any], name: str, *, default: str | None = None) -> str:
    value = args.get(name, default)
    if not isinstance(value, str):
        raise Refused(f"argument {name!r} must be a string")
    return value


def _names() -> list[str]:
    return [t.name for t in TOOLS]


def _described(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments as an event shows them: paths and commands, not file contents."""
    shown: dict[str, Any] = {}
    for name, value in args.items():
        if name == "content" and isinstance(value, str):
            shown["content_chars"] = len(value)
        else:
            shown[name] = value if not isinstance(value, str) else value[:500]
    return shown


def _tail(text: str, chars: int = ANSWER_CHARS - 200) -> str:
    return text if len(text) <= chars else "[… cut …]\n" + text[-chars:]


def _capped(text: str) -> str:
    if len(text) <= ANSWER_CHARS:
        return text
    return text[:ANSWER_CHARS] + f"\n[… {len(text) - ANSWER_CHARS} more characters cut]"
