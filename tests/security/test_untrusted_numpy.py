"""Issue 26: a volunteer's numpy arrays and scalars come back as themselves through the untrusted
decoder (rebuilt from dtype, shape and bytes), and the comparer, without numpy, compares them by
those. The hostile forms are cases of hostile_pickles (refused in a child, answered by the
comparer); here, what an honest worker sends."""

from __future__ import annotations

import math
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pymw_admin.runtime import Master, TaskError
from pymw_admin.wire import encoding, untrusted
from pymw_admin.worker import run
from tests.security.hostile_pickles import CASES
from tests.security.test_untrusted_results import HostileEngine, result_record

np = pytest.importorskip("numpy")

DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
SHAPES: list[tuple[int, ...]] = [(), (0,), (7,), (3, 4), (2, 0, 5), (2, 3, 4), (1, 5, 1)]


def as_volunteer_sends(value: Any) -> Any:
    """``value`` through the worker's encoding of a result and the BOINC master's decoding."""
    record = encoding.ResultRecord(task_id="t", ok=True, python=encoding.python_minor(),
                                   payload=run._dumps_value(value))
    return encoding.decode_value(encoding.decode_result_header(encoding.encode_result(record)),
                                 trusted=False)


def sample(dtype: str, shape: tuple[int, ...]) -> Any:
    values = np.arange(int(np.prod(shape)), dtype="i8") * 37 - 11
    return values.astype(dtype).reshape(shape)


def assert_same_array(got: Any, want: Any) -> None:
    assert type(got) is np.ndarray
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes(order="A") == want.tobytes(order="A")
    assert got.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.usefixtures("scan_path")
def test_arrays_of_each_dtype_and_shape_come_back(dtype: str) -> None:
    for shape in SHAPES:
        want = sample(dtype, shape)
        for variant in (want, np.asfortranarray(want), want.astype(want.dtype.newbyteorder()),
                        want.T, want[..., ::2] if want.ndim else want):
            assert_same_array(as_volunteer_sends(variant), variant)


@pytest.mark.parametrize("protocol", [3, 4, 5])
@pytest.mark.usefixtures("scan_path")
def test_numpy_1_and_older_protocols_decode(protocol: int) -> None:
    want = sample("f8", (3, 4))
    for variant in (want, np.asfortranarray(want), want[:, ::2]):
        data = pickle.dumps(variant, protocol=protocol)
        assert_same_array(untrusted.loads(data), variant)
        assert_same_array(untrusted.loads(numpy_1(data)), variant)


def numpy_1(data: bytes) -> bytes:
    """``data`` as numpy 1.x pickles it: the same forms, its modules named numpy.core.*."""
    if data[2] == 0x95:  # one FRAME (a small pickle): frames are optional, and it would change
        data = data[:2] + data[11:]
    for module in (b"numeric", b"multiarray"):
        new, old = b"numpy._core." + module, b"numpy.core." + module
        data = data.replace(bytes([0x8C, len(new)]) + new, bytes([0x8C, len(old)]) + old)
        data = data.replace(b"c" + new + b"\n", b"c" + old + b"\n")  # GLOBAL, protocol 3
    assert b"_core" not in data
    return data


@pytest.mark.usefixtures("scan_path")
def test_numpy_scalars_come_back() -> None:
    for dtype in DTYPES:
        want = np.dtype(dtype).type(5)
        got = as_volunteer_sends(want)
        assert type(got) is type(want) and got == want, dtype
    many = [np.float64(i) / 7 for i in range(5000)] + [np.int64(i) for i in range(300)]
    got = as_volunteer_sends(many)
    assert [type(x) for x in got] == [type(x) for x in many] and got == many


@pytest.mark.usefixtures("scan_path")
def test_the_issue_26_result_comes_back() -> None:
    data = np.random.default_rng(26).random(10_000)
    got = as_volunteer_sends({"samples": data, "mean": np.mean(data)})
    assert_same_array(got["samples"], data)
    assert type(got["mean"]) is np.float64 and got["mean"] == np.mean(data)


