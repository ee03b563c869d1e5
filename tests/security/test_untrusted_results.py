"""M1-M3, L1, L2: a volunteer's result is decoded within limits; past one it is that task's
TaskError naming the limit, acknowledged, and a resumed master meets it never again."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import json
import math
import pickle
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pymw_admin.interfaces.base import Completion
from pymw_admin.runtime import Master, TaskError
from pymw_admin.wire import encoding, untrusted
from tests.security.hostile_pickles import CASES, Case, deep_tuple_in_frozenset, memo_dag
from tests.security.scan_oracle import assert_skipping_passes_nothing_the_exact_scan_refuses

# a case that is not bounded hangs or eats the machine: each runs in a child with a memory cap
# and a generous deadline (a hang shows as a failure, not as a stuck suite)
CHILD_DEADLINE = 60
CHILD = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    from tests.security.hostile_pickles import CASES
    from pymw_admin.wire import untrusted
    if sys.argv[2] == "pure Python":
        untrusted._c_match_items = None
    case = next(c for c in CASES if c.name == sys.argv[1])
    try:
        untrusted.loads(case.make())
    except untrusted.LimitExceeded as exc:
        print("limit", exc.limit, exc)
    except Exception as exc:
        print("refused", type(exc).__name__, exc)
    else:
        print("decoded")
""")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_payload_is_refused_within_bounds(case: Case, scan_path: str) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, case.name, scan_path], capture_output=True,
                          text=True, timeout=CHILD_DEADLINE, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]  # no crash, no MemoryError
    words = done.stdout.split()
    if case.limit is None:
        assert words[0] == "refused", done.stdout
    else:
        assert words[:2] == ["limit", case.limit], done.stdout
        assert f"exceeds the {case.limit} limit" in done.stdout


HONEST: list[Any] = [
    None, True, 3, -2**70, 1.5, math.inf, "text", b"bytes", bytearray(b"ba"),
    [1, [2, [3]]], (1, (2, "x")), {"a": 1, (1, 2): [3]}, {1, 2, 3}, frozenset({("a", 1)}),
    collections.OrderedDict(b=1, a=2), collections.deque([1, 2], 5), collections.Counter("abca"),
    collections.defaultdict(list, {"k": [1]}), decimal.Decimal("1.25"), fractions.Fraction(1, 3),
    complex(1, -2), datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
    datetime.date(2020, 1, 2), datetime.timedelta(days=3), range(2, 10, 3), slice(1, 5, 2),
    [(i, str(i), float(i)) for i in range(3000)], {frozenset({i, -i}) for i in range(500)},
]


@pytest.mark.parametrize("protocol", [3, 4, 5])  # 2 spells bytes with _codecs: refused
@pytest.mark.usefixtures("scan_path")
def test_honest_values_decode_as_before(protocol: int) -> None:
    for value in HONEST:
        data = pickle.dumps(value, protocol=protocol)
        got = untrusted.loads(data)
        assert got == value and type(got) is type(value), (protocol, value)
    shared = [("same",) * 3] * 1000  # shared references are fine outside hashing
    assert untrusted.loads(pickle.dumps(shared, protocol=5)) == shared


def honest_batches() -> dict[str, Any]:
    """Lists of several batches (1000 items each) and frames (64 KiB), in every common shape; the
    scan skips such batches whole, without a step per opcode."""
    rng = random.Random(2)
    return {
        "floats": [rng.random() for _ in range(20_000)],
        "ints": [rng.randrange(-10**6, 10**6) for _ in range(20_000)],
        "sorted ints": list(range(70_000)),
        "bools and None": [(True, False, None)[i % 3] for i in range(5000)],
        "nested lists": [[rng.random() for _ in range(50)] for _ in range(400)],
        "tuples": [(rng.random(), i, f"t{i}") for i in range(10_000)],
        "records": [{"id": i, "name": f"n{i}", "score": rng.random(), "ok": i % 3 == 0,
                     "none": None, "at": (i, i)} for i in range(10_000)],
        "columns": {"x": [rng.random() for _ in range(5000)],
                    "label": [f"l{rng.randrange(100)}" for _ in range(5000)]},
        "mixed": [1, "a" * 300, (1, 2), {"k": (1.5, "v")}, [None], b"b" * 10, 2**70] * 2000,
        # keys fetched from the memo after a heavy tuple was memoized: the skipping scan cannot
        # tell them from the tuple and refuses; the exact scan then decides
        "records around a big tuple": [[{"a": i} for i in range(5000)], tuple(range(5000)),
                                       [{"a": i} for i in range(5000)]],
    }


@pytest.mark.parametrize("protocol", [3, 4, 5])
@pytest.mark.usefixtures("scan_path")
def test_honest_batches_decode_as_before(protocol: int) -> None:
    for name, value in honest_batches().items():
        assert untrusted.loads(pickle.dumps(value, protocol=protocol)) == value, name


