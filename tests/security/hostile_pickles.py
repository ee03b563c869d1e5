"""Hostile result payloads, built opcode by opcode (no honest pickler makes them).

Each case is what a volunteer could upload in place of a result; ``LIMIT`` names the limit the
bounded decoder must report for it (None: refused as not plain data or malformed).
"""

from __future__ import annotations

import pickle
import pickletools
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


# numpy's forms (untrusted.py, "numpy values") with other arguments than numpy writes

_NUMERIC, _MULTIARRAY = "numpy._core.numeric", "numpy._core.multiarray"
_PLAIN_DTYPE_STATE = (3, "<", None, None, None, -1, -1, 0)


def _plain(value: object) -> bytes:
    """The opcodes that push ``value`` (plain data), without PROTO, frames, memo or STOP."""
    return pickletools.optimize(pickle.dumps(value, protocol=3))[2:-1]


def _dtype(code: str = "f8", state: object = _PLAIN_DTYPE_STATE) -> bytes:
    return (_global("numpy", "dtype") + _plain((code, False, True)) + b"R"
            + _plain(state) + b"b")


def _frombuffer(raw: bytes = bytes(24), dtype: bytes | None = None, shape: object = (3,),
                order: object = "C", extra: bytes = b"") -> bytes:
    """_frombuffer(bytearray(raw), dtype, shape, order, *extra)."""
    return _proto(_global(_NUMERIC, "_frombuffer") + b"(\x96" + struct.pack("<Q", len(raw)) + raw
                  + (_dtype() if dtype is None else dtype) + _plain(shape) + _plain(order)
                  + extra + b"tR")


def _reconstruct(subtype: bytes, shape: object = (0,), state: bytes | None = None) -> bytes:
    build = b"" if state is None else state + b"b"
    return _proto(_global(_MULTIARRAY, "_reconstruct") + subtype + _plain(shape) + _plain(b"b")
                  + b"\x87R" + build)


def numpy_object_dtype() -> bytes:
    return _frombuffer(dtype=_dtype("O"))


def numpy_dtype_off_the_list() -> bytes:
    return _frombuffer(bytes(8), dtype=_dtype("M8"), shape=(1,))  # datetime64: not numbers


def numpy_dtype_with_fields() -> bytes:
    state = (3, "|", None, ("a",), {"a": (b"", 0)}, 8, 1, 0x3F)  # NPY_ITEM_HASOBJECT and more
    return _frombuffer(dtype=_dtype("f8", state))


def numpy_shape_bytes_mismatch() -> bytes:
    return _frombuffer(bytes(16), shape=(3,))


def numpy_huge_shape() -> bytes:
    """8 bytes declared as 10**12 float64s: refused before numpy sees it."""
    return _frombuffer(bytes(8), shape=(10**12,))


def numpy_huge_empty_shape() -> bytes:
    return _frombuffer(b"", shape=(0, 10**15))


def numpy_negative_dim() -> bytes:
    return _frombuffer(bytes(24), shape=(-1, -3))


def numpy_too_many_dims() -> bytes:
    return _frombuffer(bytes(8), shape=(1,) * 65)


def numpy_frombuffer_extra_argument() -> bytes:
    return _frombuffer(extra=_plain(0))


