"""Bounded decoding of untrusted pickles: plain data only, in bounded time, memory and depth.

A volunteer's result is a pickle, and the standard unpickler, even restricted to plain types, lets
100 bytes cost exponential time (tuples sharing memo entries, hashed inside a frozenset), 1 MB of
nesting crash the interpreter (hashing recurses in C) and a few bytes allocate gigabytes
(``bytearray(10**9)``, ``list(range(10**8))``). So decoding is two steps:

1. :func:`scan` walks the opcodes once, without building anything, and models what the unpickler
   would build: each stack item's nesting depth and its *hash weight* (how many objects hashing it
   visits, shared memo entries counted every time). It refuses a memo index beyond the input,
   nesting beyond ``max_depth``, a hashable container heavier than ``max_weight``, and more hash
   work in total (set members, dict keys) than ``max_hash_work``, before anything is built.
   A Python step per opcode would cost more than building the value, so a list's batches of plain
   items (numbers, short strings, flat tuples, dicts and lists of those), the bulk of an honest
   result, are skipped: by the optional C accelerator ``_plainscan`` where the package was built
   with it (the same grammar as the regex below, parsed at under a nanosecond a byte), else items
   laid out alike by a few strided slices per thousand, others by one C regex match. Where that
   model is too coarse to pass a pickle, the exact one decides.
2. A restricted C unpickler builds the value. Constructors reached through globals are wrappers
   that refuse amplifying arguments (a count instead of contents, ``range`` as an iterable, a
   ``Fraction`` string with an exponent) and charge what they copy or hash to one budget.
   numpy arrays and scalars are rebuilt from a dtype on an allow-list, a shape and bytes, never by
   numpy's own pickled constructors (see "numpy values" below); a list of numpy scalars a run of
   calls at a time where numpy is installed (see "runs of numpy scalars").

Every refusal is a :class:`LimitExceeded` naming the limit. Standard library only (Python 3.11 or
newer: possessive regex quantifiers): BOINC's validator runs this module through ``pymw_compare``
with the server's python3, copied alone, so without the accelerator; it decides the same, only
slower on lists of numbers of mixed widths or of strings of mixed lengths.
"""

from __future__ import annotations

import bisect
import collections
import datetime
import decimal
import fractions
import functools
import gc
import io
import itertools
import pickle
import re
import struct
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

# The plain-items scan in C (_plainscan.c), when it was built: the match of the regex
# _regexes().items[3], without a regex step per item. Without it (no compiler where the package was
# installed, or this module copied alone beside the comparer) the pure-Python scan runs.
_c_match_items: Callable[[bytes, int, int], tuple[int, int]] | None
try:
    from ._plainscan import match_items as _c_match_items
except ImportError:
    _c_match_items = None

