#!/usr/bin/env python3
"""Do two replicas of a pymw task agree? Called by BOINC's script_validator:

    pymw_compare FILE1 FILE2        exit 0: they agree; exit 1: they differ

A result record is a JSON header line and a pickled payload. Two records agree when both succeeded
with equal values, or both failed with the same exception type and message; the host, timings and
captured output may differ. Values are compared after unpickling with the same restriction the
master uses for volunteers' results (plain data only, nothing that runs code), because equal
values need not pickle to equal bytes (a set's order follows the process's string hashing). A
payload the restriction refuses is compared byte for byte. Standard library only: the server's
python3 runs it.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import sys
from typing import Any

MAGIC = b"PYMW-RESULT 1\n"
# the same plain-data types as pymw_admin.wire.encoding's restricted unpickler (a unit test
# keeps the two lists equal)
SAFE_GLOBALS: dict[str, frozenset[str]] = {
    "builtins": frozenset(
        {"complex", "set", "frozenset", "bytearray", "slice", "range", "list", "dict", "tuple"}
    ),
    "collections": frozenset({"OrderedDict", "deque", "defaultdict", "Counter"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "fractions": frozenset({"Fraction"}),
}


class _PlainData(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in SAFE_GLOBALS.get(module, ()):
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"{module}.{name} refused")


def value_of(payload: bytes) -> tuple[str, object]:
    if not payload:
        return ("value", None)
    try:
        return ("value", _PlainData(io.BytesIO(payload)).load())
    except Exception:  # not plain data: only identical bytes can agree
        return ("bytes", payload)


def outcome(path: str) -> tuple[object, ...] | None:
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(MAGIC):
        return None
    end = blob.index(b"\n", len(MAGIC))
    header = json.loads(blob[len(MAGIC) : end])
    if header.get("ok"):
        return ("ok", value_of(blob[end + 1 :]))
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