@pytest.mark.usefixtures("scan_path")
def test_numpy_values_nested_in_containers_come_back() -> None:
    arr = sample("i4", (2, 3))
    view = sample("f8", (4, 4))[::2]  # not contiguous: _reconstruct and a BUILD
    want = {"a": [arr, (view, np.float32(1.5))], "b": (arr, [view]), "dtype": arr.dtype,
            "plain": [1, 2.5, "x"]}
    got = as_volunteer_sends(want)
    assert_same_array(got["a"][0], arr)
    assert_same_array(got["a"][1][0], view)
    assert type(got["a"][1][1]) is np.float32
    assert_same_array(got["b"][1][0], view)
    assert got["dtype"] == arr.dtype and got["plain"] == [1, 2.5, "x"]


@pytest.mark.usefixtures("scan_path")
def test_more_placeholders_than_followed_are_finished_all_the_same() -> None:
    """The decoder follows a few dtypes and arrays awaiting their state (alive once it is done:
    in the value); past that many, it looks for them in the whole value."""
    many = untrusted._PLACEHOLDERS_FOLLOWED + 36
    views = [(sample("i2", (4, 6)) + k)[:, ::2] for k in range(many)]  # _reconstruct, BUILD
    dtypes = [np.dtype("i2").newbyteorder(">") for _ in range(many)]  # one object each
    got = as_volunteer_sends({"views": views, "dtypes": dtypes})
    for view, want in zip(got["views"], views, strict=True):
        assert_same_array(view, want)
    assert all(isinstance(d, np.dtype) and d == dtypes[0] for d in got["dtypes"])


