"""The scan takes runs of 4-byte ints and of memoized short strings several opcodes to a regex step:
it must end each run where the one-opcode-a-step pattern ends, on honest and hostile bytes alike,
and whatever follows a run (a refused opcode, the end of the data) is still met opcode by opcode.
"""

from __future__ import annotations

import pickle
import random
import re
import struct

import pytest

from pymw_admin.wire import untrusted
from tests.security.scan_oracle import assert_skipping_passes_nothing_the_exact_scan_refuses

# the patterns the fast ones must agree with: one opcode (or one APPENDS, MARK) a step
REFERENCE = [re.compile(untrusted._one_of(item, untrusted._NEXT_BATCH) + b"*+", re.S)
             for item in untrusted._ONE_A_STEP]
FAST = untrusted._regexes().items[: len(REFERENCE)]


def _proto(body: bytes) -> bytes:
    return b"\x80\x05" + body + b"."


def _int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _string(text: str, memoized: bool = True) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw + (b"\x94" if memoized else b"")


def honest_runs(whole_only: bool = False) -> list[bytes]:
    """Lists of ints of mixed widths and of short strings, in several batches and frames (and one
    of strings repeated, fetched from the memo: past memo 255 a get ends a run of strings)."""
    rng = random.Random(7)
    values: list[list[object]] = [
        [rng.randrange(10**6) for _ in range(5000)],
        [rng.randrange(-2**31, 2**31) for _ in range(3000)],
        [rng.choice((1, 300, 70_000)) for _ in range(3000)],
        [f"l{rng.randrange(1000)}" for _ in range(5000)],
        ["x" * rng.randrange(2, 256) for _ in range(2000)],
    ]
    if not whole_only:
        values.append([rng.choice(("a", "bb", "ccc", "dddd")) for _ in range(3000)])
    return [pickle.dumps(value, protocol=protocol) for value in values for protocol in (4, 5)]


def _agree(data: bytes, start: int) -> None:
    for fast, reference in zip(FAST, REFERENCE, strict=True):
        got, want = fast.match(data, start), reference.match(data, start)
        assert got is not None and want is not None
        assert (got.end(), got.start(1)) == (want.end(), want.start(1)), (start, data[:40])


def test_fast_runs_end_where_one_opcode_a_step_ends() -> None:
    for data in honest_runs():
        first = data.index(b"(") + 1
        _agree(data, first)
        for start in range(first, first + 40):  # from inside an opcode too
            _agree(data, start)
    for data in honest_runs(whole_only=True):
        first = data.index(b"(") + 1
        match = FAST[0 if data[first] in b"JKM" else 1].match(data, first)
        assert match is not None and match.end() == len(data) - 2  # the last APPENDS


def test_fast_runs_agree_on_mutated_and_truncated_bytes() -> None:
    rng = random.Random(11)
    opcodes = b"JKMG\x8c\x94\x95he(.Nac\x93R\x91\x90su"
    runs = honest_runs()
    for _ in range(1500):
        data = bytearray(rng.choice(runs))
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(2, len(data))
            data[at] = rng.choice(opcodes) if rng.random() < 0.7 else rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(3, len(data)) :]
        blob = bytes(data)
        _agree(blob, blob.find(b"(") + 1)
        _agree(blob, rng.randrange(len(blob)))


RUN_LENGTHS = range(10)  # around the 4 and 2 opcodes a step


@pytest.mark.parametrize("item", [_int(70_000), _int(300), _string("abcd")], ids=["J", "M", "str"])
@pytest.mark.parametrize("after", [b"cos\nsystem\n\x8c\x04true\x85R", b"\x93", b"P1\n",
                                   b"\x82\x01", b"b", b"R", b"\x91", b"i", b"\x8a\x01\x01"],
                         ids=["GLOBAL", "STACK_GLOBAL", "PERSID", "EXT1", "BUILD", "REDUCE",
                              "FROZENSET", "INST", "LONG1"])
@pytest.mark.usefixtures("scan_path")
def test_a_run_followed_by_another_opcode_is_scanned_after_it(item: bytes, after: bytes) -> None:
    """Whatever follows a run is the unpickler's next opcode, and the scan's: refused, or (a
    LONG1, a number the skipping does not take) decoded as the unpickler decodes it."""
    for count in RUN_LENGTHS:
        data = _proto(b"]\x94(" + _int(70_000) * 3 + b"e(" + item * count + after + b"e")
        first = data.index(b"e(") + 2
        for fast, reference in zip(FAST, REFERENCE, strict=True):
            assert fast.match(data, first).end() == reference.match(data, first).end()
        assert untrusted._batch_end(data, first) <= first + len(item) * count
        if after.startswith(b"\x8a"):
            assert untrusted.loads(data) == pickle.loads(data)
        else:
            with pytest.raises(pickle.UnpicklingError):
                untrusted.loads(data)


