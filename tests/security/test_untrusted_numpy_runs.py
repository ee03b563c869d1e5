"""A list of numpy scalars is loaded a run of calls at a time (untrusted.py, "runs of numpy
scalars"): rewritten to take scalars numpy built from the run's bytes at once. What it loads must
be what the plain load (a constructor call each) loads, honest or hostile, and whatever the plain
load refuses it refuses with the same error; its budget is charged as the plain load's is."""

from __future__ import annotations

import pickle
import random
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pymw_admin.wire import untrusted

np = pytest.importorskip("numpy")

DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]


@pytest.fixture()
def runs_taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many runs each load took a run at a time (0: the plain load decided)."""
    taken: list[int] = []
    real = untrusted._load_runs_at_a_time

    def spied(data: bytes, limits: untrusted.Limits, runs: list[Any]) -> Any:
        try:
            found = real(data, limits, runs)
        except Exception:
            taken.append(0)
            raise
        taken.append(0 if found is None else sum(1 for _ in runs))
        return found

    monkeypatch.setattr(untrusted, "_load_runs_at_a_time", spied)
    yield taken


def outcome(load: Callable[[], Any]) -> tuple[str, ...]:
    """What a load gave: the value pickled again (types, values, sharing), or the error."""
    try:
        value = load()
    except untrusted.LimitExceeded as exc:
        return ("limit", exc.limit, str(exc))
    except pickle.UnpicklingError as exc:
        return ("refused", type(exc).__name__, str(exc))
    try:
        return ("value", pickle.dumps(value, protocol=5).hex())
    except Exception:  # what the plain load also gives (a dtype's placeholder in a slice...)
        return ("value", re.sub(r" at 0x[0-9a-f]+", "", repr(value)))


def both(data: bytes, monkeypatch: pytest.MonkeyPatch,
         limits: untrusted.Limits = untrusted.DEFAULT_LIMITS) -> tuple[tuple[str, ...], ...]:
    """The outcome of the load, then of the plain load alone."""
    fast = outcome(lambda: untrusted.loads(data, limits))
    with monkeypatch.context() as patch:
        patch.setattr(untrusted, "_load_runs_at_a_time", lambda *_: None)
        plain = outcome(lambda: untrusted.loads(data, limits))
    return fast, plain


def opened(data: bytes) -> bytes:
    """A pickled list of one item without its FRAME (optional) and its APPEND: a list that more
    items can be added to, after the MARK now before its first."""
    assert data[2] == 0x95 and data[11:13] == b"]\x94" and data.endswith(b"a.")
    return data[:2] + b"]\x94(" + data[13:-2]


# [np.float64(1.5)] as numpy pickles it: memo 3 its scalar constructor, 9 the dtype, 15 next
HEAD = opened(pickle.dumps([np.float64(1.5)], protocol=5))
CALL = b"h\x03h\x09C\x08%s\x94\x86\x94R\x94"


def calls(count: int, item: bytes = CALL, before: bytes = b"", after: bytes = b"") -> bytes:
    """HEAD, ``before``, ``count`` items (``%s``: 8 bytes of a float), ``after``, the list's end."""
    rng = random.Random(count)
    body = b"".join(item.replace(b"%s", rng.randbytes(8)) for _ in range(count))
    return HEAD + before + body + after + b"e."


