"""The worker entry point every engine runs: one task in its own working directory.

    python -m pymw_admin.worker.run TASK_FILE RESULT_FILE [--workdir DIR]

runs one task file and writes its result record; it exits 0 whenever it wrote a record, even for a
task that raised (the record says so), so engines count only real crashes as failures.

    python -m pymw_admin.worker.run --serve

is the persistent form the local interface uses: length-prefixed task frames on stdin, result
frames on stdout, until stdin closes.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import pickle
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import cloudpickle

from pymw_admin.wire import framing, signature
from pymw_admin.wire.encoding import (
    PICKLE_PROTOCOL,
    EncodingError,
    ResultRecord,
    SharedStore,
    TaskHeader,
    check_data_file_name,
    encode_result,
    loads_task_part,
    python_minor,
    python_mismatch,
    read_task_header,
    shared_data_files,
)
from pymw_admin.wire.exceptions import dumps_exception
from pymw_admin.worker import ADDED_TUNABLES_ENV, scripting

_function_cache: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()
_FUNCTION_CACHE_SIZE = 32


def worker_name() -> str:
    return os.environ.get("PYMW_WORKER_NAME") or f"{_host_name()}:{os.getpid()}"


def _host_name() -> str:
    # os.uname, not socket.gethostname: a frozen worker starts faster without the socket module;
    # Windows has no os.uname, and names the computer in its environment
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    return os.environ.get("COMPUTERNAME") or "windows"


def _load_function(
    body: bytes, store: SharedStore | None = None, inline: dict[str, bytes] | None = None
) -> Callable[..., Any]:
    # map() sends one pickled function many times: unpickle it once per worker
    func = _function_cache.get(body)
    if func is None:
        func = loads_task_part(body, store, inline or {})
        _function_cache[body] = func
        if len(_function_cache) > _FUNCTION_CACHE_SIZE:
            _function_cache.popitem(last=False)
    else:
        _function_cache.move_to_end(body)
    return func


def _dumps_value(value: Any) -> bytes:
    if value is None:
        return b""
    try:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        # an instance of a class the master script defined: only cloudpickle can send it back
        return cloudpickle.dumps(value, protocol=PICKLE_PROTOCOL)


def _format_traceback(exc: BaseException) -> str:
    import traceback  # only failing tasks need it: keep it off the worker's start-up

    return "".join(traceback.format_exception(exc))


def error_message(exc: BaseException, frozen: bool | None = None) -> str:
    """What the master is told a task raised. A module missing from a PyBOINC bundle (a frozen
    worker: ``sys.frozen``) says how to ship it: the bundle has only the packages it was built
    with, whatever the volunteer's machine has installed."""
    message = str(exc)
    if frozen is None:
        frozen = bool(getattr(sys, "frozen", False))
    if frozen and isinstance(exc, ModuleNotFoundError) and exc.name:
        package = exc.name.split(".")[0]
        message += f" (the bundle lacks it: rebuild the bundle with --with {package})"
    return message


def _error_record(
    task_id: str, exc: BaseException, started: float, kind: str = "", type_name: str = ""
) -> ResultRecord:
    # cloudpickle, so an exception class defined in the master script comes back as itself
    payload = dumps_exception(exc, PICKLE_PROTOCOL)
    return ResultRecord(
        task_id=task_id,
        ok=False,
        python=python_minor(),
        worker=worker_name(),
        started=started,
        finished=time.time(),
        error_type=type_name or type(exc).__name__,
        error_message=error_message(exc),
        error_traceback=_format_traceback(exc),
        error_kind=kind,
        payload=payload,
    )


def refusal_record(reason: str, started: float | None = None) -> ResultRecord:
    """The record of a task file refused for its signature: nothing of it was unpickled, so not
    even its task id is believed (the master knows the task by its work unit)."""
    return _error_record("?", RuntimeError(reason), time.time() if started is None else started,
                         kind="signature", type_name="TaskSignatureError")


