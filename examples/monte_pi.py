"""Estimate pi by Monte Carlo: each task throws darts at the unit square.

    python examples/monte_pi.py -i local -n 2 [--tasks 10] [--darts 100000]
"""

import argparse
import random

from pymw_admin.runtime import Master, options


def throw_darts(num_darts: int, seed: int) -> int:
    """How many of num_darts random points land inside the quarter circle."""
    rng = random.Random(seed)
    return sum(1 for _ in range(num_darts) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)


def main() -> None:
    opts = options.parse_args()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--darts", type=int, default=100_000)
    args = parser.parse_args(opts.rest)

    with Master(interface=options.interface_from_args()) as master:
        tasks = [master.submit_task(throw_darts, input_data=(args.darts, seed))
                 for seed in range(args.tasks)]
        hits = 0
        for _ in tasks:
            _task, inside = master.get_result()
            hits += inside
    pi = 4.0 * hits / (args.darts * args.tasks)
    print(f"pi is about {pi:.5f} ({args.tasks} tasks, {args.darts * args.tasks} darts)")


if __name__ == "__main__":
    main()
