"""The one task encoding and result record every interface shares.

A *task file* holds what a worker needs to run one task: a JSON header (readable without unpickling,
so a worker can refuse a task pickled by another Python before touching the payload) and a pickle
payload made with cloudpickle (the function by value, its inputs, dep_funcs, data files).

A task file may refer to *shared blobs*: large objects pickled once, named by the sha256 of their
bytes, sent once per worker instead of once per task (docs/architecture.md, "Shared blobs"). Inside
the payload they are pickle persistent ids; the header's ``shared`` lists their digests, so an
interface can stage them before the task without unpickling anything. A large data file may be
one too: the header's ``file_digests`` names its blob, whose bytes the worker writes into the task's
directory.

A *result record* is the worker's answer: a JSON header (ok or error, the remote exception's type,
message and traceback, stdout/stderr, timings, worker, Python version) and a pickle payload holding
the return value, or the exception object when it pickles. Results from untrusted workers (BOINC
volunteers) are decoded with ``trusted=False``: the payload then goes through a restricted unpickler
that rebuilds only plain data types and never imports or calls anything else.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import re
import sys
import sysconfig
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cloudpickle

if TYPE_CHECKING:
    from pymw_admin.wire import untrusted


TASK_MAGIC = b"PYMW-TASK 1\n"
RESULT_MAGIC = b"PYMW-RESULT 1\n"
PICKLE_PROTOCOL = 5
# an object a function reaches whose pickle is this big is shared, and so is a data file this big
SHARE_THRESHOLD = 256 * 1024
SHARED_FILE_PREFIX = "pymw_shared_"  # a shared blob staged as a file: pymw_shared_<digest>
_SHARED_TAG = "pymw-shared"


def python_minor() -> str:
    """This interpreter's version as ``"3.11"``: what must match between master and worker."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def python_mismatch(task_python: str) -> str:
    """Why this interpreter must not unpickle a task pickled by Python ``task_python`` ("" when
    it may): a function pickled by one minor version can crash another. The one check every
    worker (plain or bundled) makes before unpickling anything."""
    if task_python == python_minor():
        return ""
    return (f"task was pickled by Python {task_python} but this worker runs Python "
            f"{python_minor()}; use a worker (or bundle) built for Python {task_python}")


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
    shared: list[str] = field(default_factory=list)  # digests of the shared blobs it refers to
    # for each of data_files, the digest of its shared blob, or "" when its bytes are in the
    # payload (empty: all are; then absent from the header, which older workers read unchanged)
    file_digests: list[str] = field(default_factory=list)


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


def digest_of(blob: bytes | memoryview) -> str:
    """A shared blob's name: the sha256 of its bytes (same content, same name, anywhere)."""
    return hashlib.sha256(blob).hexdigest()