def _call(kind: str, payload: dict[str, Any], script_globals_name: str,
          store: SharedStore | None = None) -> Any:
    inline: dict[str, bytes] = payload.get("shared") or {}
    args = loads_task_part(payload["args"], store, inline)
    kwargs = pickle.loads(payload["kwargs"]) if payload.get("kwargs") else {}
    if kind == "script":
        scripting.begin(args)
        code = compile(payload["body"], payload["script_name"], "exec")
        saved_argv = sys.argv
        sys.argv = [payload["script_name"], *map(str, args)]
        try:
            exec(
                code,
                {
                    "__name__": script_globals_name,
                    "__file__": payload["script_name"],
                    "pymw_get_input": scripting.pymw_get_input,
                    "pymw_set_output": scripting.pymw_set_output,
                },
            )
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise  # sys.exit(0) (or exit()) is how a script may end: its output stands
        finally:
            sys.argv = saved_argv
        return scripting.output()
    func = _load_function(payload["body"], store, inline)
    for dep_blob in payload["deps"]:
        dep = _load_function(dep_blob)
        # dep_funcs are reachable under their own names from the task function's globals
        func_globals = getattr(func, "__globals__", None)
        if func_globals is not None:
            func_globals.setdefault(dep.__name__, dep)
    if kind == "chunk":
        return [func(*a) for a in args]
    return func(*args, **kwargs)


def _write_data_files(header: TaskHeader, payload: dict[str, Any],
                      store: SharedStore | None) -> None:
    """Put the task's data files in its directory (the current one) under their names: those the
    task file carries, and large ones from the shared blobs this worker was sent (a BOINC slot's
    ``pymw_shared_<digest>`` files: their bytes are checked against the digest first)."""
    for name, data in payload["files"].items():
        # confined to the task's directory, whatever the task file says
        Path(check_data_file_name(name)).write_bytes(data)
    from_blobs = shared_data_files(header)
    if from_blobs:
        resolver = store if store is not None else SharedStore()
        inline: dict[str, bytes] = payload.get("shared") or {}
        for name, digest in from_blobs:
            # a file of its own for each task, as when it came inside the task file: a task
            # that writes to it changes no other task's copy
            Path(check_data_file_name(name)).write_bytes(resolver.load(digest, inline, raw=True))


def _clear_directory(path: str) -> None:
    """Empty a directory a task used; cheaper than a fresh one on slow file systems."""
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


class _Tee(io.StringIO):
    """A task's stderr, kept for its result record and written through to a descriptor as it
    comes: a task that dies of a signal (an abort, a segfault, the OOM killer) takes the text
    held in memory with it, and its engine keeps only the process's own stderr (BOINC's
    stderr.txt, HTCondor's .err)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd: int | None = fd

    def write(self, s: str, /) -> int:
        count = super().write(s)
        if self._fd is not None and s:
            data = memoryview(s.encode("utf-8", "backslashreplace"))
            try:
                while data:
                    data = data[os.write(self._fd, data):]
            except OSError:
                self._fd = None  # a closed or broken stderr: the record still has every word
        return count


def _file_safe(task_id: object) -> str:
    """A task id as part of a directory name: the id is the task file's to choose (a ``/``, a
    NUL or a thousand characters must not decide where, or whether, the directory is made)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(task_id))[:40] or "_"


def run_task(blob: bytes, workdir_base: str | None = None,
             store: SharedStore | None = None, *, stderr_fd: int | None = None) -> ResultRecord:
    """Run one task file in a working directory of its own; never raises.

    ``store`` holds the shared objects this worker was sent (persistent workers keep one).
    With ``stderr_fd``, what the task writes to ``sys.stderr`` also goes to that descriptor as
    it is written (one-shot workers: their stderr is the task's own), not only to the record.

    With ``workdir_base`` (a persistent worker) the task runs in ``workdir_base/task``, which is
    emptied after every task, so each task still starts in an empty directory. Without it, a fresh
    temporary directory is made and removed.
    """
    started = time.time()
    if signature.is_signed(blob):
        # signed for volunteers; a worker of the master's own (or a rehearsal) runs it as it is:
        # the bundle checked the signature already where one must be checked
        try:
            blob = signature.open_task(blob, None)
        except signature.SignatureError as exc:
            return refusal_record(str(exc), started)
    try:
        header, raw = read_task_header(blob)
    except EncodingError as exc:
        return _error_record("?", exc, started)
    mismatch = python_mismatch(header.python)
    if mismatch:
        return _error_record(
            header.task_id,
            RuntimeError(mismatch),
            started,
            kind="version",
            type_name="PythonVersionMismatch",
        )
    if workdir_base is None:
        try:
            workdir = tempfile.mkdtemp(prefix=f"task-{_file_safe(header.task_id)}-")
        except OSError as exc:  # no room, no temporary directory: the master hears why
            return _error_record(header.task_id, exc, started)
    else:
        workdir = os.path.join(workdir_base, "task")
    out = io.StringIO()
    err = io.StringIO() if stderr_fd is None else _Tee(stderr_fd)
    if stderr_fd is not None and sys.stderr is not None:
        sys.stderr.flush()  # what the worker said before the task comes before the task's words
    old_cwd = os.getcwd()
    try:
        os.chdir(workdir)
    except FileNotFoundError:  # the first task (or one removed it): made only when missing
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                payload = pickle.loads(raw)
                _write_data_files(header, payload, store)
                for module in header.modules:
                    importlib.import_module(module)
                value = _call(header.kind, payload, "__main__", store)
                record = ResultRecord(
                    task_id=header.task_id,
                    ok=True,
                    python=python_minor(),
                    worker=worker_name(),
                    started=started,
                    finished=time.time(),
                    payload=_dumps_value(value),
                )
            except BaseException as exc:  # a task's failure is data: sys.exit, KeyboardInterrupt
                record = _error_record(header.task_id, exc, started)
    finally:
        os.chdir(old_cwd)
        if workdir_base is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            _clear_directory(workdir)
    record.stdout, record.stderr = out.getvalue(), err.getvalue()
    return record