@pytest.mark.parametrize("name", ["floats", "ints", "sorted ints", "bools and None",
                                  "nested lists", "tuples", "records", "columns"])
@pytest.mark.usefixtures("scan_path")
def test_honest_batches_are_skipped_whole(name: str) -> None:
    data = pickle.dumps(honest_batches()[name], protocol=5)
    first = data.index(b"]\x94(") + 3  # the first batch of the first list
    last_appends = data.index(b"e\x8c\x05label") if name == "columns" else len(data) - 2
    assert untrusted._batch_end(data, first) == last_appends


def mutated_batches(seed: int, count: int) -> list[bytes]:
    """Honest lists with a few bytes changed, or copied elsewhere, opcodes of structure mostly."""
    rng = random.Random(seed)
    shapes = [value for value in honest_batches().values() if isinstance(value, list)]
    opcodes = b"()tu\x85\x86\x87\x91\x90hjqr\x94se]}2a0\x8aL"
    found = []
    for _ in range(count):
        data = bytearray(pickle.dumps(rng.choice(shapes)[: rng.randrange(1, 3000)], protocol=5))
        for _ in range(rng.randrange(1, 8)):
            at, kind = rng.randrange(2, len(data)), rng.random()
            if kind < 0.5:
                data[at] = rng.choice(opcodes)
            elif kind < 0.8:
                data[at] = rng.randrange(256)
            else:
                data[rng.randrange(2, len(data)):0] = data[at : at + rng.randrange(1, 40)]
        found.append(bytes(data))
    return found


@pytest.mark.usefixtures("scan_path")
def test_skipping_batches_passes_nothing_the_exact_scan_refuses() -> None:
    for data in mutated_batches(seed=13, count=400):
        assert_skipping_passes_nothing_the_exact_scan_refuses(data)


class HostileEngine:
    """An untrusted engine whose volunteers send ``records`` (task id -> result record)."""

    name = "hostile"
    trusted = False

    def __init__(self, records: dict[str, bytes], resumed: list[str] = ()) -> None:  # type: ignore[assignment]
        self.records = records
        self.resumed = list(resumed)
        self.acknowledged: list[str] = []

    def submit(self, task_id: str, task_file: bytes) -> None:
        self.records.setdefault(task_id, self.records.pop("next"))

    def resumed_tasks(self) -> list[tuple[str, str]]:
        return [(task_id, "f") for task_id in self.resumed]

    def wait(self, timeout: float | None) -> list[Completion]:
        found = [Completion(t, record=r, worker="volunteer") for t, r in self.records.items()]
        self.records = {}
        return found

    def acknowledge(self, task_id: str) -> None:
        self.acknowledged.append(task_id)

    def workers(self) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def result_record(payload: bytes, task_id: str = "t") -> bytes:
    return encoding.encode_result(encoding.ResultRecord(task_id=task_id, ok=True, python="3.11",
                                                        payload=payload))


@pytest.mark.parametrize("payload,limit", [(memo_dag(), "max_weight"),
                                           (deep_tuple_in_frozenset(), "max_depth")],
                         ids=["M1-memo-dag", "M2-deep-tuple"])
def test_a_resumed_master_gets_a_task_error_naming_the_limit(payload: bytes, limit: str) -> None:
    engine = HostileEngine({"old-1": result_record(payload, "old-1")}, resumed=["old-1"])
    with Master(engine) as master:  # type: ignore[arg-type]
        (task,) = master.resumed
        with pytest.raises(TaskError, match=f"exceeds the {limit} limit"):
            master.get_result(task, timeout=5)
    assert engine.acknowledged == ["old-1"]  # never handed out (and decoded) again


def test_l2_nested_header_is_one_task_error() -> None:
    nested = encoding.RESULT_MAGIC + b"[" * 200_000 + b"]" * 200_000 + b"\n"
    engine = HostileEngine({"old-1": nested}, resumed=["old-1"])
    with (Master(engine) as master,  # type: ignore[arg-type]
          pytest.raises(TaskError, match="nested deeper than a header may be")):
        master.get_result(master.resumed[0], timeout=5)
    assert engine.acknowledged == ["old-1"]
    for bad in (b'{"task_id": {"a": 1}, "ok": true, "python": "3.11"}',
                b'{"task_id": "t", "ok": 1, "python": "3.11"}', b"[1]"):
        with pytest.raises(encoding.EncodingError):
            encoding.decode_result_header(encoding.RESULT_MAGIC + bad + b"\n")
    with pytest.raises(encoding.EncodingError):
        encoding.read_task_header(encoding.TASK_MAGIC + b"{" * 100_000 + b"\n")


def test_header_strings_may_hold_brackets() -> None:
    record = encoding.ResultRecord(task_id="t", ok=True, python="3.11",
                                   stderr="[[[{{{ \\\" ]]] " * 1000)
    assert encoding.decode_result_header(encoding.encode_result(record)).stderr == record.stderr
    assert json.loads(json.dumps(record.header()))["stderr"] == record.stderr