class Shared:
    """An object pickled once and sent once per worker (``Master.broadcast``).

    Pass it to tasks as an argument or close over it: inside a task it arrives as the object
    itself. On the master, ``value`` is the object.
    """

    __slots__ = ("blob", "digest", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.blob = cloudpickle.dumps(value, protocol=PICKLE_PROTOCOL)
        self.digest = digest_of(self.blob)

    def __repr__(self) -> str:
        return f"<Shared {self.digest[:12]} {len(self.blob)} bytes>"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # a reference by digest; the task's blobs are collected as it is pickled (no per-object
        # callback: arguments of a chunk of thousands of calls pickle at C speed)
        sink = getattr(_pickling, "sink", None)
        if sink is not None:
            sink[self.digest] = self.blob
        return (_shared_object, (self.digest,))


_pickling = threading.local()  # .sink: the blobs the task being pickled refers to
_unpickling = threading.local()  # .resolve: digest -> object, for the task being unpickled


def _shared_object(digest: str) -> Any:
    """What a Shared handle unpickles to on the worker: the object itself."""
    resolve = getattr(_unpickling, "resolve", None)
    if resolve is None:
        raise EncodingError(f"shared object {digest[:12]} outside a task")
    return resolve(digest, False)


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _may_be_large(obj: object) -> bool:
    """Cheap first look: could this object's pickle reach SHARE_THRESHOLD?"""
    try:
        return _looks_large(obj)
    except Exception:  # an object whose attributes misbehave: pickle it as it comes
        return False


def _looks_large(obj: object) -> bool:
    kind = type(obj)
    if kind in (bytes, bytearray, str):
        return len(obj) >= SHARE_THRESHOLD  # type: ignore[arg-type]
    if kind in _CONTAINERS:
        return len(obj) >= 1024  # type: ignore[arg-type]
    nbytes = getattr(obj, "nbytes", None)  # array.array via buffer, numpy arrays
    if isinstance(nbytes, int):
        return nbytes >= SHARE_THRESHOLD
    if kind is memoryview:
        return obj.nbytes >= SHARE_THRESHOLD  # type: ignore[attr-defined]
    itemsize = getattr(obj, "itemsize", None)
    if isinstance(itemsize, int) and hasattr(obj, "buffer_info"):  # array.array
        return itemsize * len(obj) >= SHARE_THRESHOLD  # type: ignore[arg-type]
    return False


SEND_AHEAD_BYTES = 4 << 20  # a blob this big goes out to the workers while it is hashed


class BlobStaging(Protocol):
    """What the pickler asks about a blob before hashing it (the master answers)."""

    def known_digest(self, blob: bytes) -> str | None:
        """The digest of this very object when it is held already (bytes never change)."""

    def send_ahead(self, blob: bytes) -> Callable[[str | None], None]:
        """Start sending ``blob``; the result is called with its digest once hashed."""


class _PathFreePickler(cloudpickle.Pickler):
    """cloudpickle whose functions sent by value carry no path of the master."""

    def _function_getnewargs(self, func: Any) -> Any:
        args = super()._function_getnewargs(func)
        _strip_master_paths(args[1])  # the module attributes the function takes along
        return args

    def _dynamic_function_reduce(self, func: Any) -> Any:
        reduced = super()._dynamic_function_reduce(func)
        state = reduced[2]
        slots = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if isinstance(slots, dict) and isinstance(slots.get("__globals__"), dict):
            _strip_master_paths(slots["__globals__"])  # the globals it reads (a copy)
        return reduced


def _strip_master_paths(namespace: dict[str, Any]) -> None:
    """A module's ``__file__`` and ``__path__`` as a function sent by value takes them: a path
    on the master means nothing on a worker, and would give one script's same task another
    digest in another directory (each `pymw-admin run` is one), so no re-run would find its
    results. The file's name is kept."""
    where = namespace.get("__file__")
    if isinstance(where, str) and os.path.isabs(where):
        namespace["__file__"] = os.path.basename(where)
    paths = namespace.get("__path__")
    if isinstance(paths, list) and any(isinstance(p, str) and os.path.isabs(p) for p in paths):
        namespace["__path__"] = [os.path.basename(p) if isinstance(p, str) else p
                                 for p in paths]


class _SharingPickler(_PathFreePickler):
    """cloudpickle that leaves large objects (and Shared handles) out, as persistent ids."""

    def __init__(self, file: io.BytesIO, shared: dict[str, bytes], extract: bool,
                 staging: BlobStaging | None = None,
                 codes: list[types.CodeType] | None = None) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._shared = shared
        self._extract = extract
        self._staging = staging
        self._codes = codes

    def reducer_override(self, obj: Any) -> Any:
        # code sent by value reaches the worker as "<dynamic-code>": its caller keeps where it
        # came from, to name the file in a remote traceback
        if self._codes is not None and type(obj) is types.CodeType:
            self._codes.append(obj)
        return super().reducer_override(obj)

    def _digest(self, blob: bytes) -> str:
        """The blob's digest; a large one starts on its way to the workers while it is hashed."""
        if self._staging is None:
            return digest_of(blob)
        known = self._staging.known_digest(blob)
        if known is not None:
            return known
        if len(blob) < SEND_AHEAD_BYTES:
            return digest_of(blob)
        named = self._staging.send_ahead(blob)
        digest = None
        try:
            digest = digest_of(blob)
        finally:
            named(digest)
        return digest

    def persistent_id(self, obj: object) -> tuple[str, str, bool] | None:
        if type(obj) is Shared:
            self._shared[obj.digest] = obj.blob
            return (_SHARED_TAG, obj.digest, False)
        if not self._extract or not _may_be_large(obj):
            return None
        if type(obj) is bytes:  # sent as it is: no pickled copy of a big bytes object
            digest = self._digest(obj)
            self._shared[digest] = obj
            return (_SHARED_TAG, digest, True)
        try:
            blob = cloudpickle.dumps(obj, protocol=PICKLE_PROTOCOL)
        except Exception:
            return None  # the main pickle says what is wrong with it
        if len(blob) < SHARE_THRESHOLD:
            return None
        digest = self._digest(blob)
        self._shared[digest] = blob
        return (_SHARED_TAG, digest, False)


def _dumps_sharing(obj: object, shared: dict[str, bytes] | None, extract: bool,
                   staging: BlobStaging | None = None,
                   codes: list[types.CodeType] | None = None) -> bytes:
    out = io.BytesIO()
    if shared is None and codes is None:
        _PathFreePickler(out, protocol=PICKLE_PROTOCOL).dump(obj)
        return out.getvalue()
    _SharingPickler(out, {} if shared is None else shared, extract and shared is not None,
                    staging, codes).dump(obj)
    return out.getvalue()


def pickle_function(func: Callable[..., Any], shared: dict[str, bytes] | None = None,
                    staging: BlobStaging | None = None,
                    codes: list[types.CodeType] | None = None) -> bytes:
    """cloudpickle a function by value, with its module too when the worker cannot import it.

    With ``shared`` (a dict to fill), large objects the function reaches (globals it reads,
    closure cells) are left out as shared blobs ``{digest: blob}``; ``staging`` names the blobs
    the caller holds already and sends large new ones ahead while they are hashed. ``codes``
    (a list to fill) gets the code objects that travel by value.
    """
    module_name = getattr(func, "__module__", None) or "__main__"
    root = module_name.split(".")[0]
    if _travels_by_value(module_name):
        module = sys.modules[root] if root in sys.modules else sys.modules[module_name]
        cloudpickle.register_pickle_by_value(module)
        try:
            return _dumps_sharing(func, shared, extract=True, staging=staging, codes=codes)
        finally:
            cloudpickle.unregister_pickle_by_value(module)
    return _dumps_sharing(func, shared, extract=True, staging=staging, codes=codes)


_PLAIN_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})