def write_record(path: str | os.PathLike[str], record: ResultRecord) -> None:
    """Write a result record whole: aside first, then renamed, so no engine ships half of one."""
    tmp = f"{os.fspath(path)}.part"
    Path(tmp).write_bytes(encode_result(record))
    os.replace(tmp, path)


def _run_one(task_path: str, result_path: str, workdir: str | None,
             shared_dir: str | None = None) -> int:
    # shared blobs staged as files (pymw_shared_<digest>) sit beside the task file by default
    store = SharedStore(directory=shared_dir or os.path.dirname(os.path.abspath(task_path)))
    # the process's stderr is this task's alone (HTCondor keeps it when the task crashes)
    write_record(result_path, run_task(Path(task_path).read_bytes(), workdir, store, stderr_fd=2))
    return 0


PARENT_CHECK_SECONDS = 0.5


def _die_with_parent() -> None:
    """End this worker when its master dies, even in the middle of a task: no orphan.

    An idle worker already ends on the end of its input; a busy one learns of it here, when it
    is handed to a new parent. (Linux's PR_SET_PDEATHSIG would fire when the master's *thread*
    that started us ends, which need not be the master.)
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _task_id(blob: bytes) -> str:
    try:
        return read_task_header(blob)[0].task_id
    except EncodingError:
        return "?"


class _Inbox:
    """Tasks a persistent worker was sent and has not started, fed by a reader thread.

    Reading ahead lets the master take back a task this worker has not started (a revoke: another
    worker is idle) and stage shared blobs while a task runs.
    """

    def __init__(self, proto_in: BinaryIO, out: _Outbox, store: SharedStore) -> None:
        self._in = proto_in
        self._out = out
        self._store = store
        self._cond = threading.Condition()
        self._tasks: deque[bytes] = deque()
        self._ended = False
        threading.Thread(target=self._read, daemon=True, name="inbox").start()

    def _read(self) -> None:
        while (body := framing.read_message(self._in)) is not None:
            if isinstance(body, tuple):  # a shared blob
                with self._cond:
                    self._store.put(*body)
                del body
                continue
            batch = framing.unpack_batch(body)
            del body
            with self._cond:
                for blob in batch:
                    self._take(blob)
                self._cond.notify()
            del batch
        with self._cond:
            self._ended = True
            self._cond.notify()

    def _take(self, blob: bytes) -> None:
        revoke = framing.read_ids(framing.REVOKE_MAGIC, blob)
        if revoke is not None:
            # task ids are read only now: revokes are rare, tasks many
            wanted = set(revoke)
            kept: deque[bytes] = deque()
            dropped = []
            for task in self._tasks:
                task_id = _task_id(task)
                if task_id in wanted:
                    dropped.append(task_id)
                else:
                    kept.append(task)
            self._tasks = kept
            self._out.send([framing.ids_record(framing.REVOKED_MAGIC, dropped)])
        elif blob.startswith(framing.FORGET_MAGIC):
            self._store.forget(blob[len(framing.FORGET_MAGIC):].decode())
        else:
            self._tasks.append(blob)

    def next(self, block: bool) -> bytes | None:
        """The next task file; None when there is none (and ``block`` is False) or input ended."""
        with self._cond:
            while not self._tasks:
                if self._ended or not block:
                    return None
                self._cond.wait()
            return self._tasks.popleft()

    def lock(self) -> threading.Condition:
        return self._cond


class _Outbox:
    """The worker's output: frames of records, written whole by one thread at a time."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, records: list[bytes]) -> None:
        with self._lock:
            self._stream.write(framing.frame(framing.pack_batch(records)))
            self._stream.flush()


