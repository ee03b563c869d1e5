"""MPI interface throughput against mpi4py.futures.MPIPoolExecutor, same run.

    python benchmarks/mpi_throughput.py [--workers N] [--repeat 3]

(i) 10,000 no-op tasks; (ii) 200 CPU-bound tasks of about 20 ms. Both sides spawn the same number
of MPI workers from this process (spawn mode), started before the clock starts, and run ``map``;
the best of ``--repeat`` runs is taken for each. Prints tasks/s for both and the ratio (target
>= 1.0x for both sets).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import noop, report, spin, throughput_args, timed

from pymw_admin.interfaces.mpi import MPIInterface
from pymw_admin.runtime import Master


def main() -> int:
    args = throughput_args(__doc__)
    print(f"mpi interface vs MPIPoolExecutor, {args.workers} spawned workers, "
          f"best of {args.repeat}")
    sets = (("no-op", noop, args.noops, 1.0), ("cpu-20ms", spin, args.cpu_tasks, 1.0))
    ours: dict[str, float] = {}
    peer: dict[str, float] = {}

    # one side at a time, so that idle workers of the other never compete for the cores
    with Master(MPIInterface(num_workers=args.workers)) as master:
        master.map(noop, range(args.workers * 4))  # workers up before the clock starts
        for title, func, count, _ in sets:
            items = list(range(count))
            ours[title] = min(timed(lambda f=func, i=items: master.map(f, i))
                              for _ in range(args.repeat))

    from mpi4py.futures import MPIPoolExecutor

    with MPIPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(noop, range(args.workers * 4)))
        for title, func, count, _ in sets:
            items = list(range(count))
            peer[title] = min(timed(lambda f=func, i=items: list(pool.map(f, i)))
                              for _ in range(args.repeat))

    ok = True
    for title, _, count, target in sets:
        ok &= report(title, count, ours[title], peer[title], "MPIPoolExecutor", target)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