def test_honest_scalars_of_each_dtype_and_byte_order_come_back_as_the_plain_load_gives(
        runs_taken: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    raw = random.Random(26).randbytes(16 * 3000)
    for dtype in DTYPES:
        for order in "<>":
            kind = np.dtype(dtype).newbyteorder(order)
            values = list(np.frombuffer(raw[: kind.itemsize * 3000], kind))  # NaNs, bools of 7
            data = pickle.dumps(values, protocol=5)
            fast, plain = both(data, monkeypatch)
            assert fast == plain and fast[0] == "value", (dtype, order)
            got = untrusted.loads(data)
            assert [type(x) for x in got] == [type(x) for x in values]
            assert np.array(got).tobytes() == np.array(values).tobytes(), (dtype, order)
    assert runs_taken and all(runs_taken), "each load took its runs a run at a time"


@pytest.mark.usefixtures("scan_path")
def test_nested_runs_come_back(runs_taken: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    floats = [np.float64(i) / 7 for i in range(2500)]
    ints = [np.int32(i) for i in range(1200)]
    value = {"floats": floats, "pairs": (ints, [floats[:50], [np.uint8(3)] * 40]),
             "mixed": [1.5, np.float32(2), "x", np.float32(3), np.float32(4)] * 300,
             "rows": [[np.float64(j) for j in range(40)] for _ in range(60)],
             "dtype": np.dtype("f4"), "shared": [floats[7]] * 30}
    data = pickle.dumps(value, protocol=5)
    fast, plain = both(data, monkeypatch)
    assert fast == plain and fast[0] == "value"
    got = untrusted.loads(data)
    assert got == value and got["dtype"] == np.dtype("f4")
    assert type(got["pairs"][0][5]) is np.int32 and type(got["floats"][3]) is np.float64
    assert got["shared"][0] is got["shared"][29]  # one scalar, fetched from the memo
    assert all(runs_taken)


def test_gets_of_a_runs_scalars_and_puts_over_its_entries(
        runs_taken: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """After a run of 49 calls (memo 15 to 161: bytes, arguments, scalar each): a get of call 1's
    scalar, a PUT of it over its bytes (no new index: the next MEMOIZE is 162), gets of both."""
    data = calls(49, after=b"h\x11" b"h\x11q\x0f0" b"K\x07\x94" b"h\x0fh\xa2")
    assert len(untrusted.scan(data)) == 1
    for skip_batches in (True, False):  # as the exact scan models it
        untrusted._scan(data, untrusted.DEFAULT_LIMITS, float("inf"), skip_batches)
    fast, plain = both(data, monkeypatch)
    assert fast == plain and fast[0] == "value"
    got = untrusted.loads(data)  # item 0, the run's 49 calls, then what came after
    assert got == pickle.loads(data) and len(got) == 54
    assert got[50] is got[1] and got[52] is got[1] and got[51] == got[53] == 7
    assert runs_taken and all(runs_taken)


@pytest.mark.parametrize("get", [b"h\x0f", b"h\x10", b"j\x10\x00\x00\x00", b"g16\n"],
                         ids=["bytes", "arguments", "arguments, long get", "arguments, text get"])
def test_a_get_of_a_calls_bytes_or_arguments_loads_plainly(
        get: bytes, runs_taken: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """A rewritten call leaves its scalar where its bytes and arguments were: a pickle that reads
    them (no honest pickler does) takes no run a run at a time."""
    data = calls(49, after=get)
    assert untrusted.scan(data) == []
    fast, plain = both(data, monkeypatch)
    assert fast == plain and fast[0] == "value"
    assert untrusted.loads(data) == pickle.loads(data)
    assert runs_taken == []


HOSTILE_RUNS = {
    # 4 bytes to a float64 dtype: the plain load refuses it at the first call
    "wrong byte length": calls(50, b"h\x03h\x09C\x04abcd\x94\x86\x94R\x94"),
    "longer bytes": calls(50, b"h\x03h\x09C\x0912345678X\x94\x86\x94R\x94"),
    # other callables for the same calls: built as they build, refused as they refuse
    "slice called": calls(50, b"h\x0fh\x09C\x08%s\x94\x86\x94R\x94",
                          before=b"cbuiltins\nslice\n\x94"),
    "complex called": calls(50, b"h\x0fh\x09C\x08%s\x94\x86\x94R\x94",
                            before=b"cbuiltins\ncomplex\n\x94"),
    "the dtype constructor called": calls(50, b"h\x06h\x09C\x08%s\x94\x86\x94R\x94"),
    # other first arguments: a string, bytes, a scalar, the scalar global, a later index, the
    # bytes of a call of a run before
    "a string for the dtype": calls(50, b"h\x03h\x07C\x08%s\x94\x86\x94R\x94"),
    "bytes for the dtype": calls(50, b"h\x03h\x0cC\x08%s\x94\x86\x94R\x94"),
    "a scalar for the dtype": calls(50, b"h\x03h\x0eC\x08%s\x94\x86\x94R\x94"),
    "a callable for the dtype": calls(50, b"h\x03h\x03C\x08%s\x94\x86\x94R\x94"),
    "a later index for the dtype": calls(50, b"h\x03h\xf0C\x08%s\x94\x86\x94R\x94"),
    "a run's bytes for the dtype": calls(50, after=b"h\x03h\x0fC\x0812345678\x94\x86\x94R\x94"
                                         * 30),
    # dtypes off the allow-list or of another item size, made for the run
    "object dtype": calls(50, b"h\x03h\x0fC\x08%s\x94\x86\x94R\x94",
                          before=b"h\x06\x8c\x01O\x89\x88\x87R\x94"),
    "datetime dtype": calls(50, b"h\x03h\x0fC\x08%s\x94\x86\x94R\x94",
                            before=b"h\x06\x8c\x02M8\x89\x88\x87R\x94"),
    "float32 dtype, 8 bytes": calls(50, b"h\x03h\x0fC\x08%s\x94\x86\x94R\x94",
                                    before=b"h\x06\x8c\x02f4\x89\x88\x87R\x94h\x0bb"),
    "int8 dtype, 8 bytes": calls(50, b"h\x03h\x0fC\x08%s\x94\x86\x94R\x94",
                                 before=b"h\x06\x8c\x02i1\x89\x88\x87R\x94"),
    # a dtype made big-endian between two runs: the second's scalars are read so
    "a dtype's byte order changed between runs": calls(40, after=b"h\x09(K\x03\x8c\x01>NNN"
        b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb0" + CALL.replace(b"%s", b"12345678") * 40),
    # runs cut short: a call without its tuple, the data ending
    "a call without its tuple": calls(30, after=b"h\x03h\x09C\x0812345678\x94\x94R\x94" * 30),
    "a run then the data cut": calls(60)[:-40],
    "a persistent id after a run": calls(60, after=b"NQ"),
}


@pytest.mark.parametrize("name", HOSTILE_RUNS)
@pytest.mark.usefixtures("scan_path")
def test_hostile_runs_decide_as_the_plain_load(name: str, runs_taken: list[int],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fast, plain = both(HOSTILE_RUNS[name], monkeypatch)
    assert fast == plain
    assert runs_taken in ([], [0]) or fast[0] == "value", "taken only where all is numpy's"


def test_the_budget_is_charged_for_a_run_as_a_call_at_a_time(
        runs_taken: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    data = pickle.dumps([np.float64(i) for i in range(3000)], protocol=5)
    exact = untrusted.Limits(max_copied=3000)
    fast, plain = both(data, monkeypatch, exact)
    assert fast == plain and fast[0] == "value"
    for short in (untrusted.Limits(max_copied=2999), untrusted.Limits(max_copied=1500)):
        fast, plain = both(data, monkeypatch, short)
        assert fast == plain and fast[:2] == ("limit", "max_copied")
    assert runs_taken[0] and runs_taken[1:] == [0, 0]


def test_a_huge_run_without_batches_comes_back(runs_taken: list[int],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """200,000 calls alike in one batch: runs of at most _COPIES calls, each taken so."""
    data = calls(200_000)
    fast, plain = both(data, monkeypatch)
    assert fast == plain and fast[0] == "value"
    assert len(untrusted.scan(data)) >= 200_000 // untrusted._COPIES
    assert all(runs_taken)


def test_mutated_runs_decide_as_the_plain_load(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(2026)
    honest = [pickle.dumps([np.float64(i) for i in range(120)], protocol=5),
              pickle.dumps({"a": [np.int16(i) for i in range(90)], "b": (np.float32(1),) * 40},
                           protocol=5),
              calls(80)]
    for _ in range(400):
        data = bytearray(rng.choice(honest))
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(12, len(data) - 1)
            data[at] = rng.choice(b"hjCRQ\x94\x86\x85(e01" + bytes([rng.randrange(256)]))
        fast, plain = both(bytes(data), monkeypatch)
        assert fast == plain, bytes(data[:120])


def test_the_comparer_never_rewrites(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparer describes numpy values without numpy: no run is taken a run at a time."""
    monkeypatch.setattr(untrusted, "_load_runs_at_a_time", None)  # called: TypeError
    values = untrusted.loads(pickle.dumps([np.float64(i) for i in range(500)], protocol=5),
                             numpy_describe=True)
    assert len(values) == 500 and all(type(v) is untrusted.NumpyValue for v in values)
