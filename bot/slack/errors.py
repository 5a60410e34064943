"""Errors of the Slack front door.

FirstmateError
└── SlackError
    ├── SlackUnavailable   Slack's API did not answer (or refused) a lookup we need
    └── NotAllowed         the person may not do this (the message says why)
"""

from __future__ import annotations

from orchestrator.errors import FirstmateError


class SlackError(FirstmateError):
    """Something the Slack front door could not do."""


class SlackUnavailable(SlackError):
    """A Slack API call we depend on failed."""


class NotAllowed(SlackError):
    """The person may not make this decision."""
