"""Cold start against warm pool: the latency from asking for a sandbox to a finished command."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import docker

from sandbox.container import DEFAULT_IMAGE
from sandbox.limits import Limits
from sandbox.pool import SandboxPool


@dataclass(frozen=True, slots=True)
class Latency:
    samples: tuple[float, ...]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@dataclass(frozen=True, slots=True)
class BenchReport:
    cold: Latency
    warm: Latency
    image_digest: str

    @property
    def ratio(self) -> float:
        """How many times faster a warm start is than a cold one (p50 against p50)."""
        return self.cold.p50 / self.warm.p50

    def as_dict(self) -> dict[str, object]:
        return {
            "samples": len(self.cold.samples),
            "cold_p50_ms": round(self.cold.p50 * 1000, 2),
            "cold_p95_ms": round(self.cold.p95 * 1000, 2),
            "warm_p50_ms": round(self.warm.p50 * 1000, 2),
            "warm_p95_ms": round(self.warm.p95 * 1000, 2),
            "ratio_p50": round(self.ratio, 1),
            "image_digest": self.image_digest,
        }


def measure(
    image: str = DEFAULT_IMAGE,
    *,
    samples: int = 20,
    runtime: str | None = None,
    client: docker.DockerClient | None = None,
) -> BenchReport:
    """Time ``acquire`` + ``exec(["true"])`` from a cold start and from a full warm pool.

    Both use the same hardened containers and limits; the warm pool is refilled to
    full before each sample, so it measures a pool that keeps up with demand.
    """
    limits = Limits()
    with SandboxPool(image, size=0, limits=limits, runtime=runtime, client=client) as cold_pool:
        cold = [_once(cold_pool, limits) for _ in range(samples)]
    with SandboxPool(image, size=2, limits=limits, runtime=runtime, client=client) as warm_pool:
        warm = []
        for _ in range(samples):
            warm_pool.wait_warm()
            warm.append(_once(warm_pool, limits))
        digest = warm_pool.image_digest
    return BenchReport(Latency(tuple(cold)), Latency(tuple(warm)), digest)


def _once(pool: SandboxPool, limits: Limits) -> float:
    started = time.perf_counter()
    with pool.acquire(limits=limits) as sandbox:
        result = sandbox.exec(["true"])
        elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        raise RuntimeError(f"`true` failed in the sandbox: {result}")
    return elapsed