def pickle_arguments(args: object, shared: dict[str, bytes] | None = None) -> bytes:
    """cloudpickle a task's arguments; Shared handles among them become references (their
    blobs go into ``shared``)."""
    if type(args) is tuple and len(args) <= 8 and all(type(a) in _PLAIN_SCALARS for a in args):
        # the usual map(f, numbers): nothing cloudpickle would treat differently, at C speed
        return pickle.dumps(args, protocol=PICKLE_PROTOCOL)
    _pickling.sink = shared
    try:
        return cloudpickle.dumps(args, protocol=PICKLE_PROTOCOL)
    finally:
        _pickling.sink = None


def check_data_file_name(name: object) -> str:
    """A data file's name is a plain base name: it lands in the task's directory and nowhere
    else (``../x`` or ``/etc/x`` in a task file would write outside it)."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name
            or "\\" in name or "\0" in name or len(name) > 255):
        raise EncodingError(f"invalid data file name {name!r}: a plain file name is needed")
    return name


def read_data_files(paths: Iterable[str | os.PathLike[str]]) -> dict[str, bytes]:
    """Read data files into ``{base name: contents}``; they appear under that name on the worker."""
    files: dict[str, bytes] = {}
    for path in paths:
        p = Path(path)
        if p.name in files:
            raise EncodingError(
                f"two data files are named {p.name!r}: each appears in the task's directory "
                "under its base name, so give them different names"
            )
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
    **options: Any,
) -> bytes:
    """Make a task file (``encode_task_digested`` without the digest)."""
    return encode_task_digested(task_id, executable, input_data, modules, dep_funcs, data_files,
                                **options)[0]


DIGEST_VERSION = b"pymw-task-digest 1\n"  # changes whenever what a digest covers changes


# the last data files hashed and their digests: the tasks of a map share the same bytes objects
_last_files: tuple[dict[str, bytes], dict[str, str]] | None = None


def data_file_digests(files: Mapping[str, bytes]) -> dict[str, str]:
    """``{name: digest_of(contents)}``, hashed once for the tasks of a map: the same bytes
    objects compare at once, equal copies (submit_task reads the files at each call) at memory
    speed, far quicker than hashing them again."""
    global _last_files
    if not files:
        return {}  # most tasks: nothing to look up
    files = dict(files)
    last = _last_files  # one read: another thread may replace it, never change it
    if last is not None and last[0] == files:
        return dict(last[1])
    digests = {name: digest_of(data) for name, data in files.items()}
    _last_files = (files, digests)
    return dict(digests)


def task_digest(python: str, kind: str, name: str, body: bytes, args_blob: bytes,
                kwargs_blob: bytes, deps: Sequence[bytes], modules: Sequence[str],
                file_digests: Mapping[str, str]) -> str:
    """The sha256 of what a worker runs for one task: equal for equal work in any process.

    Every part is length-prefixed, so no two different tasks hash the same bytes. Shared blobs
    are inside ``body``/``args_blob`` as their own digests; data files count by their names and
    the digests of their bytes (``data_file_digests``), whether they travel inside the task file
    or as shared blobs. The task id, times and anything else of one run are left out.
    """
    h = _digest_prefix(python, kind, name, body, tuple(modules), file_digests)
    for blob in (args_blob, kwargs_blob):
        h.update(len(blob).to_bytes(8, "big"))
        h.update(blob)
    h.update(len(deps).to_bytes(8, "big"))
    for dep in deps:
        h.update(len(dep).to_bytes(8, "big"))
        h.update(dep)
    return h.hexdigest()


# the hash of the last task's parts a map shares (function, modules, files), with what it hashed
_last_prefix: tuple[bytes, tuple[str, ...], dict[str, str], Any] | None = None


def _digest_prefix(python: str, kind: str, name: str, body: bytes, modules: tuple[str, ...],
                   file_digests: Mapping[str, str]) -> Any:
    """A sha256 over the parts the tasks of one map share, hashed once for all of them: the
    function's pickle is the same object each time."""
    global _last_prefix
    head = (python, kind, name, *modules)
    last = _last_prefix  # one read: another thread may replace it, never change it
    if last is not None and last[0] is body and last[1] == head and last[2] == file_digests:
        return last[3].copy()
    h = hashlib.sha256(DIGEST_VERSION)

    def part(data: bytes) -> None:
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)

    part(body)
    part(json.dumps([python, kind, name, list(modules)]).encode())
    part(len(file_digests).to_bytes(8, "big"))
    for file_name in sorted(file_digests):
        part(file_name.encode())
        part(bytes.fromhex(file_digests[file_name]))  # the sha256 of the file's bytes
    _last_prefix = (body, head, dict(file_digests), h.copy())
    return h


