"""Hostile result payloads, built opcode by opcode (no honest pickler makes them).

Each case is what a volunteer could upload in place of a result; ``LIMIT`` names the limit the
bounded decoder must report for it (None: refused as not plain data or malformed).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass


def _proto(body: bytes) -> bytes:
    return b"\x80\x05" + body + b"."


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _get(index: int) -> bytes:
    return b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)


def memo_dag(depth: int = 64) -> bytes:
    """M1: t0 = (), t(k+1) = (t(k), t(k)) through the memo, in a frozenset: ~100 bytes whose
    hashing takes 2**depth steps."""
    body = b")\x94"
    for k in range(depth):
        body += _get(k) + _get(k) + b"\x86\x94"
    return _proto(body + b"(" + _get(depth) + b"\x91")


def deep_tuple_in_frozenset(depth: int = 1_000_000) -> bytes:
    """M2: 1 MB of nested 1-tuples inside a frozenset: hashing recurses in C (SIGSEGV)."""
    return _proto(b"()" + b"\x85" * depth + b"\x91")


def deep_tuple_as_dict_key(depth: int = 1_000_000) -> bytes:
    return _proto(b"}(" + b")" + b"\x85" * depth + b"Nu")


def list_of_range() -> bytes:
    """M3: 48 bytes -> 397 MiB: list(range(10**7))."""
    return _proto(_global("builtins", "list") + _global("builtins", "range")
                  + b"J\x80\x96\x98\x00\x85R\x85R")


def bytearray_of_count() -> bytes:
    """M3: 33 bytes -> 968 MiB: bytearray(10**9)."""
    return _proto(_global("builtins", "bytearray") + b"J\x00\xca\x9a\x3b\x85R")


def fraction_exponent() -> bytes:
    """M3: 39 bytes -> seconds of CPU: Fraction("1e10000000")."""
    return _proto(_global("fractions", "Fraction") + b"\x8c\x0a1e10000000\x85R")


def fraction_newobj() -> bytes:
    """The same through NEWOBJ (cls.__new__), which skips a wrapper that is a plain function."""
    return _proto(_global("fractions", "Fraction") + b"\x8c\x0a1e10000000\x85\x81")


def set_of_frozenset_reduce() -> bytes:
    """The memo DAG again, but hashed by the frozenset constructor (REDUCE), not an opcode."""
    body = b")\x94"
    for k in range(64):
        body += _get(k) + _get(k) + b"\x86\x94"
    return _proto(body + _global("builtins", "frozenset") + b"]" + _get(64) + b"a\x85R")


def huge_memo_index() -> bytes:
    """A memo slot 2**32-1: the unpickler would grow its memo table to it."""
    return _proto(b"Nr\xff\xff\xff\xff")


def colliding_big_ints(count: int = 20_000) -> bytes:
    """Ints equal modulo 2**61-1 hash alike: a set of them costs count**2 comparisons."""
    prime = 2**61 - 1
    items = b"".join(b"\x8a\x0a" + (i * prime).to_bytes(10, "little", signed=True)
                     for i in range(1, count))
    return _proto(b"\x8f(" + items + b"\x90")


def colliding_text_ints(count: int = 20_000) -> bytes:
    """The same big ints spelled as text (INT), which the scan once took for small ones."""
    prime = 2**61 - 1
    items = b"".join(b"I%d\n" % (i * prime) for i in range(1, count))
    return _proto(b"\x8f(" + items + b"\x90")


def heavy_key_in_batch(levels: int = 18, dicts: int = 1000) -> bytes:
    """A list's batch of small dicts, each keyed by one memo-shared tuple that visits 2**18
    objects to hash: each dict alone is within the limits, the batch is not. A batch is skipped
    by a regex when its memo gets cannot fetch anything heavy; this one can."""
    body = b")\x94"
    for k in range(levels):
        body += _get(k) + _get(k) + b"\x86\x94"
    record = b"}\x94(" + _get(levels) + b"Nu"
    return _proto(body + b"0]\x94(" + record * dicts + b"e")


def memo_dag_after_batch(depth: int = 64) -> bytes:
    """M1 after a skipped batch of memoized strings: the scan no longer knows which memo index
    holds what (the batch could have memoized any number of items)."""
    strings = b"\x8c\x01a\x94" * 5  # memo 1-5; the list is 0
    body = b"]\x94(" + strings + b"e0)\x94"  # () is memo 6
    for k in range(1, depth + 1):
        body += _get(5 + k) + _get(5 + k) + b"\x86\x94"
    return _proto(body + b"(" + _get(6 + depth) + b"\x91")


def memo_dag_after_string_run(strings: int = 4999, depth: int = 64) -> bytes:
    """M1 from a get into a long run of memoized strings of mixed lengths, which the scan takes
    by regex, four to a step."""
    lengths = [1 + i * 7919 % 5 for i in range(strings)]
    body = b"]\x94(" + b"".join(b"\x8c" + bytes([n]) + b"s" * n + b"\x94" for n in lengths)
    body += b"e0" + _get(strings) + b"\x85\x94"  # (last string,) is memo strings + 1
    for k in range(strings + 1, strings + depth + 1):
        body += _get(k) + _get(k) + b"\x86\x94"
    return _proto(body + b"(" + _get(strings + depth + 1) + b"\x91")


def memo_dag_in_batch(depth: int = 64) -> bytes:
    """M1 inside a list's batch: tuples of memo gets, the last one a dict's key. A batch holds
    tuples of plain values only, or the scan could not skip it without counting."""
    body = b"]\x94(K\x01\x85\x94"  # the list is memo 0, (1,) memo 1
    for k in range(1, depth + 1):
        body += _get(k) + _get(k) + b"\x86\x94"
    return _proto(body + b"}\x94(" + _get(depth + 1) + b"Nue")


def deep_tuple_key_in_batch(depth: int = 1_000_000) -> bytes:
    """M2 as a dict's key inside a list's batch of plain dicts."""
    return _proto(b"]\x94(}\x94(K\x01" + b"\x85" * depth + b"Nue")


def deep_key_after_alike_records(alike: int = 600, depth: int = 1_000_000) -> bytes:
    """M2 after records laid out alike, which the scan takes as copies of the first: the copies
    end where the layout changes, and the deep key is scanned opcode by opcode."""
    record = b"}\x94(K\x01G" + bytes(8) + b"\x8c\x01aNu"
    deep = b"}\x94(K\x01" + b"\x85" * depth + b"Nu"
    return _proto(b"]\x94(" + record * alike + deep + record + b"e")


def colliding_keys_in_batch(count: int = 20_000) -> bytes:
    """Colliding big ints as the keys of a dict inside a list's batch."""
    prime = 2**61 - 1
    items = b"".join(b"\x8a\x0a" + (i * prime).to_bytes(10, "little", signed=True) + b"N"
                     for i in range(1, count))
    return _proto(b"]\x94(}\x94(" + items + b"ue")


