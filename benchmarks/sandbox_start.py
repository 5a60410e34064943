"""Cold start against warm pool: p50/p95 latency of acquire + ``exec(["true"])``.

Both are measured in this one run, on the same image and hardened limits, so the
ratio compares like with like on whatever machine runs it. The target is a ratio of
at least 10 (a warm command in about ten milliseconds; a cold ``docker run`` costs
about 220 ms here).

    uv run python benchmarks/sandbox_start.py [--samples N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os

from sandbox import DEFAULT_IMAGE
from sandbox.bench import measure

TARGET_RATIO = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    image = os.environ.get("FIRSTMATE_SANDBOX_IMAGE", DEFAULT_IMAGE)
    report = measure(image, samples=args.samples)
    figures = report.as_dict()
    figures["target_ratio"] = TARGET_RATIO
    figures["target_met"] = report.ratio >= TARGET_RATIO
    if args.json:
        print(json.dumps(figures))
        return
    print(f"sandbox start latency, {args.samples} samples each (acquire + exec true)")
    print(f"{'':12}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'cold start':12}{figures['cold_p50_ms']:>10}{figures['cold_p95_ms']:>10}")
    print(f"{'warm pool':12}{figures['warm_p50_ms']:>10}{figures['warm_p95_ms']:>10}")
    verdict = "met" if figures["target_met"] else "NOT met"
    ratio = figures["ratio_p50"]
    print(f"ratio cold/warm at p50: {ratio}x (target >= {TARGET_RATIO:g}x: {verdict})")


if __name__ == "__main__":
    main()