def encode_task_digested(
    task_id: str,
    executable: Callable[..., Any] | str | os.PathLike[str],
    input_data: Sequence[Any] = (),
    modules: Sequence[str] = (),
    dep_funcs: Sequence[Callable[..., Any]] = (),
    data_files: Mapping[str, bytes] | None = None,
    *,
    function_blob: bytes | None = None,
    kwargs: Mapping[str, Any] | None = None,
    chunk: Sequence[Sequence[Any]] | None = None,
    shared: Mapping[str, bytes] | None = None,
    inline_shared: bool = True,
    args_blob: bytes | None = None,
    shared_files: bool = False,
) -> tuple[bytes, str]:
    """Make a task file and its content digest (``task_digest``). ``function_blob`` lets a
    caller reuse one pickled function (map).

    ``chunk``: run the function once per tuple of arguments and return the list of results (one
    task for many small calls). ``shared``: the blobs the function or arguments refer to (from
    ``pickle_function``/``pickle_arguments``); inlined into the payload unless ``inline_shared``
    is False, in which case the worker must get them another way (an interface staging them).
    ``args_blob``: arguments pickled already by ``pickle_arguments``. ``shared_files``: a data
    file of SHARE_THRESHOLD bytes or more becomes a shared blob too, named by the header's
    ``file_digests`` (workers built before cannot read such a task file).
    """
    files = dict(data_files or {})
    for file_name in files:
        check_data_file_name(file_name)
    file_digests = data_file_digests(files)
    # the caller's dict is filled in: it stages what the arguments refer to as well
    shared_blobs: dict[str, bytes] = shared if isinstance(shared, dict) else dict(shared or {})
    if callable(executable):
        kind = "chunk" if chunk is not None else "function"
        name = getattr(executable, "__qualname__", getattr(executable, "__name__", "function"))
        body = (function_blob if function_blob is not None
                else pickle_function(executable, shared_blobs))
        script_name = ""
    else:
        kind = "script"
        script = Path(executable)
        try:
            body = script.read_bytes()
        except OSError as exc:
            raise EncodingError(f"cannot read script {script}: {exc.strerror or exc}") from None
        name = script_name = script.name
    if args_blob is None:
        arguments: object = list(chunk) if chunk is not None else tuple(input_data)
        args_blob = pickle_arguments(arguments, shared_blobs)
    names = tuple(sorted(files))
    by_digest: tuple[str, ...] = ()  # a large file's digest, "" for one in the payload
    if shared_files and any(len(data) >= SHARE_THRESHOLD for data in files.values()):
        # sent once per worker, as a large global is, instead of inside every task file
        by_digest = tuple(file_digests[n] if len(files[n]) >= SHARE_THRESHOLD else ""
                          for n in names)
        for file_name, digest in zip(names, by_digest, strict=True):
            if digest:
                shared_blobs[digest] = files.pop(file_name)
    header = _header_json(task_id, kind, tuple(modules), names, name,
                          tuple(sorted(shared_blobs)), by_digest)
    kwargs_blob = cloudpickle.dumps(dict(kwargs), protocol=PICKLE_PROTOCOL) if kwargs else b""
    deps = [pickle_function(f) for f in dep_funcs]
    payload = pickle.dumps(
        {
            "body": body,
            "script_name": script_name,
            "args": args_blob,
            "kwargs": kwargs_blob,
            "deps": deps,
            "files": files,
            "shared": shared_blobs if inline_shared else {},
        },
        protocol=PICKLE_PROTOCOL,
    )
    # the digest is of exactly the bytes sent: what the worker runs, nothing of this run
    digest = task_digest(python_minor(), kind, script_name, body, args_blob, kwargs_blob, deps,
                         modules, file_digests)
    return TASK_MAGIC + header + b"\n" + payload, digest