# Types a restricted unpickler may rebuild: plain data only, nothing that runs code on load.
SAFE_GLOBALS: dict[str, frozenset[str]] = {
    "builtins": frozenset(
        {"complex", "set", "frozenset", "bytearray", "slice", "range", "list", "dict", "tuple"}
    ),
    "collections": frozenset({"OrderedDict", "deque", "defaultdict", "Counter"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "fractions": frozenset({"Fraction"}),
}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 256 * 2**20  # the pickle itself
    max_seconds: float = 10.0  # the opcode scan (what follows it is linear at C speed)
    max_depth: int = 200  # nesting of containers
    max_weight: int = 1_000_000  # objects visited to hash one tuple or frozenset
    max_hash_work: int = 20_000_000  # objects visited hashing set members and dict keys, in all
    max_collidable: int = 4096  # hashed numbers whose hash an attacker can choose (big ints...)
    max_copied: int = 20_000_000  # elements constructors copy, in all
    max_int_bits: int = 65_536  # ints given to Fraction, range, slice
    max_text: int = 100_000  # strings given to Decimal, Fraction, complex


DEFAULT_LIMITS = Limits()


class LimitExceeded(pickle.UnpicklingError):
    """An untrusted pickle goes beyond a limit; ``limit`` names it (a :class:`Limits` field)."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(f"untrusted result exceeds the {limit} limit: {detail}")
        self.limit = limit


# --- 1. the opcode scan ----------------------------------------------------------------------

# Strings and bytes by how their argument is laid out: a length prefix of 1, 4 or 8 bytes, or a
# text line.
_LEN1 = frozenset(b"UC\x8c")  # short strings and bytes (LONG1 is a number, below)
_LEN4 = frozenset(b"TBX")
_LEN8 = frozenset(b"\x8d\x8e")
_LINE1 = frozenset(b"FSV")

# stack items: (hash weight, depth, collidable); scalars and unhashable containers are constants
_SCALAR = (1, 0, 0)
_BIG = 1  # flag: a number whose hash is chosen by its sender (ints beyond 2**61, built values)
_MUTABLE = (1, 1, 0)  # list, dict, set, bytearray: hashing one fails at once
_BUILT = (16, 1, _BIG)  # what a constructor returned (its own wrapper bounded it)
_MARK = None

# Plain numbers of a fixed size (floats, ints below 2**31, None, True, False): argument size by
# opcode, -1 for every other opcode.
_NUMBER_SIZE = [-1] * 256
for _op, _size in {b"G": 8, b"J": 4, b"K": 1, b"M": 2, b"N": 0, b"\x88": 0, b"\x89": 0}.items():
    _NUMBER_SIZE[_op[0]] = _size


def _one_of(*patterns: bytes) -> bytes:
    return b"(?:" + b"|".join(patterns) + b")"


# A list's batch of plain items, the bulk of an honest result, is skipped without a Python step
# per opcode. Items: numbers, short strings and bytes, memo gets, and flat tuples, dicts and lists
# of those. What a batch costs the budgets is known without its items: no item is a big int, a
# constructor or nested deeper than a tuple of plain values, and memo gets fetch no more than such
# a tuple (see ``skippable`` in scan); so every key it hashes is one hash of at most 4 objects:
# linear in its size. Items laid out alike (a list of floats, of points, of records with the same
# fields) are found by strided slices, a few per thousand items (see _copies); items that differ
# from one to the next by one possessive C regex match, a step per opcode or per few (_regexes).
# Such a step still costs a third to three quarters of what the unpickler spends on the opcode:
# a list of ints of mixed widths, or of short strings of mixed lengths, takes about 1.7x the
# unpickler's own time to decode. The C accelerator parses the same grammar a literal a step,
# a tenth of the unpickler's time or less on every shape, so it takes whole batches alone.
_SHORT = _one_of(*(re.escape(bytes([size])) + b".{%d}" % size for size in range(256)))
_NUMBER = rb"M..|K.|G.{8}|J.{4}|N|\x88|\x89"
_LITERAL = _one_of(_NUMBER, rb"\x8c" + _SHORT + rb"\x94?", rb"C" + _SHORT + rb"\x94?")
_FRAMED_LITERAL = rb"(?:\x95.{8})?" + _LITERAL
_TUPLE = _one_of(_FRAMED_LITERAL * 3 + rb"\x87", _FRAMED_LITERAL * 2 + rb"\x86",
                 _FRAMED_LITERAL + rb"\x85") + rb"\x94?"
# APPENDS, MARK: the batch's items are taken, the list's next batch begins (its place captured)
_NEXT_BATCH = rb"(e)\("


def _item(*plain: bytes) -> bytes:
    plain_or_frame = _one_of(*plain, rb"j.{4}", rb"\x95.{8}")
    flat_dict = rb"\}\x94?(?:\(" + plain_or_frame + rb"*+u|" + plain_or_frame + rb"{2}s)*+"
    flat_list = rb"\]\x94?(?:\(" + plain_or_frame + rb"*+e|" + plain_or_frame + rb"a)*+"
    return _one_of(flat_dict, plain_or_frame, flat_list)


# The first alternative that matches is taken: without tuples, numbers go faster, but a tuple's
# items would be taken for items, and the match stop at its TUPLE opcode or the MARK of a list
# holding it.
# Numbers alone or strings alone go faster. sre pays more for a step of the repetition (and each
# alternative tried in it) than for an opcode, so the common runs are taken several to a step:
# ints of 4 bytes (most of a list of ints of all sizes: a run between two smaller ones) 4, 2 or
# 1 at a time, memoized short strings 4, 2 or 1. Each alternative is whole opcodes from where
# the step begins, so a match ends where the one-opcode-a-step pattern ends (_ONE_A_STEP, tested).
_INT4 = rb"J...."
_MEMOIZED_SHORT = rb"\x8c" + _SHORT + rb"\x94"
_ONE_A_STEP = (rb"J.{4}|G.{8}|K.|M..|\x95.{8}|N|\x88|\x89",
               rb"\x8c" + _SHORT + rb"\x94?|h.|\x95.{8}")


class _Regexes(NamedTuple):
    item: re.Pattern[bytes]
    item_without_tuples: re.Pattern[bytes]
    items: tuple[re.Pattern[bytes], ...]


@functools.cache
def _regexes() -> _Regexes:
    """Compiled on first use, not at import: the tuple patterns (every string length spelled
    out) take most of a second to compile, which a process that never meets a list does not need
    (the comparer of two identical payloads, a master's start-up)."""
    with_tuples = _item(rb"h.", _TUPLE, _LITERAL)
    without_tuples = _item(rb"h.", _LITERAL)
    return _Regexes(
        item=re.compile(with_tuples, re.S),
        item_without_tuples=re.compile(without_tuples, re.S),
        items=tuple(re.compile(_one_of(item, _NEXT_BATCH) + b"*+", re.S) for item in (
            _one_of(_INT4 * 4, _INT4 * 2, _ONE_A_STEP[0]),
            _one_of(_MEMOIZED_SHORT * 4, _MEMOIZED_SHORT * 2, _ONE_A_STEP[1]),
            without_tuples, with_tuples)))


def prepare() -> None:
    """Compile the decoder's patterns now, e.g. before a time budget for decoding starts (the
    pure-Python scan's: the C accelerator needs none)."""
    if _c_match_items is None:
        _regexes()


_TUPLE_OR_MARK = frozenset(b"\x85\x86\x87(")
_SMALL_TUPLE = (4, 1, 0)  # the heaviest item a skipped batch memoizes
_BATCH_BYTES = 1 << 20  # skipped at a time, so the scan's deadline is still checked often
_COPIES = 1000  # items compared at a time: a batch, as pickle writes them
_FEW_COPIES = 32  # fewer items laid out alike, three times in a row: the regex is faster
_LAYOUT_OPCODES = 64  # the most opcodes of an item whose copies are looked for
_NO_ARGUMENT = frozenset(b"N\x88\x89")  # None, True, False: laid out alike
_SAME_KIND = bytes.maketrans(b"N\x89", b"\x88\x88")
_ARGUMENT_SIZE = [0] * 256  # of the opcodes of plain items, but short strings
for _op, _size in {b"G": 8, b"J": 4, b"K": 1, b"M": 2, b"h": 1, b"j": 4, b"\x95": 8}.items():
    _ARGUMENT_SIZE[_op[0]] = _size


def _u(data: bytes, pos: int, size: int) -> int:
    return int.from_bytes(data[pos : pos + size], "little")


def _batch_end(data: bytes, pos: int) -> int:
    """Where the plain items after a MARK at ``pos`` end: at the APPENDS that takes them all (their
    number and weights no longer matter), or at the last APPENDS of the list's batches that are
    all plain items; ``pos`` if the first batch is not."""
    limit = pos + _BATCH_BYTES
    if _c_match_items is not None:  # all at once, as the regex fallback below ends
        end, appends = _c_match_items(data, pos, limit)
        if data[end] == 0x65:  # APPENDS
            return end
        return appends if appends >= 0 else pos
    end, appends, unlike = pos, -1, 0
    regexes = _regexes()
    while end < limit:
        op = data[end]
        if op == 0x65:  # APPENDS
            if data[end + 1] != 0x28:  # not followed by the MARK of the list's next batch
                return end
            appends, end = end, end + 2
        elif op == 0x95:  # FRAME
            end += 9
        else:
            size = _NUMBER_SIZE[op] + 1  # a number is an item by itself
            copies = _copies(data, end, size, limit) if size else 0
            if copies < _FEW_COPIES:  # or the first item of a tuple
                plain = regexes.item_without_tuples if op == 0x5D or op == 0x7D \
                    else regexes.item  # list, dict
                item = plain.match(data, end, limit)
                if item is None or data[item.end()] in _TUPLE_OR_MARK:
                    item = regexes.item.match(data, end, limit)
                    if item is None:
                        break
                size = item.end() - end
                copies = _copies(data, end, size, limit)
            end += copies * size
            unlike = unlike + 1 if copies < _FEW_COPIES else 0
            if unlike == 3:  # items laid out differently one to the next: a regex is faster
                for items in regexes.items:
                    match = items.match(data, end, limit)
                    assert match is not None  # they all match the empty string
                    if data[match.end()] == 0x65:
                        return match.end()
                    appends = max(appends, match.start(1))
                break
    return appends if appends >= 0 else pos


def _copies(data: bytes, start: int, size: int, limit: int) -> int:
    """How many items from ``start`` on are laid out like the plain item there, ``size`` bytes:
    the same opcodes (None, True, False alike) and string lengths at the same offsets, so each
    is a plain item as the first is. A strided slice per opcode and length, whatever the count;
    an item of more than _LAYOUT_OPCODES is left to the regex."""
    layout: list[tuple[int, bool]] = []  # where its opcodes are, and its strings' lengths (exact)
    pos = start
    while pos < start + size:
        if len(layout) >= _LAYOUT_OPCODES:
            return 1
        op = data[pos]
        layout.append((pos, False))
        if op == 0x8C or op == 0x43:  # short strings and bytes
            layout.append((pos + 1, True))
            pos += 2 + data[pos + 1]
        else:
            pos += 1 + _ARGUMENT_SIZE[op]
    count = max(1, min(_COPIES, (min(limit, len(data)) - start) // size))
    for at, exact in reversed(layout):  # the last first: a FRAME in an item shifts what follows
        run = data[at : at + size * count : size]
        if not exact and data[at] in _NO_ARGUMENT:
            run = run.translate(_SAME_KIND)
        if run != run[:1] * len(run):
            count = len(run) - len(run.lstrip(run[:1]))
            if count == 1:
                break
    return count


# A call whose callable and first argument are memo gets, its second argument short bytes:
# numpy.scalar(dtype, raw) a list item after another, ``h.h.C.{n}\x94\x86\x94R\x94`` each
_GET = re.compile(rb"h.|j.{4}", re.S)
_CALL_TAIL = b"\x94\x86\x94R\x94"


class _CallsAlike(NamedTuple):
    """``calls`` calls alike from ``start``, ``stride`` bytes each: ``callable_get args_get
    SHORT_BINBYTES MEMOIZE TUPLE2 MEMOIZE REDUCE MEMOIZE``, only the ``size`` bytes (from ``raw``
    in each) differing."""

    start: int
    calls: int
    stride: int
    raw: int
    size: int
    callable_get: bytes
    args_get: bytes

    @property
    def end(self) -> int:
        return self.start + self.calls * self.stride


def _memo_index(get: bytes) -> int:
    return int.from_bytes(get[1:], "little")


def _calls_alike(data: bytes, pos: int) -> _CallsAlike | None:
    """The calls alike that begin at ``pos`` (up to _COPIES of them), None if none does: the first
    parsed, the others compared with it by a strided slice a byte that must not differ."""
    first = _GET.match(data, pos)
    if first is None:
        return None
    second = _GET.match(data, first.end())
    if second is None or data[second.end() : second.end() + 1] != b"C" \
            or second.end() + 1 >= len(data):
        return None
    size = data[second.end() + 1]
    raw = second.end() + 2 - pos
    stride = raw + size + len(_CALL_TAIL)
    if data[pos + raw + size : pos + stride] != _CALL_TAIL:
        return None
    count = min(_COPIES, (len(data) - pos) // stride)
    for at in itertools.chain(range(raw), range(raw + size, stride)):
        same = data[pos + at : pos + at + stride * count : stride]
        if same.count(same[0]) != count:
            count = count - len(same.lstrip(same[:1]))
    return _CallsAlike(pos, count, stride, raw, size, data[pos : first.end()],
                       data[first.end() : second.end()])


class _Unsure(Exception):
    """A limit met after skipping a batch, when the memo was no longer known exactly."""


def scan(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[_CallsAlike]:
    """Refuse ``data`` unless unpickling it is bounded (see the module's docstring). Returns the
    runs of calls alike it modelled a run at a time, in their order (loads takes them so too):
    none if a memo get read a call's bytes or arguments (after a run, the scan sees every get)."""
    n = len(data)
    if n > limits.max_bytes:
        raise LimitExceeded("max_bytes", f"{n} bytes (limit {limits.max_bytes})")
    prepare()  # a first decode's pattern compiling is not the data's time
    deadline = time.monotonic() + limits.max_seconds
    found: list[_CallsAlike] = []
    try:
        _scan(data, limits, deadline, skip_batches=True, found=found)
    except _Unsure:  # the model was too coarse, maybe: the exact one decides, in the same time
        found.clear()
        _scan(data, limits, deadline, skip_batches=False)
    return found


def _scan(data: bytes, limits: Limits, deadline: float, skip_batches: bool,
          found: list[_CallsAlike] | None = None) -> None:
    n = len(data)
    stack: list[Any] = []
    marks: list[int] = []
    # The memo, exactly until a skipped batch may have memoized an unknown number of items: from
    # then on, a get from index ``uncertain_from`` on is the heaviest item memoized (``heavy``).
    memo: dict[int, Any] = {}
    # The memo entries of runs of calls alike, not in ``memo`` (one each would cost more than
    # the run): (first index, index after the last, the arguments tuple), and how many there are
    alike: list[tuple[int, int, Any]] = []
    alike_starts: list[int] = []
    in_alike = 0
    uncertain_from = 1 << 62
    heavy = _MUTABLE
    skippable = skip_batches  # and no memo get can fetch more than a skipped batch may hold
    hash_work = 0
    collidable = 0
    max_depth, max_weight = limits.max_depth, limits.max_weight
    puts = False  # a memo index was written: MEMOIZE may no longer add the next one
    pos = 0
    next_check = 1 << 16
    push = stack.append
    number_size, len1 = _NUMBER_SIZE, _LEN1

    def hashed(items: list[Any]) -> None:
        nonlocal hash_work, collidable
        for item in items:
            if item is _MARK:
                raise pickle.UnpicklingError("misplaced MARK")
            hash_work += item[0]
            collidable += item[2]
        if hash_work > limits.max_hash_work:
            raise LimitExceeded("max_hash_work",
                                f"hashing needs over {limits.max_hash_work} steps")
        if collidable > limits.max_collidable:
            raise LimitExceeded("max_collidable",
                                f"over {limits.max_collidable} hashed big numbers")

    def alike_at(index: int) -> int:
        """Which run of calls alike memoized ``index``; -1 if none did."""
        at = bisect.bisect_right(alike_starts, index) - 1
        return at if at >= 0 and index < alike[at][1] else -1

    def recalled(index: int) -> Any:
        """The memo entry at ``index`` (KeyError: none, a malformed pickle)."""
        nonlocal found
        item = memo.get(index)
        if item is not None:
            return item
        at = alike_at(index)
        if at < 0:
            raise KeyError(index)
        base, _end, args = alike[at]
        kind = (index - base) % 3
        if kind != 2 and found is not None:  # a call's bytes or arguments read: loads takes
            found.clear()  # no run a run at a time (it leaves them out)
            found = None
        return (_SCALAR, args, _BUILT)[kind]

    def memoized(index: int, item: tuple[int, int, int]) -> None:
        nonlocal in_alike
        if index < uncertain_from:
            if alike and index not in memo and alike_at(index) >= 0:  # a PUT over a run's
                in_alike -= 1
            memo[index] = item
        heavier(item)

    def heavier(item: tuple[int, int, int]) -> None:
        nonlocal heavy, skippable
        heavy = (max(heavy[0], item[0]), max(heavy[1], item[1]), heavy[2] | item[2])
        skippable = (skip_batches and heavy[0] <= _SMALL_TUPLE[0]
                     and heavy[1] <= _SMALL_TUPLE[1] and not heavy[2])

    def pop_mark() -> list[Any]:
        if not marks:
            raise pickle.UnpicklingError("no MARK on the stack")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    def hashable(items: list[Any], what: str) -> tuple[int, int, int]:
        weight, depth, big = 1, 0, 0
        for w, d, b in items:
            weight += w
            if d > depth:
                depth = d
            big |= b
        depth += 1
        if depth > max_depth:
            raise LimitExceeded("max_depth", f"a {what} nested over {max_depth} deep")
        if weight > max_weight:
            raise LimitExceeded("max_weight",
                                f"hashing one {what} visits over {max_weight} objects")
        return (weight, depth, big)

    try:
        while True:
            op = data[pos]
            pos += 1
            if pos > next_check:
                next_check = pos + (1 << 16)
                if time.monotonic() > deadline:
                    raise LimitExceeded("max_seconds", f"decoding takes over "
                                        f"{limits.max_seconds:g} s")
            # the opcodes of honest results first, the most frequent first
            size = number_size[op]
            if size >= 0:
                pos += size
                push(_SCALAR)
            elif op == 0x94:  # MEMOIZE
                item = stack[-1]
                if item[0] == 1 and not item[2]:  # a scalar or an unhashable container
                    memo[len(memo) + in_alike] = item
                else:
                    memoized(len(memo) + in_alike, item)
            elif op in len1:
                pos += 1 + data[pos]
                push(_SCALAR)
            elif op == 0x68:  # BINGET
                index = data[pos]
                push((memo.get(index) or recalled(index)) if index < uncertain_from else heavy)
                pos += 1
            elif op == 0x28:  # MARK
                marks.append(len(stack))
                # the next batch of a list (after EMPTY_LIST MEMOIZE, or APPENDS)
                if skippable and (data[pos - 2] == 0x65 or data[pos - 3 : pos - 1] == b"]\x94"):
                    end = _batch_end(data, pos)
                    if end != pos:
                        pos = end
                        if uncertain_from > len(memo) + in_alike:  # the batch may have
                            uncertain_from = len(memo) + in_alike  # memoized items
                            memoized(uncertain_from, _SMALL_TUPLE)
            elif op == 0x65:  # APPENDS: the items go, unseen (not copied: a run's thousand)
                if not marks:
                    raise pickle.UnpicklingError("no MARK on the stack")
                del stack[marks.pop() :]
            elif op == 0x75:  # SETITEMS
                hashed(pop_mark()[0::2])
            elif op == 0x5D or op == 0x7D or op == 0x8F:  # EMPTY_LIST, EMPTY_DICT, EMPTY_SET
                push(_MUTABLE)
            elif op == 0x86 or op == 0x87 or op == 0x85:  # TUPLE2, TUPLE3, TUPLE1
                count = op - 0x84
                items = stack[-count:]
                if len(items) != count or _MARK in items:
                    raise pickle.UnpicklingError("stack underflow")
                del stack[-count:]
                push(hashable(items, "tuple"))
            elif op == 0x95:  # FRAME
                pos += 8
            elif op == 0x61:  # APPEND
                stack.pop()
            elif op == 0x73:  # SETITEM
                _value, key = stack.pop(), stack.pop()
                hashed([key])
            elif op == 0x29:  # EMPTY_TUPLE
                push(_SCALAR)
            elif op == 0x74:  # TUPLE
                push(hashable(pop_mark(), "tuple"))
            elif op == 0x91:  # FROZENSET
                items = pop_mark()
                hashed(items)
                push(hashable(items, "frozenset"))
            elif op == 0x90:  # ADDITEMS
                hashed(pop_mark())
            elif op == 0x6C or op == 0x64:  # LIST, DICT
                items = pop_mark()
                if op == 0x64:
                    hashed(items[0::2])
                push(_MUTABLE)
            elif op in _LEN4:
                pos += 4 + _u(data, pos, 4)
                push(_SCALAR)
            elif op in _LEN8 or op == 0x96:  # long strings and bytes, BYTEARRAY8
                pos += 8 + _u(data, pos, 8)
                push(_MUTABLE if op == 0x96 else _SCALAR)
            elif op in _LINE1:
                pos = data.index(b"\n", pos) + 1
                push(_SCALAR)
            elif op == 0x6A:  # LONG_BINGET
                index = _u(data, pos, 4)
                push(recalled(index) if index < uncertain_from else heavy)
                pos += 4
            elif op == 0x71 or op == 0x72:  # BINPUT, LONG_BINPUT
                puts = True
                size = 1 if op == 0x71 else 4
                index = _u(data, pos, size)
                if index > n:
                    raise LimitExceeded("max_bytes", f"memo index {index} beyond the input")
                memoized(index, stack[-1])
                pos += size
            elif op == 0x8A or op == 0x8B:  # LONG1, LONG4: the hash of a big int is chosen
                size = data[pos] if op == 0x8A else _u(data, pos, 4)
                pos += (1 if op == 0x8A else 4) + size
                push((1 + size // 8, 0, _BIG if size > 7 else 0))
            elif op == 0x4C or op == 0x49:  # LONG, INT (text)
                end = data.index(b"\n", pos)
                push((1 + (end - pos) // 16, 0, _BIG if end - pos > 18 else 0))
                pos = end + 1
            elif op == 0x67 or op == 0x70:  # GET, PUT (text)
                puts = True
                end = data.index(b"\n", pos)
                index = int(data[pos:end])
                pos = end + 1
                if op == 0x67:
                    push(recalled(index) if index < uncertain_from else heavy)
                else:
                    if not 0 <= index <= n:
                        raise LimitExceeded("max_bytes", f"memo index {index} beyond the input")
                    memoized(index, stack[-1])
            elif op == 0x63 or op == 0x93:  # GLOBAL, STACK_GLOBAL
                if op == 0x63:
                    pos = data.index(b"\n", data.index(b"\n", pos) + 1) + 1
                else:
                    del stack[-2:]
                push(_BUILT)
            elif op == 0x52 or op == 0x81:  # REDUCE, NEWOBJ: callable, args -> value
                del stack[-2:]
                push(_BUILT)
                if op == 0x52 and skip_batches and data[pos : pos + 1] == b"\x94" and not puts \
                        and len(memo) + in_alike + 1 < uncertain_from:
                    # then calls alike (a list of numpy scalars) are modelled a run at a time,
                    # as the exact scan (no skipping: the tests' oracle) models them a step each
                    run = _calls_alike(data, pos + 1)
                    base = len(memo) + in_alike + 1
                    if (run is not None and _memo_index(run.callable_get) < base
                            and _memo_index(run.args_get) < base
                            and base + 3 * run.calls <= uncertain_from):
                        memoized(base - 1, _BUILT)  # this call's MEMOIZE
                        recalled(_memo_index(run.callable_get))  # read by each call, as the args
                        args = hashable([recalled(_memo_index(run.args_get)), _SCALAR], "tuple")
                        heavier(args)
                        alike.append((base, base + 3 * run.calls, args))
                        alike_starts.append(base)
                        in_alike += 3 * run.calls
                        stack.extend(itertools.repeat(_BUILT, run.calls))
                        pos = run.end
                        if found is not None:
                            found.append(run)
            elif op == 0x92:  # NEWOBJ_EX
                del stack[-3:]
                push(_BUILT)
            elif op == 0x62:  # BUILD
                stack.pop()
            elif op == 0x30:  # POP
                if marks and len(stack) == marks[-1]:
                    pop_mark()
                else:
                    stack.pop()
            elif op == 0x31:  # POP_MARK
                pop_mark()
            elif op == 0x32:  # DUP
                push(stack[-1])
            elif op == 0x80:  # PROTO
                pos += 1
            elif op == 0x2E:  # STOP
                break
            else:  # persistent ids, extensions, INST/OBJ, out-of-band buffers: never plain data
                raise pickle.UnpicklingError(f"opcode {bytes([op])!r} refused")
            if pos > n:
                raise pickle.UnpicklingError("pickle data was truncated")
    except LimitExceeded:
        if uncertain_from < n and time.monotonic() < deadline:
            raise _Unsure from None
        raise
    except (IndexError, KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, pickle.UnpicklingError):
            raise
        raise pickle.UnpicklingError(f"malformed pickle at byte {pos}") from None


# --- 2. bounded constructors -----------------------------------------------------------------


_Made = TypeVar("_Made")
_PLACEHOLDERS_FOLLOWED = 64  # an honest result makes one dtype each, memoized: a few


class _Budget:
    """What the constructors of one load may still copy and hash."""

    def __init__(self, limits: Limits, numpy_describe: bool = False) -> None:
        self.limits = limits
        self.copied = 0
        self.hash_work = 0
        self.collidable = 0
        self.numpy_describe = numpy_describe  # NumpyValue, not numpy objects (the comparer)
        self.numpy_seen = False  # a numpy name was met: dtypes or arrays may need finishing
        self.numpy_pending = False
        self.numpy_built = 0  # bytes of numpy arrays and scalars
        # the placeholders made (dtypes, arrays awaiting their state), weakly, while few: once
        # the unpickler and its memo are gone, only the value can hold one still alive
        self.placeholders: list[weakref.ref[Any]] | None = []

    def placeholder(self, made: _Made) -> _Made:
        if self.placeholders is not None:
            if len(self.placeholders) < _PLACEHOLDERS_FOLLOWED:
                self.placeholders.append(weakref.ref(made))
            else:
                self.placeholders = None  # too many to follow: the value is walked for them
        return made

    def placeholders_left(self) -> bool:
        """Whether a placeholder may be in the value (call it once the unpickler is gone)."""
        return self.placeholders is None or any(ref() is not None for ref in self.placeholders)

    def numpy_used(self) -> None:
        if not self.numpy_seen:
            self.numpy_seen = True
            if not self.numpy_describe:
                _numpy()  # refused at once where numpy is missing

    def numpy_bytes(self, count: int) -> None:
        # the pickle holds them, but one memoized buffer may be given to many arrays
        self.numpy_built += count
        if self.numpy_built > self.limits.max_bytes:
            raise LimitExceeded("max_bytes", f"numpy arrays of over {self.limits.max_bytes} "
                                "bytes")

    def copy(self, count: int) -> None:
        self.copied += count
        if self.copied > self.limits.max_copied:
            raise LimitExceeded("max_copied", f"constructors copy over {self.limits.max_copied} "
                                "elements")

    def hash(self, items: Any) -> None:
        """Charge hashing ``items``: tuples and frozensets are walked (shared parts each time)."""
        limits = self.limits
        weights: dict[int, int] = {}
        for item in items:
            self.hash_work += _weight(item, weights, limits)
            if _collidable(item):
                self.collidable += 1
        if self.hash_work > limits.max_hash_work:
            raise LimitExceeded("max_hash_work", f"hashing needs over {limits.max_hash_work} "
                                "steps")
        if self.collidable > limits.max_collidable:
            raise LimitExceeded("max_collidable",
                                f"over {limits.max_collidable} hashed big numbers")


_P = 2**61 - 1


def _collidable(item: Any) -> bool:
    if isinstance(item, int):
        return not -_P < item < _P
    return isinstance(item, decimal.Decimal | fractions.Fraction | complex | float | tuple)


def _weight(root: Any, weights: dict[int, int], limits: Limits) -> int:
    """Objects hashing ``root`` visits, shared ones counted each time; depth-first, no recursion."""
    if type(root) not in (tuple, frozenset):
        return 1
    todo: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while todo:
        obj, depth, done = todo.pop()
        if id(obj) in weights and not done:
            continue
        if depth > limits.max_depth:
            raise LimitExceeded("max_depth", f"nested over {limits.max_depth} deep")
        if done:
            total = 1 + sum(weights.get(id(child), 1) for child in obj)
            if total > limits.max_weight:
                raise LimitExceeded("max_weight",
                                    f"hashing one container visits over {limits.max_weight} "
                                    "objects")
            weights[id(obj)] = total
            continue
        todo.append((obj, depth, True))
        todo.extend((child, depth + 1, False) for child in obj
                    if type(child) in (tuple, frozenset))
    return weights[id(root)]


_NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)(/\d+)?\s*")


def _check_int(value: Any, limits: Limits, what: str) -> None:
    if isinstance(value, int) and value.bit_length() > limits.max_int_bits:
        raise LimitExceeded("max_int_bits", f"a {value.bit_length()}-bit int given to {what}")


def _check_text(value: Any, limits: Limits, what: str) -> None:
    if isinstance(value, str | bytes) and len(value) > limits.max_text:
        raise LimitExceeded("max_text", f"{len(value)} characters given to {what}")


_SIZED = (list, tuple, dict, set, frozenset, str, bytes, bytearray, collections.deque)


def _constructors(budget: _Budget) -> dict[tuple[str, str], Any]:
    limits = budget.limits

    def sized(arg: Any, what: str) -> Any:
        # a count, a range or an iterator would let a few bytes make millions of elements
        if not isinstance(arg, _SIZED):
            raise LimitExceeded("max_copied", f"{what}() of a {type(arg).__name__} refused")
        budget.copy(len(arg))
        return arg

    def container(real: type, hashes: bool) -> Any:
        def build(*args: Any, **kwargs: Any) -> Any:
            if len(args) > 1 or kwargs:
                raise pickle.UnpicklingError(f"{real.__name__}() with unexpected arguments")
            if args:
                arg = sized(args[0], real.__name__)
                if hashes:
                    budget.hash(arg.keys() if isinstance(arg, dict) else arg)
                if real is tuple:
                    budget.hash([tuple(arg)])
            return real(*args)

        build.real = real  # type: ignore[attr-defined]
        return build

    def build_bytearray(*args: Any) -> bytearray:
        if args and isinstance(args[0], int):
            raise LimitExceeded("max_copied", "bytearray() of a count refused")
        if args and not isinstance(args[0], str):
            sized(args[0], "bytearray")
        elif args:
            _check_text(args[0], limits, "bytearray")
        return bytearray(*args)

    def build_range(*args: Any) -> range:
        for arg in args:
            _check_int(arg, limits, "range")
        return range(*args)

    def build_slice(*args: Any) -> slice:
        for arg in args:
            _check_int(arg, limits, "slice")
        return slice(*args)

    def build_deque(iterable: Any = (), maxlen: int | None = None) -> collections.deque[Any]:
        return collections.deque(sized(iterable, "deque"), maxlen)

    def build_defaultdict(factory: Any = None, *args: Any) -> collections.defaultdict[Any, Any]:
        factory = getattr(factory, "real", factory)
        if factory is not None and factory not in (list, dict, set, frozenset, tuple):
            raise pickle.UnpicklingError("defaultdict() with an unexpected factory")
        if args:
            budget.hash(sized(args[0], "defaultdict"))
        return collections.defaultdict(factory, *args)

    def build_decimal(value: Any = "0", context: Any = None) -> decimal.Decimal:
        _check_text(value, limits, "Decimal")
        if isinstance(value, tuple):
            sized(value[1] if len(value) == 3 else (), "Decimal")
            if len(value) == 3 and len(value[1]) > limits.max_text:
                raise LimitExceeded("max_text", "too many digits given to Decimal")
        _check_int(value, limits, "Decimal")
        return decimal.Decimal(value)

    def build_fraction(numerator: Any = 0, denominator: Any = None) -> fractions.Fraction:
        for arg in (numerator, denominator):
            _check_int(arg, limits, "Fraction")
            if isinstance(arg, str):
                _check_text(arg, limits, "Fraction")
                # "1e10000000" would make Fraction compute 10**10000000
                if not _NUMBER_TEXT.fullmatch(arg):
                    raise LimitExceeded("max_text", "a Fraction string with an exponent refused")
            elif not isinstance(arg, int | None):
                raise pickle.UnpicklingError("Fraction() of an unexpected type")
        return fractions.Fraction(numerator, denominator)

    return {
        ("builtins", "list"): container(list, False),
        ("builtins", "tuple"): container(tuple, False),
        ("builtins", "set"): container(set, True),
        ("builtins", "frozenset"): container(frozenset, True),
        ("builtins", "dict"): container(dict, True),
        ("builtins", "bytearray"): build_bytearray,
        ("builtins", "range"): build_range,
        ("builtins", "slice"): build_slice,
        ("builtins", "complex"): complex,
        ("collections", "OrderedDict"): container(collections.OrderedDict, True),
        ("collections", "Counter"): container(collections.Counter, True),
        ("collections", "deque"): build_deque,
        ("collections", "defaultdict"): build_defaultdict,
        ("decimal", "Decimal"): build_decimal,
        ("fractions", "Fraction"): build_fraction,
        **{("datetime", name): getattr(datetime, name) for name in SAFE_GLOBALS["datetime"]},
        **_numpy_constructors(budget),
    }


# --- numpy values ----------------------------------------------------------------------------
#
# numpy pickles an array as a call of one of its functions: at protocol 5 (what a worker uses)
# ``numpy._core.numeric._frombuffer(buffer, dtype, shape, order)`` for a C- or Fortran-contiguous
# array, ``numpy._core.multiarray._reconstruct(ndarray, (0,), b"b")`` then a BUILD with
# ``(1, shape, dtype, is_fortran, raw bytes)`` for any other (and at protocols 3 and 4); a scalar
# as ``numpy._core.multiarray.scalar(dtype, raw bytes)``; a dtype as ``numpy.dtype(code, False,
# True)`` then a BUILD with ``(3, byte order, None, None, None, -1, -1, 0)``. numpy 1.x spells the
# modules ``numpy.core.*``. Each of those names resolves here to a check of exactly those arguments
# (a dtype code on _NUMPY_CODES, a shape of a few non-negative ints, as many bytes as they make),
# never to numpy's function: numpy's own __setstate__ believes what it is given. What passes is a
# NumpyValue (dtype, shape, order, bytes), which the comparer compares without numpy; a master
# gets it as the numpy array or scalar it describes (numpy.frombuffer, imported only then).

# bool, ints, floats, complexes: bytes numpy reads as numbers, whatever they hold (no object,
# structured, string or datetime dtype); code -> item size
_NUMPY_CODES: dict[str, int] = {
    "b1": 1, "i1": 1, "i2": 2, "i4": 4, "i8": 8, "u1": 1, "u2": 2, "u4": 4, "u8": 8,
    "f2": 2, "f4": 4, "f8": 8, "c8": 8, "c16": 16,
}
_NUMPY_MAX_DIMS = 64  # numpy 2's own limit (numpy 1's is 32: such a master refuses the reshape)
_NUMPY_MODULES = ("numpy._core", "numpy.core")  # numpy 2, numpy 1
_NATIVE_ORDER = "<" if sys.byteorder == "little" else ">"
_PLAIN_DTYPE_STATE = (None, None, None, -1, -1, 0)  # no subarray, no fields, numpy's own sizes


class _NumpyDType:
    """What ``numpy.dtype(code, False, True)`` and its BUILD describe: a code and a byte order."""

    __hash__ = None  # type: ignore[assignment]  # a real dtype in a set would be its own object

    def __init__(self, code: str, real: bool = False) -> None:
        self.code = code
        self.order = _NATIVE_ORDER if _NUMPY_CODES[code] > 1 else "|"
        self._real = real
        self.real: Any = _real_dtype(code, self.order) if real else None  # numpy's, built

    def _set_order(self, order: str) -> None:
        self.order = order
        if self._real:
            self.real = _real_dtype(self.code, order)

    def __setstate__(self, state: Any) -> None:
        if (type(state) is not tuple or len(state) != 8 or state[0] != 3
                or state[1] not in ("<", ">", "|", "=") or state[2:] != _PLAIN_DTYPE_STATE):
            raise pickle.UnpicklingError(f"numpy dtype {self.code} with an unexpected state "
                                         "refused")
        order = _NATIVE_ORDER if state[1] == "=" else state[1]
        if (order == "|") != (_NUMPY_CODES[self.code] == 1):
            raise pickle.UnpicklingError(f"numpy dtype {self.code} with byte order {order} refused")
        self._set_order(order)


@dataclass(frozen=True, eq=False)
class NumpyValue:
    """A numpy array (or scalar, ``scalar`` true and ``shape`` ()) as its parts: the dtype's code
    and byte order, the shape, the memory order (``"C"`` or ``"F"``) and the raw bytes."""

    code: str
    order: str  # the dtype's byte order: "<", ">", or "|" (one-byte items)
    shape: tuple[int, ...]
    memory: str
    data: bytes | bytearray
    scalar: bool = False

    __hash__ = None  # type: ignore[assignment]

    def __setstate__(self, state: Any) -> None:
        # a BUILD would otherwise write its fields (through __dict__, frozen or not); on a master
        # the numpy array's own __setstate__ refuses every state, none holding a numpy dtype
        raise pickle.UnpicklingError("a numpy value given a state refused")

    def canonical(self) -> bytes:
        """Equal for equal values whatever their byte and memory order: the bytes of each item
        position (least significant first) in C order, after the code and the shape."""
        size = _NUMPY_CODES[self.code]
        data = bytes(self.data)
        planes = [data[at::size] for at in range(size)]
        if self.order == ">":  # each number of a complex on its own
            part = size // 2 if self.code[0] == "c" else size
            planes = [plane for at in range(0, size, part)
                      for plane in reversed(planes[at : at + part])]
        shape = tuple(dim for dim in self.shape if dim != 1)  # where they lie does not matter
        if self.memory == "F" and len(shape) > 1:
            planes = [_fortran_to_c(plane, shape) for plane in planes]
        head = f"{'s' if self.scalar else 'a'}{self.code}:{','.join(map(str, self.shape))}:"
        return head.encode() + b"".join(planes)


def _fortran_to_c(plane: bytes, shape: tuple[int, ...]) -> bytes:
    """One byte an item in Fortran order -> C order, a strided slice per item of the smaller of
    the first and last dimensions (no numpy on the server)."""
    if len(shape) <= 1:
        return plane
    first, last = shape[0], shape[-1]
    if first <= last:  # fixing the first index leaves every first-th byte, in Fortran order
        return b"".join(_fortran_to_c(plane[at::first], shape[1:]) for at in range(first))
    block = len(plane) // last  # fixing the last index leaves a block, going every last-th place
    out = bytearray(len(plane))
    for at in range(last):
        out[at::last] = _fortran_to_c(plane[at * block : (at + 1) * block], shape[:-1])
    return bytes(out)


class _NumpyArrayState:
    """What ``_reconstruct`` returns: an array whose parts its BUILD gives (the ``value``)."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, make: Callable[[Any, Any, str, Any], NumpyValue]) -> None:
        self._make = make
        self.value: NumpyValue | None = None

    def __setstate__(self, state: Any) -> None:
        if self.value is not None or type(state) is not tuple or len(state) != 5 or state[0] != 1 \
                or type(state[3]) is not bool:
            raise pickle.UnpicklingError("numpy array with an unexpected state refused")
        _version, shape, dtype, fortran, raw = state
        self.value = self._make(raw, dtype, "F" if fortran else "C", shape)


_numpy_parts: dict[str, Any] = {}  # "numpy" (the module) and "scalar" (its scalar constructor)


def _numpy() -> Any:
    if not _numpy_parts:
        try:
            import numpy
        except ImportError:
            raise pickle.UnpicklingError(
                "untrusted result holds a numpy array or scalar, and numpy is not installed "
                "where it is decoded: install numpy beside the master") from None
        _numpy_parts["numpy"] = numpy
        for module in _NUMPY_MODULES:
            try:
                found = __import__(f"{module}.multiarray", fromlist=["scalar"])
            except ImportError:
                continue
            _numpy_parts["scalar"] = found.scalar
            break
    return _numpy_parts["numpy"]


@functools.cache
def _real_dtype(code: str, order: str) -> Any:
    dtype = _numpy().dtype(code)
    return dtype if order == "|" else dtype.newbyteorder(order)


def _numpy_built(value: NumpyValue) -> Any:
    """The numpy object ``value`` describes (numpy itself checks nothing more: all was checked)."""
    dtype = _real_dtype(value.code, value.order)
    if value.scalar:
        make = _numpy_parts.get("scalar")
        if make is not None:
            return make(dtype, bytes(value.data))
        return _numpy().frombuffer(value.data, dtype)[0]
    array = _numpy().frombuffer(value.data, dtype).reshape(value.shape, order=value.memory)
    # bytes give a read-only array, a bytearray (protocol 5's in-band buffer) a writable one
    return array if isinstance(value.data, bytearray) else array.copy(order="K")


def _numpy_constructors(budget: _Budget) -> dict[tuple[str, str], Any]:
    limits = budget.limits
    max_copied, max_bytes = limits.max_copied, limits.max_bytes
    make_scalar: Any = None  # numpy's scalar constructor, once a dtype is made

    def dtype(code: Any, align: Any = False, copy: Any = True) -> _NumpyDType:
        nonlocal make_scalar
        budget.numpy_used()
        if type(code) is not str or code not in _NUMPY_CODES or align is not False \
                or copy is not True:
            shown = code if type(code) is str and len(code) < 40 else type(code).__name__
            raise pickle.UnpicklingError(f"numpy dtype {shown!r} refused: only bool, int, uint, "
                                         "float and complex dtypes are accepted")
        if budget.numpy_describe:
            return budget.placeholder(_NumpyDType(code))
        make_scalar = _numpy_parts.get("scalar")
        return budget.placeholder(_NumpyDType(code, real=make_scalar is not None))

    def value(raw: Any, dtype: Any, memory: Any, shape: Any, scalar: bool = False) -> NumpyValue:
        if type(dtype) is not _NumpyDType:
            raise pickle.UnpicklingError("numpy value without a numpy dtype refused")
        if type(raw) not in (bytes, bytearray) or memory not in ("C", "F") \
                or type(shape) is not tuple:
            raise pickle.UnpicklingError("numpy array with unexpected arguments refused")
        if len(shape) > min(_NUMPY_MAX_DIMS, limits.max_depth):
            raise LimitExceeded("max_depth", f"a numpy array of {len(shape)} dimensions")
        count = 1
        for dim in shape:  # a huge shape is refused before anything is made of it
            if type(dim) is not int or dim < 0:
                raise pickle.UnpicklingError("numpy array with a malformed shape refused")
            if dim > limits.max_copied:
                raise LimitExceeded("max_copied", f"a numpy array dimension of {dim} elements")
            count *= dim
            if count > limits.max_copied:
                raise LimitExceeded("max_copied", f"a numpy array of over {limits.max_copied} "
                                    "elements")
        if len(raw) != count * _NUMPY_CODES[dtype.code]:
            raise pickle.UnpicklingError(f"numpy array of {count} {dtype.code} items in "
                                         f"{len(raw)} bytes refused")
        budget.copy(count)
        budget.numpy_bytes(len(raw))
        found = NumpyValue(dtype.code, dtype.order, shape, memory, raw, scalar)
        return found if budget.numpy_describe else _numpy_built(found)

    def frombuffer(buffer: Any = None, dtype: Any = None, shape: Any = None,
                   order: Any = None, *extra: Any) -> NumpyValue:
        budget.numpy_used()
        if extra:
            raise pickle.UnpicklingError("numpy _frombuffer with unexpected arguments refused")
        return value(buffer, dtype, order, shape)

    def reconstruct(subtype: Any = None, shape: Any = None, typecode: Any = None,
                    *extra: Any) -> _NumpyArrayState:
        budget.numpy_used()
        if subtype is not _NumpyNdarray or type(shape) is not tuple or shape != (0,) \
                or type(typecode) is not bytes or typecode != b"b" or extra:
            raise pickle.UnpicklingError("numpy _reconstruct with unexpected arguments refused")
        budget.numpy_pending = True
        return budget.placeholder(_NumpyArrayState(value))

    def scalar(dtype: Any = None, raw: Any = None, *extra: Any) -> Any:
        # the common case (a list of them) without a NumpyValue, value()'s checks inlined: a call
        # here costs more than numpy's own
        if type(dtype) is _NumpyDType and type(raw) is bytes and not extra \
                and len(raw) == _NUMPY_CODES[dtype.code] and dtype.real is not None:
            budget.copied += 1
            budget.numpy_built += len(raw)
            if budget.copied <= max_copied and budget.numpy_built <= max_bytes:
                return make_scalar(dtype.real, raw)
        budget.numpy_used()
        if extra or type(raw) is not bytes:
            raise pickle.UnpicklingError("numpy scalar with unexpected arguments refused")
        return value(raw, dtype, "C", (), scalar=True)

    found: dict[tuple[str, str], Any] = {
        ("numpy", "dtype"): dtype, ("numpy", "ndarray"): _NumpyNdarray}
    for module in _NUMPY_MODULES:
        found[(f"{module}.numeric", "_frombuffer")] = frombuffer
        found[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        found[(f"{module}.multiarray", "scalar")] = scalar
    return found


class _NumpyNdarray:
    """``numpy.ndarray`` as ``_reconstruct``'s first argument: no subclass is accepted."""

    def __init__(self, *_: Any) -> None:
        raise pickle.UnpicklingError("numpy ndarray called directly refused")


def _numpy_finished(value: Any, describe: bool) -> Any:
    """``value`` with each array ``_reconstruct`` began replaced by the array its BUILD gave (a
    NumpyValue, or the numpy object when not ``describe``) and each dtype by numpy's. Placeholders
    are unhashable, so only list items, tuple items, dict values and deque items can hold one."""
    done: dict[int, Any] = {}

    def finish(obj: Any) -> Any:
        kind = type(obj)
        if kind is _NumpyArrayState:
            if obj.value is None:
                raise pickle.UnpicklingError("numpy array without its state refused")
            return obj.value if describe or type(obj.value) is not NumpyValue \
                else _numpy_built(obj.value)
        if kind is _NumpyDType:
            return obj if describe else _real_dtype(obj.code, obj.order)
        if kind not in _HOLDERS:
            return obj
        key = id(obj)
        if key in done:
            return done[key]
        done[key] = obj
        if kind is tuple:
            items = [finish(item) for item in obj]
            if any(new is not old for new, old in zip(items, obj, strict=True)):
                done[key] = tuple(items)
            return done[key]
        if isinstance(obj, dict):
            for name, item in obj.items():
                if type(item) in _HOLDERS_OR_PLACEHOLDERS:
                    obj[name] = finish(item)
            return obj
        if _HOLDERS_OR_PLACEHOLDERS.isdisjoint(map(type, obj)):  # a list of numbers
            return obj
        for at, item in enumerate(obj):  # list, deque
            if type(item) in _HOLDERS_OR_PLACEHOLDERS:
                obj[at] = finish(item)
        return obj

    return finish(value)


_PLACEHOLDERS = frozenset({_NumpyArrayState, _NumpyDType})
_HOLDERS = frozenset({list, tuple, dict, collections.deque, collections.OrderedDict,
                      collections.defaultdict, collections.Counter})
_HOLDERS_OR_PLACEHOLDERS = _HOLDERS | _PLACEHOLDERS


class _BoundedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, limits: Limits, numpy_describe: bool) -> None:
        super().__init__(io.BytesIO(data))
        self.budget = _Budget(limits, numpy_describe)
        self._found: dict[tuple[str, str], Any] | None = None  # made when first needed
        self.value: Any = None  # what load() returned

    def find_class(self, module: str, name: str) -> Any:
        if self._found is None:
            self._found = _constructors(self.budget)
        found = self._found.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"untrusted result refers to {module}.{name}; refused")
        return found

    def found(self, module: str, name: str) -> Any:
        """What ``module.name`` has resolved to in this load; None if nothing was resolved."""
        return None if self._found is None else self._found.get((module, name))


# --- runs of numpy scalars, a run at a time --------------------------------------------------
#
# A list of numpy scalars is a call of numpy's scalar(dtype, raw) an item after another, and the
# unpickler calling the constructor above for each costs twice numpy's own work. So on a master
# each run of calls alike the scan found (_CallsAlike) is rewritten before loading, in as many
# bytes (offsets and frames unchanged):
#
#   NONE BINPERSID callable_get args_get TUPLE2 REDUCE POP  padding
#   (NONE BINPERSID MEMOIZE MEMOIZE MEMOIZE) * calls
#
# The first BINPERSID gives the check (persistent_load hands out, in order, the entries of one
# list), called with the objects the run's calls would call and take: unless they are this
# load's numpy scalar constructor and a dtype the allow-list built, of the run's bytes' item
# size, it raises; else it charges the budget for the run as the constructor would a call at a
# time, and the run's scalars are handed out next, built by numpy from the run's bytes at once
# (as the constructor makes each). Each call pushes its scalar and makes its three memo entries
# (the indexes unchanged): the bytes' and the arguments' hold the scalar too, which is the same
# load because no get reads them (the scan sees every get after a run, and returns no run where
# one does). On any error the plain load decides: what this loads is what the plain load would.

_SCALAR_NAME = (f"{_NUMPY_MODULES[0]}.multiarray", "scalar")
_HANDED = b"NQ\x94\x94\x94"  # a call rewritten: its scalar handed out, memoized thrice


class _StartOver(Exception):
    """A run is not what its rewriting takes it for: the plain load decides."""


def _padding(size: int) -> bytes:
    """Opcodes of ``size`` bytes (not 1) that leave the stack and the memo as they were."""
    if size < 6:  # MARK, NONE..., POP_MARK
        return b"(" + b"N" * (size - 2) + b"1" if size else b""
    return b"B" + (size - 6).to_bytes(4, "little") + bytes(size - 6) + b"0"  # BINBYTES, POP


def _rewritten(data: bytes, runs: list[_CallsAlike]) -> tuple[bytes, list[_CallsAlike]]:
    """``data`` with each run that has room for its check rewritten; those runs."""
    pieces: list[Any] = []
    taken = []
    done = 0
    whole = memoryview(data)
    for run in runs:
        check = b"NQ" + run.callable_get + run.args_get + b"\x86R0"
        room = run.calls * (run.stride - len(_HANDED)) - len(check)
        if room < 0 or room == 1:
            continue
        # the bytes replaced are the calls the scan found there (a slip would rewrite others)
        for at, byte in [*enumerate(run.callable_get), (run.stride - 2, ord("R"))]:
            if data[run.start + at : run.end : run.stride] != bytes([byte]) * run.calls:
                raise _StartOver
        pieces += [whole[done : run.start], check, _padding(room), _HANDED * run.calls]
        done = run.end
        taken.append(run)
    pieces.append(whole[done:])
    return b"".join(pieces), taken


def _load_runs_at_a_time(data: bytes, limits: Limits,
                         runs: list[_CallsAlike]) -> _BoundedUnpickler | None:
    """The unpickler that loaded ``data`` with its runs rewritten (its value in ``value``); None
    if no run was long enough. Raises anything where the plain load must decide."""
    numpy = _numpy()
    rewritten, taken = _rewritten(data, runs)
    if not taken:
        return None
    unpickler = _BoundedUnpickler(rewritten, limits, numpy_describe=False)
    budget = unpickler.budget
    handed: list[Any] = []
    left = iter(taken)

    def check(make: Any, dtype: Any) -> None:
        run = next(left)
        if make is None or make is not unpickler.found(*_SCALAR_NAME) \
                or type(dtype) is not _NumpyDType or dtype.real is None \
                or _NUMPY_CODES[dtype.code] != run.size:
            raise _StartOver
        # what the constructor charges a call at a time, within the same limits
        copied, built = budget.copied + run.calls, budget.numpy_built + run.calls * run.size
        if copied > limits.max_copied or built > limits.max_bytes:
            raise _StartOver
        budget.copied, budget.numpy_built = copied, built
        # numpy scalars, as scalar() makes them: each from its bytes, in the original data
        handed.extend(numpy.ndarray((run.calls,), dtype.real, data, run.start + run.raw,
                                    (run.stride,)))
        handed.append(handed[0])  # itself, for the next run (by name: a cycle, as below)

    handed.append(check)
    hand = iter(handed)
    unpickler.persistent_load = functools.partial(next, hand)  # type: ignore[method-assign]
    try:
        unpickler.value = unpickler.load()
        # each check, each scalar taken once, in order: one check left, never called
        if next(left, None) is not None or next(hand, None) is not check \
                or next(hand, None) is not None:
            raise _StartOver
    finally:
        handed.clear()  # the check in it holds the unpickler: a cycle, freed only by the gc
    return unpickler


def loads(data: bytes, limits: Limits = DEFAULT_LIMITS, numpy_describe: bool = False) -> Any:
    """Unpickle plain data from an untrusted source, within ``limits``. numpy arrays and scalars
    come back as themselves, or as :class:`NumpyValue` with ``numpy_describe`` (without numpy)."""
    runs = scan(data, limits)
    # building leaves no garbage: pausing the cycle collector saves its passes over every
    # container built (a tenth of the time for a list of small dicts) and frees nothing later
    collecting = gc.isenabled()
    gc.disable()
    try:
        unpickler = None
        if runs and not numpy_describe:
            try:
                unpickler = _load_runs_at_a_time(data, limits, runs)
            except Exception:  # the plain load decides, and says why
                unpickler = None
        if unpickler is None:
            unpickler = _BoundedUnpickler(data, limits, numpy_describe)
            unpickler.value = unpickler.load()
        value, budget = unpickler.value, unpickler.budget
        del unpickler  # and its memo, which holds every placeholder made: none left, none in it
        if budget.numpy_seen and budget.placeholders_left():  # a dtype or a _reconstruct-ed
            value = _numpy_finished(value, numpy_describe)  # array may be in it
        return value
    except RecursionError:
        raise LimitExceeded("max_depth", "nested too deep to rebuild") from None
    except MemoryError:
        raise LimitExceeded("max_bytes", "out of memory rebuilding it") from None
    except (LimitExceeded, pickle.UnpicklingError):
        raise
    except Exception as exc:  # a malformed pickle makes the unpickler raise anything
        raise pickle.UnpicklingError(f"malformed result: {type(exc).__name__}: {exc}") from None
    finally:
        if collecting:
            gc.enable()


# --- canonical form, for comparing replicas --------------------------------------------------

_FLOAT = struct.Struct(">d")
_SEQUENCE_TAGS: dict[type, bytes] = {
    str: b"s", bytes: b"b", bytearray: b"a", list: b"l", tuple: b"t", collections.deque: b"q",
}
_UNORDERED_TAGS: dict[type, bytes] = {
    dict: b"d", collections.OrderedDict: b"o", collections.Counter: b"C",
    collections.defaultdict: b"D", set: b"S", frozenset: b"Z",
}


def canonical(value: Any, max_nodes: int = 5_000_000,
              max_depth: int = DEFAULT_LIMITS.max_depth) -> bytes:
    """A type-tagged byte string equal for equal plain data (sets in sorted order), never ``==``:
    ``1``, ``True``, ``1.0`` and ``Decimal(1)`` differ, a NaN equals the same NaN's bits; numpy
    values as loaded with ``numpy_describe``, equal in any byte or memory order.
    Raises LimitExceeded past ``max_nodes`` objects (shared ones counted each time)."""
    out = io.BytesIO()
    write = out.write
    nodes = 0
    # an explicit stack of (object, depth) or bytes to write: no recursion
    todo: list[Any] = [(value, 0)]
    while todo:
        item = todo.pop()
        if isinstance(item, bytes):
            write(item)
            continue
        obj, depth = item
        nodes += 1
        if nodes > max_nodes:
            raise LimitExceeded("max_weight", f"over {max_nodes} objects to compare")
        if depth > max_depth:
            raise LimitExceeded("max_depth", f"nested over {max_depth} deep")
        kind = type(obj)
        if obj is None or kind is bool:
            write(b"N" if obj is None else (b"T" if obj else b"F"))
        elif kind is int:
            text = format(obj, "x").encode()
            write(b"i%d:" % len(text) + text)
        elif kind is float:
            write(b"f" + _FLOAT.pack(obj))
        elif kind is complex:
            write(b"c" + _FLOAT.pack(obj.real) + _FLOAT.pack(obj.imag))
        elif kind in (str, bytes, bytearray):
            raw = obj.encode("utf-8", "surrogatepass") if kind is str else bytes(obj)
            tag = _SEQUENCE_TAGS[kind]
            write(tag + b"%d:" % len(raw) + raw)
        elif kind in (list, tuple, collections.deque):
            tag = _SEQUENCE_TAGS[kind]
            write(tag + b"%d:" % len(obj))
            todo.extend((child, depth + 1) for child in reversed(obj))
        elif kind in _UNORDERED_TAGS:
            # each member alone; sorted, since the order must not follow hashing (an
            # OrderedDict's order is part of its value)
            items = obj.items() if isinstance(obj, dict) else obj
            parts = [canonical(member, max_nodes - nodes, max_depth - depth) for member in items]
            if kind is not collections.OrderedDict:
                parts.sort()
            nodes += len(parts)
            write(_UNORDERED_TAGS[kind] + b"%d:" % len(parts) + b"".join(parts))
        elif kind is NumpyValue:
            raw = obj.canonical()
            write(b"n%d:" % len(raw) + raw)
        elif kind is _NumpyDType:  # numpy tells "<f8" from ">f8"
            write(b"y" + (obj.order + obj.code).encode() + b":")
        else:  # dates, decimals, fractions, ranges, slices: their type and exact text
            text = repr(obj).encode()
            write(b"r%d:" % len(text) + text)
    return out.getvalue()