def test_a_value_is_walked_for_placeholders_only_when_one_is_left(
        monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[Any] = []
    real = untrusted._numpy_finished

    def spied(value: Any, describe: bool) -> Any:
        walked.append(value)
        return real(value, describe)

    monkeypatch.setattr(untrusted, "_numpy_finished", spied)
    scalars = [np.float64(i) for i in range(1000)]
    assert as_volunteer_sends(scalars) == scalars and walked == []  # its dtype was memo only
    got = as_volunteer_sends([np.float64(1), np.dtype("f4")])
    assert got[1] == np.dtype("f4") and len(walked) == 1


def test_without_numpy_the_master_refuses_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    data = pickle.dumps([1, np.zeros(3)], protocol=5)
    monkeypatch.setattr(untrusted, "_numpy_parts", {})
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy: ImportError
    with pytest.raises(pickle.UnpicklingError, match="numpy is not installed"):
        untrusted.loads(data)
    assert untrusted.loads(data, numpy_describe=True)[1].shape == (3,)  # the comparer's way


def test_a_master_gets_the_array_as_the_task_result() -> None:
    data = np.linspace(0, 1, 10_000)
    engine = HostileEngine({"old-1": result_record(run._dumps_value(data), "old-1")},
                           resumed=["old-1"])
    with Master(engine) as master:  # type: ignore[arg-type]
        _task, got = master.get_result(master.resumed[0], timeout=5)
        assert_same_array(got, data)


def test_a_hostile_numpy_result_is_a_task_error() -> None:
    case = next(c for c in CASES if c.name == "numpy_huge_shape")
    engine = HostileEngine({"old-1": result_record(case.make(), "old-1")}, resumed=["old-1"])
    with (Master(engine) as master,  # type: ignore[arg-type]
          pytest.raises(TaskError, match="exceeds the max_copied limit")):
        master.get_result(master.resumed[0], timeout=5)


@pytest.mark.parametrize("case", [c for c in CASES if c.name.startswith("numpy_")],
                         ids=lambda c: c.name)
@pytest.mark.usefixtures("scan_path")
def test_hostile_numpy_forms_are_refused_as_the_comparer_reads_them(case: Any) -> None:
    with pytest.raises(pickle.UnpicklingError) as refused:
        untrusted.loads(case.make(), numpy_describe=True)
    if case.limit is not None:
        assert isinstance(refused.value, untrusted.LimitExceeded)
        assert refused.value.limit == case.limit


def scan_outcome(data: bytes, skip_batches: bool) -> str:
    try:
        untrusted._scan(data, untrusted.DEFAULT_LIMITS, math.inf, skip_batches=skip_batches)
    except untrusted.LimitExceeded as exc:
        return exc.limit
    except untrusted._Unsure:
        return "unsure"  # the exact scan decides (scan() does so)
    except pickle.UnpicklingError:
        return "malformed"
    return "passed"


@pytest.mark.usefixtures("scan_path")
def test_calls_alike_are_modelled_as_the_exact_scan_models_them() -> None:
    """The scan takes a list of numpy scalars a run of calls at a time; mutated (gets of other
    memo entries, a heavy tuple's among them, PUTs over them, lengths, opcodes), it decides as
    step by step."""
    rng = random.Random(26)
    heavy = tuple(range(300))
    honest = [[np.float64(i) for i in range(3000)], [heavy, np.int8(1), np.int8(2)] * 400,
              [np.float32(i) for i in range(500)] + [frozenset({1})] + [np.uint16(3)] * 300]
    for value in honest:
        assert scan_outcome(pickle.dumps(value, 5), True) == "passed"
    for _ in range(300):
        data = bytearray(pickle.dumps(rng.choice(honest), protocol=5))
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(12, len(data))
            data[at] = rng.choice(b"hjqC\x94\x86R\x85\x91(e" + bytes([rng.randrange(256)]))
        fast = scan_outcome(bytes(data), True)
        assert fast == "unsure" or fast == scan_outcome(bytes(data), False), bytes(data[:80])
    # calls alike whose argument tuples hold a memo DAG, then hashed in a frozenset
    heavy_calls = heavy_arguments_in_calls_alike()
    assert scan_outcome(heavy_calls, True) == scan_outcome(heavy_calls, False) == "max_hash_work"


def heavy_arguments_in_calls_alike(depth: int = 18, calls: int = 101) -> bytes:
    def get(index: int) -> bytes:
        return b"h" + bytes([index]) if index < 256 else b"j" + index.to_bytes(4, "little")

    body = b")\x94"  # memo 0: (); memo k + 1: (t_k, t_k), 2**(k + 2) - 1 objects to hash
    for k in range(depth):
        body += get(k) + get(k) + b"\x86\x94"
    body += b"cbuiltins\ncomplex\n\x94"  # memo depth + 1
    call = get(depth + 1) + get(depth) + b"C\x01x\x94\x86\x94R\x94"
    body += b"]\x94(" + call * calls + b"e"  # list: memo depth + 2; call k's args: depth + 4 + 3k
    body += b"(" + b"".join(get(depth + 4 + 3 * k) for k in range(calls)) + b"\x91"
    return b"\x80\x05" + body + b"."


# --- the comparer, on a server without numpy ---------------------------------------------------

NO_NUMPY = """
import runpy, sys
sys.modules["numpy"] = None
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def agree(compare: Path, tmp_path: Path, first: Any, second: Any) -> bool:
    paths = []
    for name, value in (("first", first), ("second", second)):
        path = tmp_path / name
        path.write_bytes(result_record(pickle.dumps(value, protocol=5)))
        paths.append(str(path))
    done = subprocess.run([sys.executable, "-I", "-c", NO_NUMPY, str(compare), *paths],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def test_the_comparer_reads_numpy_values_without_numpy(compare: Path, tmp_path: Path) -> None:
    data = sample("f8", (3, 4, 5)) / 3
    for alike in (np.asfortranarray(data), data.astype(">f8"), data.T.copy().T,
                  np.asfortranarray(data.astype(">f8"))):
        assert agree(compare, tmp_path, {"x": data}, {"x": alike}) is True
    cplx = sample("c16", (4, 3))
    assert agree(compare, tmp_path, cplx, np.asfortranarray(cplx.astype(">c16"))) is True
    assert agree(compare, tmp_path, [np.mean(data)], [np.float64(np.mean(data))]) is True


def test_the_comparer_tells_numpy_values_apart(compare: Path, tmp_path: Path) -> None:
    data = sample("f8", (3, 4))
    changed = data.copy()
    changed[2, 3] += 1e-12  # no tolerance: an exact compare
    for other in (changed, data.astype("f4"), data.reshape(4, 3), data.reshape(12),
                  data.astype("i8"), np.float64(1.0)):
        assert agree(compare, tmp_path, data, other) is False
    assert agree(compare, tmp_path, np.float64(1.0), 1.0) is False  # strictly typed
    assert agree(compare, tmp_path, np.float64(1.0), np.float32(1.0)) is False
