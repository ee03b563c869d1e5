"""The one task encoding and result record every interface shares.

A *task file* holds what a worker needs to run one task: a JSON header (readable without unpickling,
so a worker can refuse a task pickled by another Python before touching the payload) and a pickle
payload made with cloudpickle (the function by value, its inputs, dep_funcs, data files).

A *result record* is the worker's answer: a JSON header (ok or error, the remote exception's type,
message and traceback, stdout/stderr, timings, worker, Python version) and a pickle payload holding
the return value, or the exception object when it pickles. Results from untrusted workers (BOINC
volunteers) are decoded with ``trusted=False``: the payload then goes through a restricted unpickler
that rebuilds only plain data types and never imports or calls anything else.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from pymw_admin.wire import untrusted

TASK_MAGIC = b"PYMW-TASK 1\n"
RESULT_MAGIC = b"PYMW-RESULT 1\n"
PICKLE_PROTOCOL = 5


def python_minor() -> str:
    """This interpreter's version as ``"3.11"``: what must match between master and worker."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


class EncodingError(ValueError):
    """A task file or result record is malformed."""


@dataclass
class TaskHeader:
    task_id: str
    python: str
    kind: str  # "function" or "script"
    modules: list[str] = field(default_factory=list)
    data_files: list[str] = field(default_factory=list)
    name: str = ""  # the function's or script's name, for logs and status


@dataclass
class ResultRecord:
    task_id: str
    ok: bool
    python: str
    worker: str = ""
    started: float = 0.0
    finished: float = 0.0
    stdout: str = ""
    stderr: str = ""
    error_type: str = ""
    error_message: str = ""
    error_traceback: str = ""
    error_kind: str = ""  # "" for a task that raised; "version" for a Python mismatch
    payload: bytes = b""

    def header(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "payload"}


# --- encoding a task ---------------------------------------------------------------------------

_STDLIB_DIRS = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_SITE_DIRS = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
)


def _travels_by_value(module_name: str) -> bool:
    """True for a user's own module (next to the master script, say), which a worker lacks.

    Installed packages and the standard library travel by reference: the worker imports them.
    """
    if module_name in ("__main__", "builtins") or module_name.startswith("pymw_admin"):
        return False
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module is None or path is None:
        return False
    resolved = str(Path(path).resolve())
    return not resolved.startswith(_STDLIB_DIRS + _SITE_DIRS)


def pickle_function(func: Callable[..., Any]) -> bytes:
    """cloudpickle a function by value, with its module too when the worker cannot import it."""
    module_name = getattr(func, "__module__", None) or "__main__"
    root = module_name.split(".")[0]
    if _travels_by_value(module_name):
        module = sys.modules[root] if root in sys.modules else sys.modules[module_name]
        cloudpickle.register_pickle_by_value(module)
        try:
            return cloudpickle.dumps(func, protocol=PICKLE_PROTOCOL)
        finally:
            cloudpickle.unregister_pickle_by_value(module)
    return cloudpickle.dumps(func, protocol=PICKLE_PROTOCOL)


def read_data_files(paths: Iterable[str | os.PathLike[str]]) -> dict[str, bytes]:
    """Read data files into ``{base name: contents}``; they appear under that name on the worker."""
    files: dict[str, bytes] = {}
    for path in paths:
        p = Path(path)
        try:
            files[p.name] = p.read_bytes()
        except OSError as exc:
            raise EncodingError(f"cannot read data file {p}: {exc.strerror or exc}") from None
    return files


def encode_task(
    task_id: str,
    executable: Callable[..., Any] | str | os.PathLike[str],
    input_data: Sequence[Any] = (),
    modules: Sequence[str] = (),
    dep_funcs: Sequence[Callable[..., Any]] = (),
    data_files: Mapping[str, bytes] | None = None,
    *,
    function_blob: bytes | None = None,
) -> bytes:
    """Make a task file. ``function_blob`` lets a caller reuse one pickled function (map)."""
    files = dict(data_files or {})
    if callable(executable):
        kind = "function"
        name = getattr(executable, "__qualname__", getattr(executable, "__name__", "function"))
        body = function_blob if function_blob is not None else pickle_function(executable)
        script_name = ""
    else:
        kind = "script"
        script = Path(executable)
        try:
            body = script.read_bytes()
        except OSError as exc:
            raise EncodingError(f"cannot read script {script}: {exc.strerror or exc}") from None
        name = script_name = script.name
    header = TaskHeader(
        task_id=task_id,
        python=python_minor(),
        kind=kind,
        modules=list(modules),
        data_files=sorted(files),
        name=name,
    )
    payload = pickle.dumps(
        {
            "body": body,
            "script_name": script_name,
            "args": cloudpickle.dumps(tuple(input_data), protocol=PICKLE_PROTOCOL),
            "deps": [pickle_function(f) for f in dep_funcs],
            "files": files,
        },
        protocol=PICKLE_PROTOCOL,
    )
    return TASK_MAGIC + json.dumps(header.__dict__).encode() + b"\n" + payload


