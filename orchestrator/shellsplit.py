"""Reading a ``sh -c`` command far enough to name every program it runs.

``segments`` cuts a command into its simple commands (at ``| || & && ; ( )`` and
newlines) the way the shell reads it: separators inside quotes, inside ``${…}`` or
after a backslash do not cut, comments are dropped, and here-document bodies are data.
``command_name`` names the program one simple command runs.

Both serve the command allowlist, so every doubt is settled towards naming more than
the shell runs, never less: a here-document whose delimiter is not a plain word, or
whose body never ends, is read as commands; a redirection's target is never taken for
the program; a path outside the system's bin directories is named whole. The reading
is for POSIX ``sh`` (dash): what only bash reads differently (``$'…'``) is flagged by
the allowlist as hiding what it runs.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_SEPARATORS = frozenset("|;&\n()")
_WORD_END = frozenset(" \t\n;&|<>()")
# A here-document delimiter we read as the shell does: a plain word, quoted or not.
_DELIMITER = re.compile(r"""(?:([\w.-]+)|'([\w.-]+)'|"([\w.-]+)"|\\([\w.-]+))""", re.ASCII)
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
_REDIRECTION = re.compile(r"^\d*(?:>>|>&|>\||<>|<&|>|<)")  # a word that starts with one
_BARE_REDIRECTION = re.compile(r"^\d*(?:>>|>&|>\||<>|<&|>|<)$")  # its target: the next word
_KEYWORDS = frozenset(
    {"!", "{", "}", "if", "then", "elif", "else", "fi", "while", "until", "do", "done", "esac"}
)
_BIN_DIRS = ("/bin/", "/usr/bin/", "/usr/local/bin/", "/sbin/", "/usr/sbin/")
# Variables that change which program runs, or what it loads: named when assigned.
LOADER_VARIABLES = frozenset({"PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "IFS"})


class Unreadable(ValueError):
    """A command this reading cannot be sure to split as the shell does (a quote left
    open, a quote inside ``${…}``): the allowlist names it rather than guess."""


def segments(command: str) -> list[str]:
    """The simple commands of ``command``, in order (empty ones included); Unreadable
    when the reading cannot be sure of them."""
    return _Reader(command).read()


def command_name(segment: str) -> str | None:
    """The program a simple command runs: its basename when it lives in a system bin
    directory, else as written; ``VAR=…`` when it sets a variable that changes which
    program runs; None for a command that runs nothing, or one named by a substitution
    (which the allowlist flags on its own)."""
    try:
        words = shlex.split(segment)
    except ValueError:  # unbalanced quotes: the shell refuses it; name its first word
        return segment.split(None, 1)[0] if segment.split() else None
    target = False
    for word in words:
        if target:  # the file a bare redirection operator reads or writes
            target = False
        elif assigned := _ASSIGNMENT.match(word):
            if assigned.group(1) in LOADER_VARIABLES:
                return f"{assigned.group(1)}=…"
        elif _REDIRECTION.match(word):
            target = bool(_BARE_REDIRECTION.match(word))
        elif word.startswith(("$(", "`")):  # the allowlist names substitutions itself
            return None
        elif word not in _KEYWORDS:
            return _program(re.split(r"[<>]", word, maxsplit=1)[0])
    return None


def _program(word: str) -> str:
    if "/" not in word:
        return word
    for bin_dir in _BIN_DIRS:
        if word.startswith(bin_dir) and "/" not in word[len(bin_dir) :]:
            return word[len(bin_dir) :]
    return word  # a program of the workspace, or anywhere else: named whole


@dataclass
class _Reader:
    """One pass over a command: quotes, ``${…}``, comments, here-documents."""

    text: str
    at: int = 0
    quote: str = ""  # the open quote: ' or ", or } inside ${…}
    braces: int = 0
    substitutions: int = 0  # depth of $( … ), which the allowlist flags anyway
    out: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    bodies: list[tuple[str | None, bool]] = field(default_factory=list)
    blank: bool = True  # the last character read ends a word (so ``#`` starts a comment)

    def read(self) -> list[str]:
        while self.at < len(self.text):
            self.step()
        if self.quote:
            raise Unreadable("a quote left open" if self.quote != "}" else "a ${ left open")
        self.out.append("".join(self.current))
        return self.out

    def step(self) -> None:
        text, at = self.text, self.at
        char = text[at]
        if char == "\\" and self.quote != "'":
            self.take(2)  # the escaped character (a newline: the line goes on)
        elif self.quote:
            self.in_quote(char)
        elif char in "'\"":
            self.quote = char
            self.take(1)
        elif text.startswith("${", at):
            self.quote, self.braces = "}", 1
            self.take(2)
        elif char == "#" and self.blank:
            end = text.find("\n", at)
            self.at = len(text) if end < 0 else end  # a comment, up to its newline
        elif text.startswith("<<<", at):
            self.take(3)
        elif text.startswith("<<", at):
            self.here_document()
        elif text.startswith("$(", at) or (char == ")" and self.substitutions):
            self.substitutions += 1 if char == "$" else -1
            self.take(2 if char == "$" else 1)
        elif char in _SEPARATORS:
            self.cut(char)
        else:
            self.take(1)

    def in_quote(self, char: str) -> None:
        if self.quote == "}":
            if char in "'\"`":
                raise Unreadable("a quote inside ${…}")
            self.braces += (char == "{") - (char == "}")
            if not self.braces:
                self.quote = ""
        elif char == self.quote:
            self.quote = ""
        self.take(1)

    def take(self, n: int) -> None:
        taken = self.text[self.at : self.at + n]
        self.current.append(taken)
        self.at += n
        self.blank = not self.quote and taken in (" ", "\t")

    def cut(self, char: str) -> None:
        self.out.append("".join(self.current))
        self.current = []
        self.at += 1
        self.blank = True
        if char == "\n" and self.bodies:
            self.at = _after_bodies(self.text, self.at, self.bodies)
            self.bodies = []

    def here_document(self) -> None:
        """``<<`` or ``<<-`` and its delimiter: a plain word is taken with it, anything
        else is left to be read as it comes (and its body then as commands)."""
        start = self.at + 2
        tabs = self.text.startswith("-", start)
        word_at = start + tabs
        while word_at < len(self.text) and self.text[word_at] in " \t":
            word_at += 1
        end = word_at
        while end < len(self.text) and self.text[end] not in _WORD_END:
            end += 1
        plain = _DELIMITER.fullmatch(self.text, word_at, end)
        delimiter = next((g for g in plain.groups() if g), None) if plain else None
        self.bodies.append((delimiter, tabs))
        self.at = end if plain else word_at


def _after_bodies(text: str, start: int, bodies: list[tuple[str | None, bool]]) -> int:
    """Where commands go on after the here-document bodies that begin at ``start``:
    ``start`` itself when a delimiter is not a plain word or a body never ends."""
    at = start
    for delimiter, tabs in bodies:
        while True:
            if delimiter is None or at >= len(text):
                return start
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            line, at = text[at:end], end + 1
            if (line.lstrip("\t") if tabs else line) == delimiter:
                break
    return min(at, len(text))