ANNOUNCE_AFTER_SECONDS = 0.01  # a task still running this long is reported as started


class _Announcer:
    """Tells the master which task runs once it has run ANNOUNCE_AFTER_SECONDS (a STARTED
    record): a long task shows as running, while short ones, whose results ride together, cost
    no extra write. A thread of its own looks at most once per period, so a stream of no-op
    tasks does not wake it per task."""

    def __init__(self, out: _Outbox) -> None:
        self._out = out
        self._cond = threading.Condition()
        self._current: bytes | None = None
        self._serial = 0  # tasks started so far: tells one task from the next
        self._idle = True  # the thread waits for a task (and must be woken for one)
        threading.Thread(target=self._run, daemon=True, name="announcer").start()

    def starting(self, blob: bytes) -> None:
        with self._cond:
            self._current = blob
            self._serial += 1
            if self._idle:
                self._cond.notify()

    def ended(self) -> None:
        """The task ended: from now on no notice for it is sent (this waits for one being
        written, so a notice always comes before its result)."""
        with self._cond:
            self._current = None

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._current is None:
                    self._idle = True
                    self._cond.wait()
                self._idle = False
                serial = self._serial
                self._cond.wait(ANNOUNCE_AFTER_SECONDS)
                if self._current is None or self._serial != serial:
                    continue  # it ended; a later task gets its own period
                self._out.send([framing.ids_record(framing.STARTED_MAGIC,
                                                   [_task_id(self._current)])])
                while self._current is not None and self._serial == serial:
                    self._idle = True
                    self._cond.wait()


def serve() -> int:
    """Persistent worker: frames of task batches in, frames of result batches out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the master's to handle
    if os.environ.pop(ADDED_TUNABLES_ENV, None):
        # read by glibc at start-up: this process has it, what its tasks start does not
        os.environ.pop("GLIBC_TUNABLES", None)
    _die_with_parent()
    # keep the protocol on private descriptors, so a task printing to fd 1 cannot corrupt it
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    base = tempfile.mkdtemp(prefix="pymw-worker-")
    store = SharedStore()
    out = _Outbox(proto_out)
    inbox = _Inbox(proto_in, out, store)
    announcer = _Announcer(out)
    done: list[bytes] = []
    try:
        while True:
            blob = inbox.next(block=not done)
            if blob is None:
                if not done:
                    return 0  # input ended and everything is reported
                out.send(done)
                done = []
                continue
            t0 = time.perf_counter()
            announcer.starting(blob)
            record = run_task(blob, base, store)
            announcer.ended()
            del blob
            done.append(encode_result(record))
            del record
            # long tasks report at once; short ones ride together to save round trips
            if time.perf_counter() - t0 > 0.002 or len(done) >= 64:
                out.send(done)
                done = []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def split_workdir(args: list[str]) -> tuple[list[str], str | None] | None:
    """``(the other arguments, DIR)`` from ``... --workdir DIR ...``; None when DIR is missing."""
    if "--workdir" not in args:
        return args, None
    i = args.index("--workdir")
    if i + 1 >= len(args):
        return None
    return args[:i] + args[i + 2 :], args[i + 1]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--serve"]:
        return serve()
    shared_dir = None
    if "--shared-dir" in args:
        i = args.index("--shared-dir")
        shared_dir = args[i + 1] if i + 1 < len(args) else ""
        args = args[:i] + args[i + 2 :]
    split = split_workdir(args)
    if split is not None:
        args, workdir = split
    if split is None or len(args) != 2 or shared_dir == "":
        print("usage: python -m pymw_admin.worker.run TASK_FILE RESULT_FILE [--workdir DIR]"
              " [--shared-dir DIR]", file=sys.stderr)
        return 2
    return _run_one(args[0], args[1], workdir, shared_dir)


if __name__ == "__main__":
    sys.exit(main())
