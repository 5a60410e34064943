"""``python -m workers [--burst] [QUEUE…]``: what ``firstmate worker`` runs."""

from __future__ import annotations

import sys

from workers.queue import QUEUES
from workers.worker import work

if __name__ == "__main__":
    args = sys.argv[1:]
    burst = "--burst" in args
    names = [a for a in args if not a.startswith("--")] or list(QUEUES)
    work(names, burst=burst)
