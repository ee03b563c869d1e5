"""Master scripts for the mpi interface's process tests: how a run ends.

    mpiexec -n 3 python lifecycle.py -i mpi MODE     (or: python lifecycle.py -i mpi -n 2 MODE)

MODE: ``no-cleanup`` ends the script without cleaning up; ``raise`` ends it with an exception;
``kill-rank`` kills a worker's MPI process (what MPICH does then: docs/interfaces/mpi.md).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from pymw_admin.runtime import Master, options


def square(x: int) -> int:
    return x * x


def main() -> int:
    opts = options.parse_args()
    mode = opts.rest[0]
    master = Master(interface=options.interface_from_args())
    print(f"MASTER CODE RAN pid={os.getpid()}", flush=True)
    print("results", master.map(square, range(20))[-1], flush=True)
    if mode == "raise":
        raise RuntimeError("the master script failed")
    if mode == "kill-rank":
        victim = master.get_status().workers[0]["extra"]["pid"]
        task = master.submit_task(time.sleep, (30,))
        time.sleep(0.5)
        print(f"killing worker process {victim}", flush=True)
        os.kill(victim, signal.SIGKILL)
        master.get_result(task, timeout=120)
        print("MASTER SURVIVED", flush=True)
    return 0  # no cleanup: the master's exit handler ends the workers


if __name__ == "__main__":
    sys.exit(main())
