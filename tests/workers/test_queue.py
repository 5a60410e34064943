"""The RQ adapter's own rules (no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.queue import _whole_second_after


def test_scheduled_times_round_up_so_a_retry_never_starts_early() -> None:
    # RQ's scheduler truncates to whole seconds: 12:00:01.9 would fire at 12:00:01.
    late = datetime(2026, 1, 1, 12, 0, 1, 900_000, tzinfo=UTC)
    assert _whole_second_after(late) == datetime(2026, 1, 1, 12, 0, 2, tzinfo=UTC)
    exact = datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
    assert _whole_second_after(exact) == exact
