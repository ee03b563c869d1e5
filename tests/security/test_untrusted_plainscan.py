"""The opcode scan's C accelerator (wire/_plainscan.c) ends a list's plain items where the regex it
stands in for ends them, ``_regexes().items[3]``: on honest pickles, on hostile ones, and on bytes
built from the grammar's pieces and mutated; and the decoder decides the same with it and without
it. Skipped only when the accelerator is not built.
"""

from __future__ import annotations

import json
import pickle
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.untrusted_decode import shapes
from pymw_admin.wire import encoding, untrusted
from tests.security.conftest import ACCELERATOR_NOT_BUILT
from tests.security.hostile_pickles import CASES

pytestmark = pytest.mark.skipif(untrusted._c_match_items is None, reason=ACCELERATOR_NOT_BUILT)

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 512  # bytes from each MARK the regex is compared on (it takes ~0.2 us a byte)


def accelerated(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    match_items = untrusted._c_match_items
    assert match_items is not None
    return match_items(data, pos, limit)


def regex(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    match = untrusted._regexes().items[3].match(data, pos, limit)
    assert match is not None  # it matches the empty string
    return match.end(), match.start(1)


def agree(data: bytes, pos: int, limit: int) -> None:
    assert accelerated(data, pos, limit) == regex(data, pos, limit), (pos, limit, data[pos:][:80])


def _frame() -> bytes:
    return b"\x95" + bytes(8)


# What the regex does where a parser might not: (bytes, pos, limit or None for the end, expected
# (end, last APPENDS)); the accelerator must agree, and the regex too.
EDGES: dict[str, tuple[bytes, int, int | None, tuple[int, int]]] = {
    "numbers and a next batch": (b"K\x01M\x01\x02J\x01\x02\x03\x04e(G" + bytes(8) + b"e",
                                 0, None, (21, 10)),
    "APPENDS without the next MARK ends it": (b"K\x01e(K\x02e.", 0, None, (6, 2)),
    "APPENDS, MARK cut by the limit": (b"K\x01e(", 0, 3, (2, -1)),
    "a tuple of the last two literals": (b"K\x01K\x02K\x03\x86\x94N", 0, None, (9, -1)),
    "a TUPLE3 after two literals is no tuple": (b"K\x01K\x02\x87", 0, None, (4, -1)),
    "a tuple's literals framed": (_frame() + b"K\x01" + _frame() + b"K\x02\x86", 0, None,
                                  (23, -1)),
    "a FRAME before no literal is an item": (_frame() + b"h\x01", 0, None, (11, -1)),
    "a FRAME cut by the limit is none": (_frame(), 0, 8, (0, -1)),
    "a string cut by the limit is none": (b"\x8c\x03abc", 0, 4, (0, -1)),
    "a string's MEMOIZE past the limit is not read": (b"\x8c\x03abc\x94", 0, 5, (5, -1)),
    "a dict of pairs and a batch": (b"}\x94K\x01Ns(\x8c\x01a\x94K\x02u", 0, None, (14, -1)),
    "a dict's batch not ended by SETITEMS is left": (b"}\x94(K\x01Ne", 0, None, (2, -1)),
    # the regex gives back the FRAME of a tuple that is a dict's key, and takes it alone as the
    # key: the rest of the tuple is the value
    "a framed tuple key and SETITEM": (b"}" + _frame() + b"K\x01\x85s", 0, None, (14, -1)),
    "a framed tuple key, value and SETITEM": (b"}" + _frame() + b"K\x01\x85Ns", 0, None,
                                              (15, -1)),
    "a list of appended items": (b"]\x94K\x01a(K\x02K\x03e\x8c\x01xa", 0, None, (15, -1)),
    "a list's item not appended: the list alone, then the items": (b"]K\x01\x85K\x02", 0, None,
                                                                    (6, -1)),
    "pos and limit clamped as re clamps them": (b"K\x01K\x02", -5, 99, (4, -1)),
    "pos past the limit": (b"K\x01K\x02", 3, 1, (3, -1)),
}


@pytest.mark.parametrize("name", EDGES)
def test_edges_of_the_grammar(name: str) -> None:
    data, pos, limit, expected = EDGES[name]
    end = len(data) if limit is None else limit
    assert regex(data, pos, end) == expected
    assert accelerated(data, pos, end) == expected


def _pickles() -> dict[str, bytes]:
    found = {f"benchmark {name}": pickle.dumps(value, protocol=encoding.PICKLE_PROTOCOL)
             for name, value in shapes().items()}
    found.update({f"hostile {case.name}": case.make() for case in CASES})
    return found


PICKLES = _pickles()


@pytest.mark.parametrize("name", PICKLES)
def test_agrees_at_every_mark(name: str) -> None:
    data = PICKLES[name]
    first = data.find(b"(")
    if first >= 0:  # the first batch whole, as the scan asks for it
        agree(data, first + 1, first + 1 + untrusted._BATCH_BYTES)
    pos = first
    while pos >= 0:
        agree(data, pos + 1, pos + 1 + WINDOW)
        pos = data.find(b"(", pos + 1)


def _literal(rng: random.Random) -> bytes:
    kind = rng.randrange(9)
    if kind < 7:
        op = b"KMJGN\x88\x89"[kind : kind + 1]
        return op + rng.randbytes({b"K": 1, b"M": 2, b"J": 4, b"G": 8}.get(op, 0))
    size = rng.choice((0, 1, 2, 3, 7, 255, rng.randrange(256)))
    return (b"\x8c", b"C")[kind - 7] + bytes([size]) + rng.randbytes(size) \
        + b"\x94" * (rng.random() < 0.5)


def _framed(rng: random.Random) -> bytes:
    return _frame() * (rng.random() < 0.2) + _literal(rng)


def _tuple(rng: random.Random) -> bytes:
    count = rng.randint(1, 3)
    opcode = 0x84 + (count if rng.random() < 0.8 else rng.randint(1, 3))
    return b"".join(_framed(rng) for _ in range(count)) + bytes([opcode]) \
        + b"\x94" * (rng.random() < 0.5)


def _plain(rng: random.Random) -> bytes:
    return rng.choice((lambda: b"h" + rng.randbytes(1), lambda: b"j" + rng.randbytes(4), _frame,
                       lambda: _tuple(rng), lambda: _literal(rng), lambda: _literal(rng)))()


def _plains(rng: random.Random, most: int = 6) -> bytes:
    return b"".join(_plain(rng) for _ in range(rng.randrange(most)))


def _container(rng: random.Random) -> bytes:
    is_dict = rng.random() < 0.5
    parts = [b"}" if is_dict else b"]", b"\x94" * (rng.random() < 0.7)]
    for _ in range(rng.randrange(4)):
        if rng.random() < 0.5:
            parts.append(b"(" + _plains(rng) + (b"u" if is_dict else b"e"))
        elif is_dict:
            parts.append(_plain(rng) + _plain(rng) + b"s")
        else:
            parts.append(_plain(rng) + b"a")
    return b"".join(parts)


def _items(rng: random.Random) -> bytes:
    pieces: list[Callable[[], bytes]] = [lambda: _plain(rng), lambda: _plains(rng),
                                         lambda: _container(rng), lambda: b"e("]
    return b"".join(rng.choice(pieces)() for _ in range(rng.randrange(1, 12)))


OPCODES = b"()eua s]}\x94\x95\x85\x86\x87hjKMJGN\x88\x89\x8cC.t\x8a"


def _mutated(rng: random.Random, data: bytes) -> bytes:
    """A few bytes changed (to opcodes of the grammar mostly), dropped or repeated."""
    blob = bytearray(data)
    for _ in range(rng.randrange(4)):
        if not blob:
            break
        at, kind = rng.randrange(len(blob)), rng.random()
        if kind < 0.5:
            blob[at] = rng.choice(OPCODES)
        elif kind < 0.7:
            blob[at] = rng.randrange(256)
        elif kind < 0.85:
            del blob[at : at + rng.randrange(1, 10)]
        else:
            blob[at:at] = blob[at : at + rng.randrange(1, 20)]
    return bytes(blob)


def test_agrees_on_generated_and_mutated_bytes() -> None:
    rng = random.Random(13)
    for _ in range(4000):
        data = _items(rng)
        if rng.random() < 0.6:
            data = _mutated(rng, data)
        agree(data, 0, len(data))
        agree(data, rng.randrange(len(data) + 1), rng.randrange(len(data) + 2))  # cut anywhere
        agree(data, 0, rng.randrange(len(data) + 1))


# Each hostile payload decoded both ways in one child with a memory cap (the decoder must refuse
# them within bounds either way; a bug must not take the suite's memory with it).
BOTH_WAYS = textwrap.dedent("""
    import json, resource
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    from tests.security.hostile_pickles import CASES
    from pymw_admin.wire import untrusted

    def outcome(data):
        try:
            return ["value", repr(untrusted.loads(data))]
        except untrusted.LimitExceeded as exc:
            return ["limit", exc.limit, str(exc)]
        except Exception as exc:
            return ["refused", type(exc).__name__, str(exc)]

    accelerated = untrusted._c_match_items
    for case in CASES:
        data = case.make()
        untrusted._c_match_items = accelerated
        with_it = outcome(data)
        untrusted._c_match_items = None
        print(json.dumps([case.name, with_it, outcome(data)]))
""")


def test_hostile_payloads_are_decided_alike_with_and_without_it() -> None:
    done = subprocess.run([sys.executable, "-c", BOTH_WAYS], capture_output=True, text=True,
                          timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    decided = [json.loads(line) for line in done.stdout.splitlines()]
    assert [name for name, _, _ in decided] == [case.name for case in CASES]
    for name, with_it, without in decided:
        assert with_it == without, name
        assert with_it[0] != "value", name


def test_honest_values_are_decoded_alike_with_and_without_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in shapes().items():
        data = pickle.dumps(value, protocol=encoding.PICKLE_PROTOCOL)
        assert untrusted.loads(data) == value, name
        with monkeypatch.context() as pure:
            pure.setattr(untrusted, "_c_match_items", None)
            assert untrusted.loads(data) == value, name