@pytest.mark.usefixtures("scan_path")
def test_a_truncated_run_is_refused() -> None:
    """Cut anywhere in a run (inside an int's or a string's bytes too): malformed, never a value,
    never an error other than UnpicklingError."""
    for data in (pickle.dumps([1, 70_000, 300] * 700, protocol=5),
                 pickle.dumps([f"s{i % 97}" for i in range(2100)], protocol=5)):
        for cut in [*range(3, 60), *range(len(data) - 4000, len(data) - 1, 7)]:
            with pytest.raises(pickle.UnpicklingError):
                untrusted.loads(data[:cut])
        assert untrusted.loads(data) == pickle.loads(data)


@pytest.mark.usefixtures("scan_path")
def test_a_huge_run_is_skipped_a_slice_at_a_time_and_within_the_limits() -> None:
    """A run of over _BATCH_BYTES is skipped in slices (the deadline checked between them), and
    counts to max_bytes and max_seconds like any bytes."""
    ints = [70_000 + i % 3 for i in range(300_000)]  # 1.5 MB of BININT
    data = pickle.dumps(ints, protocol=5)
    assert len(data) > untrusted._BATCH_BYTES
    first = data.index(b"]\x94(") + 3
    end = untrusted._batch_end(data, first)
    assert first < end <= first + untrusted._BATCH_BYTES and data[end : end + 2] == b"e("
    assert untrusted.loads(data) == ints
    with pytest.raises(untrusted.LimitExceeded) as exc:
        untrusted.loads(data, untrusted.Limits(max_bytes=len(data) - 1))
    assert exc.value.limit == "max_bytes"
    with pytest.raises(untrusted.LimitExceeded) as exc:
        untrusted.loads(data, untrusted.Limits(max_seconds=0))
    assert exc.value.limit == "max_seconds"


@pytest.mark.usefixtures("scan_path")
def test_a_run_in_a_hashed_container_is_counted() -> None:
    """Only a list's batches are skipped: the same run as a set's or a dict's keys is hashed, and
    charged to max_hash_work item by item."""
    run = b"".join(_int(70_000 + i) for i in range(5000))
    limits = untrusted.Limits(max_hash_work=1000)
    for body in (b"\x8f\x94(" + run + b"\x90", b"(" + run + b"\x91",
                 b"}\x94(" + b"".join(_int(70_000 + i) + b"N" for i in range(5000)) + b"u"):
        with pytest.raises(untrusted.LimitExceeded) as exc:
            untrusted.loads(_proto(body), limits)
        assert exc.value.limit == "max_hash_work"
        untrusted.loads(_proto(body))  # within the default limits


@pytest.mark.usefixtures("scan_path")
def test_memo_gets_after_a_run_of_memoized_strings_are_charged() -> None:
    """A skipped run of memoized strings leaves the memo unknown past it: gets into the run are
    charged as the heaviest item a run memoizes, then the exact scan decides."""
    # memo 1..4999, the list is 0; mixed lengths, so the run is taken by regex
    strings = b"".join(_string("s" * (1 + i * 7919 % 5)) for i in range(4999))
    gets = b"".join(b"j" + struct.pack("<I", index) for index in range(1, 5000))
    data = _proto(b"]\x94(" + strings + b"e0\x8f\x94(" + gets + b"\x90")
    with pytest.raises(untrusted.LimitExceeded) as exc:
        untrusted.loads(data, untrusted.Limits(max_hash_work=1000))
    assert exc.value.limit == "max_hash_work"
    assert untrusted.loads(data) == pickle.loads(data)
    # a memo DAG built from a get into such a run: memo_dag_after_string_run, in hostile_pickles


@pytest.mark.usefixtures("scan_path")
def test_memo_put_past_the_input_after_a_run_is_refused() -> None:
    data = _proto(b"]\x94(" + _string("abcd") * 9 + b"er\xff\xff\xff\x7f")
    with pytest.raises(untrusted.LimitExceeded) as exc:
        untrusted.loads(data)
    assert exc.value.limit == "max_bytes"


@pytest.mark.usefixtures("scan_path")
def test_skipping_runs_passes_nothing_the_exact_scan_refuses() -> None:
    rng = random.Random(5)
    opcodes = b"()tu\x85\x86\x87\x91\x90hjqr\x94se]}2a0\x8aL\x8cJMK"
    for _ in range(300):
        data = bytearray(rng.choice(honest_runs())[: rng.randrange(20, 6000)])
        for _ in range(rng.randrange(1, 8)):
            at = rng.randrange(2, len(data))
            data[at] = rng.choice(opcodes) if rng.random() < 0.6 else rng.randrange(256)
        assert_skipping_passes_nothing_the_exact_scan_refuses(bytes(data) + b"e.")
