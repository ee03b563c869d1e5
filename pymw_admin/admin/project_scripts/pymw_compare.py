#!/usr/bin/env python3
"""Do two replicas of a pymw task agree? Called by BOINC's script_validator:

    pymw_compare FILE1 FILE2        exit 0: they agree; exit 1: they differ

A result record is a JSON header line and a pickled payload. Two records agree when both succeeded
with the same value, or both failed with the same exception type and message; the host, timings and
captured output may differ. A value is compared as a canonical, type-tagged byte string, never with
Python's ``==``: ``1``, ``True`` and ``1.0`` differ, a set's members are sorted by their bytes
(equal sets need not pickle alike). The payload is decoded by ``pymw_untrusted`` (installed beside
this script): plain data only, within size, nesting and hashing limits. A payload it refuses, or one
that takes longer than the time budget, is compared byte for byte. Either way the answer comes
within a second. Standard library only: the server's python3 runs it.
"""

from __future__ import annotations

import json
import os
import signal
import sys

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
        return ("value", pymw_untrusted.canonical(pymw_untrusted.loads(payload, LIMITS)))
    except _OutOfTime:
        raise
    except Exception:  # not plain data, or past a limit: only identical bytes can agree
        return ("bytes", payload)


def outcome(blob: bytes) -> tuple[object, ...] | None:
    if not blob.startswith(MAGIC):
        return None
    end = blob.index(b"\n", len(MAGIC))
    try:
        header = json.loads(blob[len(MAGIC) : end])
    except RecursionError:
        return None
    if not isinstance(header, dict):
        return None
    if header.get("ok") is True:
        return ("ok", value_of(blob[end + 1 :]))
    error_type, message = header.get("error_type"), header.get("error_message")
    if not isinstance(error_type, str) or not isinstance(message, str):
        return None
    return ("error", error_type, message)


def succeeded_with(blob: bytes) -> bytes | None:
    """The payload of a record that says it succeeded, else None."""
    end = blob.find(b"\n", len(MAGIC))
    if not blob.startswith(MAGIC) or end < 0:
        return None
    try:
        header = json.loads(blob[len(MAGIC) : end])
    except (ValueError, RecursionError):
        return None
    return blob[end + 1 :] if isinstance(header, dict) and header.get("ok") is True else None


def same_success(first: bytes, second: bytes) -> bool:
    """Both succeeded with byte-identical payloads: the same value, whatever it decodes to (the
    common case with deterministic tasks), known without decoding."""
    payload = succeeded_with(first)
    return payload is not None and payload == succeeded_with(second)


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
    signal.setitimer(signal.ITIMER_REAL, TIME_BUDGET)
    try:
        if same_success(*blobs):
            return 0
    except _OutOfTime:
        pass  # headers too big to read in time: decoding below says
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    pymw_untrusted.prepare()  # the decoder's patterns compile outside the decoding budget
    signal.setitimer(signal.ITIMER_REAL, TIME_BUDGET)
    try:
        first, second = outcome(blobs[0]), outcome(blobs[1])
    except _OutOfTime:  # too big to decode in time: the bytes decide
        first = second = None
        if blobs[0] == blobs[1]:
            return 0
    except ValueError as exc:
        print(f"pymw_compare: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return 0 if first is not None and first == second else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
