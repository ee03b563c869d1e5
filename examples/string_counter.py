"""Count words in a text file: every task gets the file as a data file and counts one slice.

    python examples/string_counter.py -i local -n 2 [--file examples/data/corpus.txt] [--tasks 4]
"""

import argparse
import collections
import os

from pymw_admin.runtime import Master, options

HERE = os.path.dirname(os.path.abspath(__file__))


def count_words(file_name: str, part: int, parts: int) -> dict[str, int]:
    """Count the words on every ``parts``-th line of the data file, starting at line ``part``."""
    counts: collections.Counter[str] = collections.Counter()
    with open(file_name) as f:  # the data file sits in the task's working directory
        for number, line in enumerate(f):
            if number % parts == part:
                counts.update(line.split())
    return dict(counts)


def main() -> None:
    opts = options.parse_args()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", default=os.path.join(HERE, "data", "corpus.txt"))
    parser.add_argument("--tasks", type=int, default=4)
    args = parser.parse_args(opts.rest)

    name = os.path.basename(args.file)
    with Master(interface=options.interface_from_args()) as master:
        tasks = [master.submit_task(count_words, input_data=(name, part, args.tasks),
                                    data_files=(args.file,))
                 for part in range(args.tasks)]
        total: collections.Counter[str] = collections.Counter()
        for _ in tasks:
            _task, counts = master.get_result()
            total.update(counts)
    top = ", ".join(f"{word} {n}" for word, n in total.most_common(3))
    print(f"{sum(total.values())} words, {len(total)} distinct; most common: {top}")


if __name__ == "__main__":
    main()
