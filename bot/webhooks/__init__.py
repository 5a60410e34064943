"""The HTTP edge: the FastAPI app ``firstmate serve`` runs (health, readiness, Slack).

Build it with :func:`create_app`, passing the adapters the entry point wired up.
"""

from bot.webhooks.app import create_app

__all__ = ["create_app"]
