"""Shared bits of the benchmarks: timing, the task sets, printing ratios against a peer."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable


def noop(x: int) -> int:
    return x


def spin(x: int, seconds: float = 0.02) -> int:
    """CPU-bound for about ``seconds``: a busy loop, not sleep, so cores really work."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return x


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def report(title: str, count: int, ours: float, peer: float, peer_name: str, target: float) -> bool:
    ours_rate, peer_rate = count / ours, count / peer
    ratio = ours_rate / peer_rate
    verdict = "meets" if ratio >= target else "MISSES"
    print(
        f"{title}: pymw {ours_rate:,.0f} tasks/s ({ours:.2f} s), {peer_name} {peer_rate:,.0f} "
        f"tasks/s ({peer:.2f} s); ratio {ratio:.2f}x ({verdict} target {target:.2f}x)"
    )
    return ratio >= target


def throughput_args(doc: str | None) -> argparse.Namespace:
    """The options the throughput benchmarks share: workers, repeats and the two task sets."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--noops", type=int, default=10_000)
    parser.add_argument("--cpu-tasks", type=int, default=200)
    return parser.parse_args()