class _NoGlobals(pickle.Unpickler):
    """Reads a task payload's outer dict (bytes, strings, lists): no class, no call."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a task payload refers to {module}.{name}")


def task_file_digest(blob: bytes) -> str:
    """The digest ``encode_task_digested`` gave this task file, read back from the file alone
    (an engine that kept a task's file knows its digest); the function and arguments stay
    pickled."""
    header, raw = read_task_header(blob)
    try:
        payload = _NoGlobals(io.BytesIO(raw)).load()
        file_digests = dict(shared_data_files(header))
        file_digests.update((n, digest_of(data)) for n, data in payload["files"].items())
        return task_digest(header.python, header.kind, payload["script_name"], payload["body"],
                           payload["args"], payload["kwargs"], payload["deps"],
                           header.modules, file_digests)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise EncodingError(f"malformed task payload: {exc}") from None


def _header_json(task_id: str, kind: str, modules: tuple[str, ...], data_files: tuple[str, ...],
                 name: str, shared: tuple[str, ...], file_digests: tuple[str, ...]) -> bytes:
    """A task header as JSON; all but the task id is made once for the tasks of a map."""
    return b'{"task_id": ' + json.dumps(task_id).encode() + b", " + _header_rest(
        python_minor(), kind, modules, data_files, name, shared, file_digests)


@functools.lru_cache(maxsize=64)
def _header_rest(python: str, kind: str, modules: tuple[str, ...], data_files: tuple[str, ...],
                 name: str, shared: tuple[str, ...], file_digests: tuple[str, ...]) -> bytes:
    fields = dict(TaskHeader(task_id="", python=python, kind=kind, modules=list(modules),
                             data_files=list(data_files), name=name, shared=list(shared),
                             file_digests=list(file_digests)).__dict__)
    del fields["task_id"]
    # left out when empty: such a task reads the same to workers built before the field
    for optional in ("shared", "file_digests"):
        if not fields[optional]:
            del fields[optional]
    return json.dumps(fields).encode()[1:]


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


_DIGEST = re.compile(r"[0-9a-f]{64}")


def shared_data_files(header: TaskHeader) -> list[tuple[str, str]]:
    """``(name, digest)`` of the task's data files that travel as shared blobs."""
    digests = header.file_digests
    if not digests:
        return []
    if (not isinstance(digests, list) or not isinstance(header.data_files, list)
            or len(digests) != len(header.data_files)
            or not all(isinstance(d, str) and (not d or _DIGEST.fullmatch(d)) for d in digests)):
        raise EncodingError("malformed task header: file_digests does not match data_files")
    return [(name, digest) for name, digest in zip(header.data_files, digests, strict=True)
            if digest]


def task_shared(blob: bytes) -> list[str]:
    """The digests of the shared blobs a task file refers to (read from its header only)."""
    end = blob.find(b"\n", len(TASK_MAGIC))
    line = blob[len(TASK_MAGIC) : end] if end > 0 else b""
    if b'"shared": [' not in line or b'"shared": []' in line:
        return []  # most tasks share nothing: no JSON parse for them
    return read_task_header(blob)[0].shared


class SharedStore:
    """A worker's shared objects by digest: each blob unpickled once, then kept until forgotten.

    Blobs come from ``put`` (an interface sent them), from the task file itself (inlined), or from
    files named ``pymw_shared_<digest>`` in ``directory`` (staged by a file-based engine), whose
    bytes are checked against the digest before they are unpickled.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = directory
        self._blobs: dict[str, bytes | memoryview] = {}
        self._objects: dict[str, Any] = {}

    def put(self, digest: str, blob: bytes | memoryview) -> None:
        if digest not in self._objects:
            self._blobs[digest] = blob

    def forget(self, digest: str) -> None:
        self._blobs.pop(digest, None)
        self._objects.pop(digest, None)

    def __len__(self) -> int:
        return len(self._blobs) + len(self._objects)

    def load(self, digest: str, inline: Mapping[str, bytes], raw: bool = False) -> Any:
        """The object named ``digest``: unpickled from its blob, or (``raw``) the blob's bytes."""
        if digest in self._objects:
            return self._objects[digest]
        blob = self._blobs.pop(digest, None)
        if blob is None:
            blob = inline.get(digest)
        if blob is None and self.directory is not None:
            path = Path(self.directory, SHARED_FILE_PREFIX + digest)
            try:
                data = path.read_bytes()
            except OSError:
                data = None
            if data is not None:
                # the digest comes from the task's (signed) header: a blob file that does not
                # hash to it was altered, and is never unpickled
                if digest_of(data) != digest:
                    raise EncodingError(f"shared object {digest[:12]} in {path.name} does "
                                        "not match its digest")
                blob = data
        if blob is None:
            raise EncodingError(f"shared object {digest[:12]} never reached this worker")
        value = bytes(blob) if raw else pickle.loads(blob)
        if digest not in inline:  # sent once for this worker: keep it for its next tasks
            self._objects[digest] = value
        return value


def loads_task_part(data: bytes, store: SharedStore | None, inline: Mapping[str, bytes]) -> Any:
    """Unpickle a task's function or arguments, resolving shared blobs through ``store``."""
    unpickler = pickle.Unpickler(io.BytesIO(data))
    resolver = store if store is not None else SharedStore()

    def resolve(digest: str, raw: bool) -> Any:
        return resolver.load(digest, inline, raw)

    def persistent_load(pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 3 and pid[0] == _SHARED_TAG):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return resolve(pid[1], bool(pid[2]))

    unpickler.persistent_load = persistent_load  # type: ignore[method-assign]
    _unpickling.resolve = resolve
    try:
        return unpickler.load()
    finally:
        _unpickling.resolve = None


# --- result records ----------------------------------------------------------------------------


def encode_result(record: ResultRecord) -> bytes:
    return RESULT_MAGIC + json.dumps(record.header()).encode() + b"\n" + record.payload


_HEADER_TYPES: dict[str, type | tuple[type, ...]] = {
    "task_id": str, "ok": bool, "python": str, "worker": str, "started": (int, float),
    "finished": (int, float), "stdout": str, "stderr": str, "error_type": str,
    "error_message": str, "error_traceback": str, "error_kind": str,
}


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _flat_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """A JSON object whose values are plain scalars or lists of strings: a header never nests, so
    nesting is refused before parsing (json.loads would recurse once per level)."""
    depth = 0
    brackets = raw.count(b"[") + raw.count(b"{")
    # strings taken out, then all but the brackets: what is left to walk is a few bytes
    structure = (_JSON_STRING.sub(b'""', raw).translate(None, _NOT_BRACKETS) if brackets > 2
                 else b"")
    for byte in structure:
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


def loads_untrusted(data: bytes, limits: untrusted.Limits | None = None) -> Any:
    """Unpickle plain data (numbers, strings, containers, dates, decimals, numpy arrays and
    scalars of numeric dtypes) and nothing else, within time, memory and nesting limits; past one,
    a LimitExceeded that names it."""
    # imported when first needed: its patterns take most of a second to compile, which no
    # worker and no master of trusted workers should wait for
    from pymw_admin.wire import untrusted

    return untrusted.loads(data, limits or untrusted.DEFAULT_LIMITS)


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
