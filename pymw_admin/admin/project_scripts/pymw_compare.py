#!/usr/bin/env python3
"""Do two replicas of a pymw task agree? Called by BOINC's script_validator:

    pymw_compare FILE1 FILE2        exit 0: they agree; exit 1: they differ

A result record is a JSON header line and a pickled payload. Two records agree when both succeeded
with the same value, or both failed with the same exception type and message; the host, timings and
captured output may differ. A value is compared as a canonical, type-tagged byte string, never with
Python's ``==``: ``1``, ``True`` and ``1.0`` differ, a set's members are sorted by their bytes
(equal sets need not pickle alike), a numpy array or scalar is its dtype, shape and bytes in any
byte or memory order (exactly: no float tolerance), without numpy. The payload is decoded by
``pymw_untrusted`` (installed beside this script): plain data only, within size, nesting and
hashing limits. A payload it refuses, or one that takes longer than the time budget, is compared
byte for byte. Either way the answer comes within a second. Standard library only: the server's
python3 runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import pymw_untrusted

MAGIC = b"PYMW-RESULT 1\n"
TIME_BUDGET = 0.7  # seconds for decoding both values; BOINC's validator waits for us
LIMITS = pymw_untrusted.Limits(max_seconds=TIME_BUDGET)


class _OutOfTime(Exception):
    pass


def _out_of_time(*_: object) -> None:
    raise _OutOfTime


def value_of(payload: bytes) -> tuple[str, bytes]:
    if not payload:
        return ("value", b"N")
    try:
        # numpy values as their dtype, shape and bytes: the server has no numpy
        value = pymw_untrusted.loads(payload, LIMITS, numpy_describe=True)
        return ("value", pymw_untrusted.canonical(value))
    except _OutOfTime:
        raise
    except Exception:  # not plain data, or past a limit: only identical bytes can agree
        return ("bytes", payload)


Record = tuple[dict[str, object], bytes]  # a result record's header and payload


def record(blob: bytes) -> Record | None:
    """The header and payload of a result record, None if it is not one (ValueError: a header
    line that is missing or not JSON)."""
    if not blob.startswith(MAGIC):
        return None
    end = blob.index(b"\n", len(MAGIC))
    try:
        header = json.loads(blob[len(MAGIC) : end])
    except RecursionError:
        return None
    return (header, blob[end + 1 :]) if isinstance(header, dict) else None


def same_success(first: Record | None, second: Record | None) -> bool:
    """Both succeeded with byte-identical payloads (a deterministic task's replicas): the same
    value, whatever it decodes to, known without decoding."""
    return (first is not None and second is not None and first[0].get("ok") is True
            and second[0].get("ok") is True and first[1] == second[1])


def outcome(rec: Record | None) -> tuple[object, ...] | None:
    if rec is None:
        return None
    header, payload = rec
    if header.get("ok") is True:
        return ("ok", value_of(payload))
    error_type, message = header.get("error_type"), header.get("error_message")
    if not isinstance(error_type, str) or not isinstance(message, str):
        return None
    return ("error", error_type, message)


@contextlib.contextmanager
def _budget() -> Iterator[None]:
    signal.setitimer(signal.ITIMER_REAL, TIME_BUDGET)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: pymw_compare FILE1 FILE2", file=sys.stderr)
        return 2
    try:
        blobs = []
        for path in argv:
            with open(path, "rb") as f:
                blobs.append(f.read())
    except OSError as exc:
        print(f"pymw_compare: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGALRM, _out_of_time)
    try:
        with _budget():
            first, second = record(blobs[0]), record(blobs[1])
        if same_success(first, second):
            return 0
        pymw_untrusted.prepare()  # the decoder's patterns compile outside the decoding budget
        with _budget():
            agree = (value := outcome(first)) is not None and value == outcome(second)
    except _OutOfTime:  # too big to read in time: only identical bytes agree
        return 0 if blobs[0] == blobs[1] else 1
    except ValueError as exc:
        print(f"pymw_compare: {exc}", file=sys.stderr)
        return 1
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
