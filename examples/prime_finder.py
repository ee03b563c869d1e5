"""Count the primes below a bound, one range of numbers a task.

    python examples/prime_finder.py -i local -n 2 [--limit 200000] [--tasks 8]
"""

import argparse

from pymw_admin.runtime import Master, options


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def primes_in_range(low: int, high: int) -> list[int]:
    return [n for n in range(low, high) if is_prime(n)]


def main() -> None:
    opts = options.parse_args()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=200_000)
    parser.add_argument("--tasks", type=int, default=8)
    args = parser.parse_args(opts.rest)

    step = -(-args.limit // args.tasks)
    with Master(interface=options.interface_from_args()) as master:
        tasks = [
            master.submit_task(primes_in_range, input_data=(low, min(low + step, args.limit)),
                               dep_funcs=(is_prime,))
            for low in range(0, args.limit, step)
        ]
        primes: list[int] = []
        for task in tasks:
            primes.extend(master.get_result(task)[1])
    print(f"{len(primes)} primes below {args.limit}; the largest is {primes[-1]}")


if __name__ == "__main__":
    main()
