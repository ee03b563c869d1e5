#!/usr/bin/env python3
"""Do two replicas of a pymw task agree? Called by BOINC's script_validator:

    pymw_compare FILE1 FILE2        exit 0: they agree; exit 1: they differ

A result record is a JSON header line and a pickled payload. Two records agree when both succeeded
with byte-identical payloads, or both failed with the same exception type and message; the host,
timings and captured output may differ. Nothing is unpickled here. Standard library only.
"""

from __future__ import annotations

import json
import sys

MAGIC = b"PYMW-RESULT 1\n"


def outcome(path: str) -> tuple[object, ...] | None:
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(MAGIC):
        return None
    end = blob.index(b"\n", len(MAGIC))
    header = json.loads(blob[len(MAGIC) : end])
    if header.get("ok"):
        return ("ok", blob[end + 1 :])
    return ("error", header.get("error_type"), header.get("error_message"))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: pymw_compare FILE1 FILE2", file=sys.stderr)
        return 2
    try:
        first, second = outcome(argv[0]), outcome(argv[1])
    except (OSError, ValueError) as exc:
        print(f"pymw_compare: {exc}", file=sys.stderr)
        return 1
    return 0 if first is not None and first == second else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
