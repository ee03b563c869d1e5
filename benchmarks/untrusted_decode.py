"""Decoding an honest 1 MB volunteer result: the bounded decoder against the one it replaced.

    python benchmarks/untrusted_decode.py [--repeat 15] [--pure]

The peer is the previous decoder, measured in the same run on the same record bytes: a C restricted
unpickler with an allow-list ``find_class`` and no other limit. Ours is
``encoding.decode_result_header`` + ``encoding.decode_value(trusted=False)`` (opcode scan, then the
bounded unpickler). Each common shape of a result is about 1 MB pickled; the two decoders take
turns, and the best of ``--repeat`` runs (more for quick shapes) of each is taken. Target: no more
than 1.2x the peer's time, for every shape.

numpy results (a 10 MB float64 array, a list of 100,000 numpy scalars), which the previous decoder
refused, are measured against the trusted decode, ``decode_value(trusted=True)`` (pickle.loads:
numpy's own constructors), with the same target; skipped where numpy is not installed. The list
of scalars is loaded a run of calls at a time (untrusted.py, "runs of numpy scalars"), its runs
found by strided slices in pure Python either way: about 0.7x.

The opcode scan skips a list's plain items with its C accelerator when the package was built with
it, else in pure Python (regexes and strided slices), as the comparer on a BOINC server does; the
first line printed says which ran. ``--pure`` measures the pure-Python scan even where the
accelerator is built (its target is the same, and lists of ints of mixed widths or of short
strings of mixed lengths miss it, at about 1.7x).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import pickle
import random
import time
from collections.abc import Callable
from typing import Any

from pymw_admin.wire import encoding, untrusted

TARGET = 1.2


class _PreviousDecoder(pickle.Unpickler):
    """What decoded volunteers' results before the bounded decoder (the peer)."""

    def find_class(self, module: str, name: str) -> Any:
        if name in untrusted.SAFE_GLOBALS.get(module, ()):
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"{module}.{name} refused")


def previous(record: bytes) -> Any:
    header_end = record.index(b"\n", len(encoding.RESULT_MAGIC))
    import json

    encoding.ResultRecord(**json.loads(record[len(encoding.RESULT_MAGIC) : header_end]))
    return _PreviousDecoder(io.BytesIO(record[header_end + 1 :])).load()


def ours(record: bytes) -> Any:
    return encoding.decode_value(encoding.decode_result_header(record), trusted=False)


def shapes() -> dict[str, Any]:
    """The common shapes of an honest result, each about 1 MB pickled."""
    rng = random.Random(1)
    return {
        "1 MB str": "x" * 2**20,
        "1 MB bytes": rng.randbytes(2**20),
        "floats (list of 116k)": [rng.random() for _ in range(116_000)],
        "ints (list of 200k)": [rng.randrange(10**6) for _ in range(200_000)],
        "nested lists (2300 lists of 50 floats)": [[rng.random() for _ in range(50)]
                                                   for _ in range(2300)],
        "tuples (list of 38k float triples)": [(rng.random(), rng.random(), rng.random())
                                               for _ in range(38_000)],
        "records (list of 30k dicts)": [{"id": i, "name": f"n{i}", "score": rng.random()}
                                        for i in range(30_000)],
        "columns (dict of 3 lists of 40k)": {
            "x": [rng.random() for _ in range(40_000)],
            "n": [rng.randrange(10**6) for _ in range(40_000)],
            "label": [f"l{rng.randrange(1000)}" for _ in range(40_000)]},
    }


def numpy_shapes() -> dict[str, Any]:
    """numpy results (issue 26); none where numpy is not installed."""
    try:
        import numpy
    except ImportError:
        return {}
    rng = numpy.random.default_rng(1)
    return {
        "numpy float64 array (10 MB)": rng.random(10 * 2**20 // 8),
        "numpy scalars (list of 100k float64)": [numpy.float64(x) for x in rng.random(100_000)],
    }


def trusted(record: bytes) -> Any:
    return encoding.decode_value(encoding.decode_result_header(record), trusted=True)


def best_of(runs: list[Callable[[], Any]], repeat: int, seconds: float = 0.5) -> list[float]:
    """The best time of each run, taking turns so that both see the same load of the machine;
    ``repeat`` turns, or more for quick runs, to spend about ``seconds`` on each."""
    start = time.perf_counter()
    runs[0]()
    once = time.perf_counter() - start
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(max(repeat, min(2000, int(seconds / max(once, 1e-6))))):
        for run, spent in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            spent.append(time.perf_counter() - start)
    return [min(spent) for spent in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--pure", action="store_true",
                        help="scan in pure Python even where the C accelerator is built")
    args = parser.parse_args()
    if args.pure:
        untrusted._c_match_items = None
    print(f"untrusted result decoding vs the previous restricted unpickler, best of {args.repeat}+")
    print("opcode scan: " + ("pure Python (regexes and strided slices)"
                             if untrusted._c_match_items is None else "C accelerator"))
    ok = True
    for name, value in shapes().items():
        payload = pickle.dumps(value, protocol=encoding.PICKLE_PROTOCOL)
        record = encoding.encode_result(encoding.ResultRecord(
            task_id="t", ok=True, python=encoding.python_minor(), payload=payload))
        assert ours(record) == previous(record) == value
        peer, mine = best_of([functools.partial(previous, record), functools.partial(ours, record)],
                             args.repeat)
        ratio = mine / peer
        verdict = "meets" if ratio <= TARGET else "MISSES"
        ok = ok and ratio <= TARGET
        print(f"{name} ({len(record) / 2**20:.2f} MiB): pymw {mine * 1e3:.1f} ms, previous "
              f"{peer * 1e3:.1f} ms; ratio {ratio:.2f}x ({verdict} target <= {TARGET}x)")
    for name, value in numpy_shapes().items():
        payload = pickle.dumps(value, protocol=encoding.PICKLE_PROTOCOL)
        record = encoding.encode_result(encoding.ResultRecord(
            task_id="t", ok=True, python=encoding.python_minor(), payload=payload))
        assert pickle.dumps(ours(record), protocol=5) == payload
        peer, mine = best_of([functools.partial(trusted, record), functools.partial(ours, record)],
                             args.repeat)
        ratio = mine / peer
        verdict = "meets" if ratio <= TARGET else "MISSES"
        ok = ok and ratio <= TARGET
        print(f"{name} ({len(record) / 2**20:.2f} MiB): pymw {mine * 1e3:.1f} ms, trusted "
              f"(pickle.loads) {peer * 1e3:.1f} ms; ratio {ratio:.2f}x ({verdict} target <= "
              f"{TARGET}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