def code_execution() -> bytes:
    return _proto(_global("os", "system") + b"\x8c\x04true\x85R")


def truncated() -> bytes:
    return b"\x80\x05\x8c\xffabc"


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    limit: str | None  # the Limits field the error names; None: refused otherwise


CASES = [
    Case("memo_dag", memo_dag, "max_weight"),
    Case("deep_tuple_in_frozenset", deep_tuple_in_frozenset, "max_depth"),
    Case("deep_tuple_as_dict_key", deep_tuple_as_dict_key, "max_depth"),
    Case("list_of_range", list_of_range, "max_copied"),
    Case("bytearray_of_count", bytearray_of_count, "max_copied"),
    Case("fraction_exponent", fraction_exponent, "max_text"),
    Case("fraction_newobj", fraction_newobj, None),
    Case("set_of_frozenset_reduce", set_of_frozenset_reduce, "max_weight"),
    Case("huge_memo_index", huge_memo_index, "max_bytes"),
    Case("colliding_big_ints", colliding_big_ints, "max_collidable"),
    Case("colliding_text_ints", colliding_text_ints, "max_collidable"),
    Case("heavy_key_in_batch", heavy_key_in_batch, "max_hash_work"),
    Case("memo_dag_after_batch", memo_dag_after_batch, "max_weight"),
    Case("memo_dag_after_string_run", memo_dag_after_string_run, "max_weight"),
    Case("memo_dag_in_batch", memo_dag_in_batch, "max_weight"),
    Case("deep_tuple_key_in_batch", deep_tuple_key_in_batch, "max_depth"),
    Case("deep_key_after_alike_records", deep_key_after_alike_records, "max_depth"),
    Case("colliding_keys_in_batch", colliding_keys_in_batch, "max_collidable"),
    Case("code_execution", code_execution, None),
    Case("truncated", truncated, None),
]