def read_task_header(blob: bytes) -> tuple[TaskHeader, memoryview]:
    """Split a task file into its header and its (still pickled) payload."""
    if not blob.startswith(TASK_MAGIC):
        raise EncodingError("not a pymw task file")
    try:
        end = blob.index(b"\n", len(TASK_MAGIC))
        header = TaskHeader(**_flat_json_object(blob[len(TASK_MAGIC) : end], "task header"))
    except (ValueError, TypeError) as exc:
        raise EncodingError(f"malformed task header: {exc}") from None
    return header, memoryview(blob)[end + 1 :]


# --- result records ----------------------------------------------------------------------------


def encode_result(record: ResultRecord) -> bytes:
    return RESULT_MAGIC + json.dumps(record.header()).encode() + b"\n" + record.payload


_HEADER_TYPES: dict[str, type | tuple[type, ...]] = {
    "task_id": str, "ok": bool, "python": str, "worker": str, "started": (int, float),
    "finished": (int, float), "stdout": str, "stderr": str, "error_type": str,
    "error_message": str, "error_traceback": str, "error_kind": str,
}


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def _flat_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """A JSON object whose values are plain scalars or lists of strings: a header never nests, so
    nesting is refused before parsing (json.loads would recurse once per level)."""
    depth = 0
    brackets = raw.count(b"[") + raw.count(b"{")
    # strings taken out, what is left is small: structure and numbers
    for byte in _JSON_STRING.sub(b'""', raw) if brackets > 2 else b"":
        if byte in (0x5B, 0x7B):
            depth += 1
            if depth > 2:
                raise EncodingError(f"malformed {what}: nested deeper than a header may be")
        elif byte in (0x5D, 0x7D):
            depth -= 1
    fields = json.loads(raw)
    if not isinstance(fields, dict):
        raise EncodingError(f"malformed {what}: not a JSON object")
    return fields


def decode_result_header(blob: bytes) -> ResultRecord:
    """Parse a result record without touching its pickle payload (safe on any input)."""
    if not blob.startswith(RESULT_MAGIC):
        raise EncodingError("not a pymw result record")
    try:
        end = blob.index(b"\n", len(RESULT_MAGIC))
        fields = _flat_json_object(blob[len(RESULT_MAGIC) : end], "result record")
        for name, value in fields.items():
            wanted = _HEADER_TYPES.get(name)
            if wanted is None or not isinstance(value, wanted) or (
                    wanted is not bool and isinstance(value, bool)):
                raise EncodingError(f"malformed result record: bad field {name[:40]!r}")
        record = ResultRecord(**fields)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, EncodingError):
            raise
        raise EncodingError(f"malformed result record: {exc}") from None
    record.payload = blob[end + 1 :]
    return record


def loads_untrusted(data: bytes, limits: untrusted.Limits = untrusted.DEFAULT_LIMITS) -> Any:
    """Unpickle plain data (numbers, strings, containers, dates, decimals) and nothing else,
    within time, memory and nesting limits; past one, a LimitExceeded that names it."""
    return untrusted.loads(data, limits)


def decode_value(record: ResultRecord, *, trusted: bool) -> Any:
    """The value a successful task returned."""
    if not record.payload:
        return None
    if trusted:
        return pickle.loads(record.payload)
    return loads_untrusted(record.payload)


def decode_exception(record: ResultRecord, *, trusted: bool) -> BaseException | None:
    """The exception a failed task raised, rebuilt when it can be (trusted interfaces only)."""
    if not trusted or not record.payload:
        return None
    try:
        exc = pickle.loads(record.payload)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None