def numpy_frombuffer_of_a_count() -> bytes:
    """_frombuffer(10**9, dtype, ...): a count where the bytes go."""
    return _proto(_global(_NUMERIC, "_frombuffer") + b"(" + _plain(10**9) + _dtype()
                  + _plain((10**9 // 8,)) + _plain("C") + b"tR")


def numpy_frombuffer_without_dtype() -> bytes:
    return _frombuffer(dtype=_plain("f8"))


def numpy_reconstruct_of_a_shape() -> bytes:
    """_reconstruct(ndarray, (10**9,), b"b"): numpy would allocate a gigabyte."""
    return _reconstruct(_global("numpy", "ndarray"), shape=(10**9,))


def numpy_reconstruct_subclass() -> bytes:
    return _reconstruct(_global("numpy", "matrix"))


def numpy_reconstruct_other_subtype() -> bytes:
    return _reconstruct(_global("builtins", "list"))


def numpy_reconstruct_huge_state() -> bytes:
    state = b"(" + _plain(1) + _plain((10**6, 10**6)) + _dtype() + _plain(False) + _plain(
        bytes(8)) + b"t"
    return _reconstruct(_global("numpy", "ndarray"), state=state)


def numpy_reconstruct_object_state() -> bytes:
    """An object array's state: a list of objects where the bytes go."""
    state = b"(" + _plain(1) + _plain((3,)) + _dtype() + _plain(False) + _plain([1, 2, 3]) + b"t"
    return _reconstruct(_global("numpy", "ndarray"), state=state)


def numpy_reconstruct_without_state() -> bytes:
    return _reconstruct(_global("numpy", "ndarray"))


def numpy_ndarray_called() -> bytes:
    return _proto(_global("numpy", "ndarray") + _plain((10**9,)) + b"R")


def numpy_scalar_wrong_size() -> bytes:
    return _proto(_global(_MULTIARRAY, "scalar") + _dtype() + _plain(bytes(4)) + b"\x86R")


def numpy_scalar_of_object() -> bytes:
    return _proto(_global(_MULTIARRAY, "scalar") + _dtype("O") + _plain([1]) + b"\x86R")


def numpy_state_given_to_an_array() -> bytes:
    """A checked array given a state that declares a gigabyte: BUILD on what _frombuffer made."""
    state = b"(" + _plain(1) + _plain((10**9,)) + _dtype() + _plain(False) + _plain(b"") + b"t"
    return _frombuffer()[:-1] + state + b"b."


def numpy_shared_buffer(arrays: int = 400) -> bytes:
    """One memoized megabyte of bytes given to many arrays (each copies it)."""
    raw = b"B" + struct.pack("<I", 2**20) + bytes(2**20) + b"\x94"
    first = _global(_NUMERIC, "_frombuffer") + b"\x94(" + raw + _dtype("u1", (3, "|", None,
        None, None, -1, -1, 0)) + b"\x94" + _plain((2**20,)) + _plain("C") + b"tR"
    again = b"h\x00(h\x01h\x02" + _plain((2**20,)) + _plain("C") + b"tR"
    return _proto(b"](" + first + again * arrays + b"e")


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
    Case("numpy_object_dtype", numpy_object_dtype, None),
    Case("numpy_dtype_off_the_list", numpy_dtype_off_the_list, None),
    Case("numpy_dtype_with_fields", numpy_dtype_with_fields, None),
    Case("numpy_shape_bytes_mismatch", numpy_shape_bytes_mismatch, None),
    Case("numpy_huge_shape", numpy_huge_shape, "max_copied"),
    Case("numpy_huge_empty_shape", numpy_huge_empty_shape, "max_copied"),
    Case("numpy_negative_dim", numpy_negative_dim, None),
    Case("numpy_too_many_dims", numpy_too_many_dims, "max_depth"),
    Case("numpy_frombuffer_extra_argument", numpy_frombuffer_extra_argument, None),
    Case("numpy_frombuffer_of_a_count", numpy_frombuffer_of_a_count, None),
    Case("numpy_frombuffer_without_dtype", numpy_frombuffer_without_dtype, None),
    Case("numpy_reconstruct_of_a_shape", numpy_reconstruct_of_a_shape, None),
    Case("numpy_reconstruct_subclass", numpy_reconstruct_subclass, None),
    Case("numpy_reconstruct_other_subtype", numpy_reconstruct_other_subtype, None),
    Case("numpy_reconstruct_huge_state", numpy_reconstruct_huge_state, "max_copied"),
    Case("numpy_reconstruct_object_state", numpy_reconstruct_object_state, None),
    Case("numpy_reconstruct_without_state", numpy_reconstruct_without_state, None),
    Case("numpy_ndarray_called", numpy_ndarray_called, None),
    Case("numpy_scalar_wrong_size", numpy_scalar_wrong_size, None),
    Case("numpy_scalar_of_object", numpy_scalar_of_object, None),
    Case("numpy_state_given_to_an_array", numpy_state_given_to_an_array, None),
    Case("numpy_shared_buffer", numpy_shared_buffer, "max_copied"),
    Case("truncated", truncated, None),
]
