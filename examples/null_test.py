"""Submit tasks that do nothing, to measure the interface's per-task overhead.

    python examples/null_test.py -i local -n 2 [--tasks 1000]
"""

import argparse
import time

from pymw_admin.runtime import Master, options


def null_task() -> None:
    return None


def main() -> None:
    opts = options.parse_args()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args(opts.rest)

    with Master(interface=options.interface_from_args()) as master:
        start = time.perf_counter()
        tasks = [master.submit_task(null_task) for _ in range(args.tasks)]
        for task in tasks:
            master.get_result(task)
        elapsed = time.perf_counter() - start
    print(f"{args.tasks} null tasks in {elapsed:.3f} s ({args.tasks / elapsed:.0f} tasks/s)")


if __name__ == "__main__":
    main()
