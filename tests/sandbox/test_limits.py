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


def test_memory_must_hold_every_tmpfs_full() -> None:
    with pytest.raises(InvalidLimits) as refused:
        Limits(memory_mb=256, workspace_mb=512)
    message = str(refused.value)
    for words in ("Limits.memory_mb=256", "Limits.workspace_mb=512", "Limits.tmpfs_mb=64"):
        assert words in message
    assert ">= 768" in message
    assert "Limits.for_memory(256)" in message
    assert Limits(memory_mb=768).memory_mb == 768  # exactly enough is enough


@pytest.mark.parametrize("memory", [89, 128, 256, 300, 700, 1024, 1536, 8192])
def test_for_memory_scales_the_tmpfs_sizes_down_to_fit(memory: int) -> None:
    limits = Limits.for_memory(memory)
    assert limits.memory_mb == memory
    assert limits.workspace_mb <= max(1, memory // 2)
    assert 8 <= limits.tmpfs_mb <= max(8, memory // 16)
    assert limits.workspace_mb + 3 * limits.tmpfs_mb + 64 <= memory
    assert limits.workspace_mb <= 512 and limits.tmpfs_mb <= 64


def test_for_memory_keeps_the_defaults_when_they_fit_and_takes_overrides() -> None:
    assert Limits.for_memory(1024) == Limits()
    tuned = Limits.for_memory(2048, workspace_mb=1024, network=True, timeout_s=5)
    assert (tuned.workspace_mb, tuned.tmpfs_mb, tuned.network, tuned.timeout_s) == (
        1024,
        64,
        True,
        5,
    )
    with pytest.raises(InvalidLimits, match="too small"):
        Limits.for_memory(64)
    with pytest.raises(InvalidLimits, match=r"Limits\.workspace_mb=200"):
        Limits.for_memory(128, workspace_mb=200)
