"""Limits validation and the pool's matching key (no Docker)."""

from __future__ import annotations

import pytest

from sandbox import InvalidLimits, Limits


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memory_mb", 0),
        ("memory_mb", 8),
        ("cpus", 0),
        ("pids", -1),
        ("timeout_s", 0),
        ("output_bytes", 10),
        ("tmpfs_mb", 0),
        ("workspace_mb", -5),
        ("nofile", 0),
        ("fsize_mb", 0),
    ],
)
def test_out_of_range_limits_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(InvalidLimits, match=f"Limits.{field}"):
        Limits(**{field: value})  # type: ignore[arg-type]


def test_invalid_limits_are_value_errors_too() -> None:
    with pytest.raises(ValueError):
        Limits(pids=0)


def test_network_is_off_by_default() -> None:
    assert Limits().network is False


def test_per_command_limits_do_not_change_the_container_key() -> None:
    base = Limits()
    assert Limits(timeout_s=5, output_bytes=1024).container_key() == base.container_key()
    assert Limits(memory_mb=2048).container_key() != base.container_key()
    assert Limits(network=True).container_key() != base.container_key()
