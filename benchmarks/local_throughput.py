"""Local interface throughput against concurrent.futures.ProcessPoolExecutor, same run.

    python benchmarks/local_throughput.py [--workers N] [--repeat 3]

(i) 10,000 no-op tasks; (ii) 200 CPU-bound tasks of about 20 ms. Each side uses the same number
of worker processes, started before the clock starts, and runs ``map``; the best of ``--repeat``
runs is taken for each. Prints tasks/s for both and the ratio (targets: >= 1.0x and >= 0.95x).
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import noop, report, spin, throughput_args, timed

from pymw_admin.runtime import Master


def main() -> int:
    args = throughput_args(__doc__)
    print(f"local interface vs ProcessPoolExecutor, {args.workers} workers, best of {args.repeat}")

    ok = True
    for title, func, count, target in (
        ("no-op", noop, args.noops, 1.0),
        ("cpu-20ms", spin, args.cpu_tasks, 0.95),
    ):
        items = list(range(count))
        ours = peer = float("inf")
        with Master(num_workers=args.workers) as master, ProcessPoolExecutor(args.workers) as pool:
            master.map(noop, range(args.workers * 4))  # workers up before the clock starts
            list(pool.map(noop, range(args.workers * 4)))
            for _ in range(args.repeat):
                ours = min(ours, timed(lambda f=func, i=items: master.map(f, i)))
                peer = min(peer, timed(lambda f=func, i=items: list(pool.map(f, i))))
        ok &= report(title, count, ours, peer, "ProcessPoolExecutor", target)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
