"""The PyMW master: submit tasks to an interface, collect their results.

The master encodes tasks, hands them to its interface, and decodes completions whenever a caller
asks for a result. It never imports engine code; interfaces only move task files and result records.

It may be used from several threads: one caller at a time takes completions from the interface
(``_pumping``), the others wait on a condition it signals after each. It keeps only the tasks not
yet collected; counts are kept as tasks change state, so no call costs more as history grows.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import sys
import threading
import time
import types
import uuid
import weakref
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pymw_admin.errors import UsageError
from pymw_admin.interfaces import make_interface
from pymw_admin.interfaces.base import (
    BatchSubmitting,
    Completion,
    Detachable,
    HasLeftovers,
    Interface,
    Resumable,
    RetriesItself,
    SendsAhead,
    SharesBlobs,
)
from pymw_admin.interfaces.kit import script_exit
from pymw_admin.runtime import events, options
from pymw_admin.runtime.checkpoint import Checkpoint
from pymw_admin.runtime.earlier import RESULTS_DIR, ContentIndex, EarlierTasks, clear_results
from pymw_admin.runtime.errors import (
    PythonVersionMismatch,
    RemoteTraceback,
    TaskCancelled,
    TaskError,
    TaskSignatureError,
    TaskTimeout,
    WorkerLost,
)
from pymw_admin.runtime.remote_source import CodePlaces
from pymw_admin.runtime.task import FINAL_STATES, Task, TaskState
from pymw_admin.wire import encoding

Executable = Callable[..., Any] | str | os.PathLike[str]
R = TypeVar("R")
PUMP_SLICE_SECONDS = 1.0  # a caller waiting on the interface looks up at least this often
SUBMIT_CHUNK = 1000  # tasks submit_many encodes before the interface gets them
RUN_DIR_ENV = "PYMW_RUN_DIR"  # a pymw-admin run's directory, set by its run.sh
REUSE_FILE = "reuse"  # there: "REUSED COMPUTED", what `pymw-admin runs` shows of a resumed run
STATE_LOOK_CHEAP_SECONDS = 0.001  # a look at the interface this quick is made at every state read


@dataclass
class Progress:
    done: int
    failed: int
    total: int

    @property
    def fraction(self) -> float:
        return (self.done + self.failed) / self.total if self.total else 1.0


@dataclass
class Status:
    interface: str
    counts: dict[str, int]
    workers: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:  # PyMW's get_status() was a dict
        return self.__dict__[key]


@dataclass
class _Watch:
    """The tasks one ``as_completed`` waits for, and those of them finished since it looked."""

    wanted: set[str]
    finished: list[Task] = field(default_factory=list)

    def take(self) -> list[Task] | None:
        found, self.finished = self.finished, []
        return found or None


class _Staging:
    """How a master's pickler names blobs (encoding.BlobStaging): the digest of a bytes object
    in use is known by identity; a large new blob goes out while it is hashed when the
    interface can send ahead."""

    def __init__(self, master: Master) -> None:
        self._master = master
        interface = master.interface
        self._ahead = interface if isinstance(interface, SendsAhead) else None

    def known_digest(self, blob: bytes) -> str | None:
        named = self._master._named_blobs.get(id(blob))  # one dict look-up: no lock needed
        if named is not None and named[0] is blob:
            return named[1]
        return self._ahead.known_digest(blob) if self._ahead is not None else None

    def send_ahead(self, blob: bytes) -> Callable[[str | None], None]:
        if self._ahead is None:
            return lambda digest: None
        return self._ahead.send_ahead(blob)


_live_masters: weakref.WeakSet[Master] = weakref.WeakSet()


class _Tally:
    """Tasks handed over and finished (done or failed) by every master of this process: what
    Ctrl-C reports, even of masters a ``with`` block already cleaned up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.submitted = 0
        self.finished = 0

    def add(self, submitted: int = 0, finished: int = 0) -> None:
        with self._lock:
            self.submitted += submitted
            self.finished += finished

    def interrupted(self) -> str | None:
        if not self.submitted:
            return None
        return f"interrupted: {self.finished} of {self.submitted} done"


tally = _Tally()
script_exit.on_interrupt(tally.interrupted)


def _ended(task: Task) -> bool:
    """The master's own reading of ``task.finished``: it never looks at the interface."""
    return task._state in FINAL_STATES


def _refresher(master: Master) -> Callable[[], None]:
    """What a Task calls when its state is read: the master's non-blocking look at its
    interface. Held weakly, so a task kept by the caller keeps no master alive."""
    ref = weakref.ref(master)

    def refresh() -> None:
        alive = ref()
        if alive is not None:
            alive._look_for_state()

    return refresh


class Stopped(SystemExit):
    """SIGTERM (``pymw-admin stop``): the master ends the way a clean exit does, except that the
    results it took in stay kept for a later run of the same script."""


_stopping = threading.Event()  # a TERM arrived: the end is a stop


def _stop_on_term(signum: int, _frame: object) -> None:
    _stopping.set()
    raise Stopped(128 + signum)


def _handle_term() -> None:
    """TERM ends the script through its ``with``/atexit clean-up (a clean end: the run's BOINC
    work units are cancelled) instead of killing it outright; a handler of the script's own is
    left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_on_term)


def _durable_state(interface: Interface) -> Path | None:
    """The state directory of an engine whose tasks outlive the master, else None."""
    state_dir = getattr(interface, "state_dir", None)
    return state_dir if isinstance(interface, Resumable) and isinstance(state_dir, Path) else None


@atexit.register
def _cleanup_at_exit() -> None:
    for master in list(_live_masters):
        if script_exit.ended_by_exception():
            master._detach_or_cleanup()
        else:
            master.cleanup()


class Master:
    """Hands tasks to workers through an interface and gives back their results.

    With no interface, the environment chooses, as it does for ``options.interface_from_args()``
    (``PYMW_INTERFACE``, ``PYMW_NUM_WORKERS``, ``PYMW_PROJECT_HOME``...: ``pymw-admin run`` and
    ``rehearse`` set them); else tasks run on this machine with one worker per core.
    ``interface`` may be an Interface or a name (``"local"``, ``"mpi"``, ...). A worker lost while
    running a task is retried ``retries`` times before the task fails with WorkerLost.

    ``resume``: take over the tasks an earlier master on the same persistent state (a BOINC tag,
    an HTCondor state directory) left uncollected, by content: a task this script submits with
    the same content (``task.digest``) as one of them is not submitted again but gets that one's
    result, whether it is still running or finished. What the script never submits again is
    cancelled at the end (BOINC's ``keep=yes`` keeps it), and one line says how many. A script
    written for it can take them all as they are from ``resumed``. None leaves it to the
    interface (BOINC: its ``resume=`` setting, default no; HTCondor: yes, its ``-p`` state
    directory asks for it). A BOINC master not resuming refuses to start while its tag has
    leftovers: no run hands out another run's results as its own.

    ``checkpoint``: a directory (or Checkpoint) keeping the result of every task that returned,
    by task content: a task submitted again with the same function, arguments, modules,
    dep_funcs and data files is not run again but finishes at once with the stored result. None
    leaves it to the interface (``-a checkpoint=DIR``, runtime.options); on a durable engine it
    is then the engine's state directory's ``results``, kept until a run ends cleanly (a crash
    or a ``stop`` keeps it for the next run of the same script).
    """

    def __init__(
        self,
        interface: Interface | str | None = None,
        *,
        num_workers: int | None = None,
        retries: int = 1,
        use_state_dir: bool = False,  # accepted for PyMW compatibility; state lives in memory
        resume: bool | None = None,
        checkpoint: str | os.PathLike[str] | Checkpoint | None = None,
    ) -> None:
        if interface is None:  # the environment's choice, project directory and all
            interface = options.interface_from_environment(num_workers=num_workers)
        elif isinstance(interface, str):
            interface = make_interface(interface, num_workers=num_workers)
        self.interface: Interface = interface
        # capabilities are looked up once: acknowledging runs once a task
        self._acknowledge = interface.acknowledge if isinstance(interface, Resumable) else None
        self._blob_stager = interface if isinstance(interface, SharesBlobs) else None
        # large data files go as shared blobs too, where the workers can take them so
        self._share_files = self._blob_stager is not None and bool(
            getattr(interface, "shared_data_files", True))
        self.retries = retries
        if isinstance(interface, RetriesItself):
            interface.set_retries(retries)
        if checkpoint is None:
            checkpoint = getattr(interface, "checkpoint", None)
        # a durable engine's state directory: its content index and, unless the caller gave a
        # checkpoint, the results kept for a re-run
        self._state_dir = _durable_state(interface)
        self._own_results = checkpoint is None and self._state_dir is not None
        if checkpoint is None and self._state_dir is not None:
            checkpoint = self._state_dir / RESULTS_DIR
        self._content_index = (ContentIndex(self._state_dir) if self._state_dir is not None
                               else None)
        self._earlier = EarlierTasks()  # an earlier master's tasks, until claimed by content
        self._from_earlier: set[str] = set()  # unfinished tasks whose result is an earlier one
        self.reused = 0  # results that came from an earlier master (or a checkpoint)
        self.computed = 0  # results computed for this master
        self.checkpoint: Checkpoint | None = None
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._pumping = False  # a caller is taking completions from the interface
        self._live: dict[str, Task] = {}  # submitted and not yet collected
        self._blobs: dict[str, bytes] = {}  # task files of unfinished tasks, for retries
        self._task_shared: dict[str, list[str]] = {}  # shared blobs an unfinished task needs
        self._shared_users: Counter[str] = Counter()
        # id -> (blob, digest) of the shared blobs in use: a big bytes object is its own blob,
        # so tasks submitted one by one over it hash it once (the entry keeps the id unique)
        self._named_blobs: dict[int, tuple[bytes, str]] = {}
        self._staging = _Staging(self)
        self._uncollected: OrderedDict[str, Task] = OrderedDict()  # finished, not collected
        self._watches: list[_Watch] = []  # what each as_completed running waits for
        self._counts: Counter[TaskState] = Counter()
        self._total = 0
        self._prefix = uuid.uuid4().hex[:8]
        self._refresh = _refresher(self)
        self._next_state_look = 0.0  # monotonic time before which reading a state asks nothing
        self._code_places = CodePlaces()  # where code sent by value came from: tracebacks
        self._counter = itertools.count(1)
        self._closed = False
        self._resumed: list[Task] = []  # earlier tasks taken as they are (``resumed``)
        if resume is None:
            resume = bool(getattr(interface, "resume", True))
        try:
            self.checkpoint = (checkpoint if isinstance(checkpoint, Checkpoint | None)
                               else Checkpoint(checkpoint))
            self._adopt_resumed_tasks(resume)
        except BaseException:
            # the interface's state stays as it was for a master that does resume (a checkpoint
            # directory that cannot be made leaves it as it was too)
            if isinstance(self.interface, Detachable):
                self.interface.detach()
            else:
                self.interface.close()
            raise
        _live_masters.add(self)
        _handle_term()

    def _adopt_resumed_tasks(self, resume: bool) -> None:
        if not isinstance(self.interface, Resumable):
            return
        where = getattr(self.interface, "tag", None) or getattr(self.interface, "state_dir", "")
        if not resume:
            if isinstance(self.interface, HasLeftovers):
                count = len(self.interface.leftovers())
                if count:
                    raise UsageError(
                        f"tag {where!s} holds {count} uncollected task(s) of an earlier master: "
                        "run the same script again with -a resume=yes (each task it submits "
                        "takes the earlier result with the same content; the rest are cancelled "
                        f"at its end), drop them (pymw-admin runs drop {where!s}) or use another "
                        "tag (-a tag=NAME)")
            return
        digests = self._content_index.digests() if self._content_index is not None else {}
        for task_id, name in self.interface.resumed_tasks():
            self._earlier.add(task_id, name, digests.get(task_id, ""))
        if self._earlier:
            print(f"pymw: resuming {len(self._earlier)} task(s) an earlier master left "
                  f"({where!s}): a task submitted again with the same content takes its result "
                  "instead of running again", file=sys.stderr, flush=True)

    @property
    def resumed(self) -> list[Task]:
        """The earlier master's tasks, for a script written for them: reading this takes every
        one no submission claimed as this master's own (``get_result`` hands them out)."""
        with self._lock:
            for task_id, name in self._earlier.take_all():
                task = Task(task_id=task_id, name=name, _state=TaskState.SUBMITTED, attempts=1,
                            _refresh=self._refresh)
                self._live[task_id] = task  # no task file here: an adopted task is not retried
                self._counts[TaskState.SUBMITTED] += 1
                self._total += 1
                tally.add(submitted=1)
                self._from_earlier.add(task_id)
                self._resumed.append(task)
                waiting = self._earlier.outcome(task_id)
                if waiting is not None:
                    self._absorb(waiting)
            return self._resumed

    def _hand_back(self, task: Task) -> None:
        """The caller now has this task's outcome: the master lets go of it and tells a resumable
        engine (once)."""
        if task.collected:
            return
        task.collected = True
        self._uncollected.pop(task.task_id, None)
        self._live.pop(task.task_id, None)
        if self._acknowledge is not None:
            self._acknowledge(task.task_id)

    def _take(self, task: Task) -> Any:
        """Hand a finished task back: its value (released from the Task), or raise its error."""
        self._hand_back(task)
        if task._error is not None:
            raise task._error
        value, task._result = task._result, None  # the value is the caller's now
        return value

    # --- context manager ---------------------------------------------------------------------

    def __enter__(self) -> Master:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and not (isinstance(exc_type, type)
                                         and issubclass(exc_type, Stopped)):
            self._detach_or_cleanup()
        self.cleanup()

    def _detach_or_cleanup(self) -> None:
        """An exception or Ctrl-C ends the master: a resumable engine keeps its tasks for the
        next master (``detach``); any other is cleaned up."""
        if not isinstance(self.interface, Detachable) or self._closed:
            self.cleanup()
            return
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        _live_masters.discard(self)
        self.interface.detach()
        self._report_reuse()

    # --- submitting --------------------------------------------------------------------------

    def _new_task(self, name: str) -> Task:
        return Task(task_id=f"{self._prefix}-{next(self._counter)}", name=name)

    def _encode(self, task: Task, executable: Executable, **what: Any) -> bytes:
        """A task file for ``task``; whatever cannot be encoded is a TaskError naming the task."""
        try:
            blob, task.digest = encoding.encode_task_digested(
                task.task_id, executable, inline_shared=self._blob_stager is None,
                shared_files=self._share_files, **what)
            return blob
        except encoding.EncodingError as exc:
            raise TaskError(task, "EncodingError", str(exc)) from None
        except Exception as exc:  # cloudpickle refusing an input, say
            raise TaskError(task, type(exc).__name__, f"cannot encode the task: {exc}") from exc

    @staticmethod
    def _read_files(data_files: Sequence[str | os.PathLike[str]]) -> dict[str, bytes]:
        try:
            return encoding.read_data_files(data_files)
        except encoding.EncodingError as exc:
            raise TaskError(None, "EncodingError", str(exc)) from None

    def _pickle_function(self, func: Callable[..., Any], shared: dict[str, bytes],
                         dep_funcs: Sequence[Callable[..., Any]] = ()) -> bytes:
        codes: list[types.CodeType] = []
        try:
            blob = encoding.pickle_function(func, shared, staging=self._staging, codes=codes)
        except Exception as exc:
            raise TaskError(None, type(exc).__name__, f"cannot encode the function: {exc}") from exc
        # dep_funcs are pickled with the task file: their code is known from here
        codes += [c for f in dep_funcs if isinstance(c := getattr(f, "__code__", None),
                                                     types.CodeType)]
        self._code_places.add(codes)
        return blob

    def _register(self, task: Task, blob: bytes, shared: Mapping[str, bytes]) -> None:
        """Count a task as handed over (lock held); stage the shared blobs it needs."""
        digests = encoding.task_shared(blob)
        if digests and self._blob_stager is not None:
            self._task_shared[task.task_id] = digests
            for digest in digests:
                if self._shared_users[digest] == 0:
                    self._blob_stager.put_shared(digest, shared[digest])
                    self._named_blobs[id(shared[digest])] = (shared[digest], digest)
                self._shared_users[digest] += 1
        self._live[task.task_id] = task
        self._blobs[task.task_id] = blob
        self._counts[TaskState.SUBMITTED] += 1
        self._total += 1
        tally.add(submitted=1)
        task.state = TaskState.SUBMITTED
        task._refresh = self._refresh
        task.submit_time = time.time()
        task.attempts = 1
        events.emit("submitted", task)

    def _release_shared(self, task_id: str) -> None:
        for digest in self._task_shared.pop(task_id, ()):
            self._shared_users[digest] -= 1
            if self._shared_users[digest] <= 0 and self._blob_stager is not None:
                del self._shared_users[digest]
                self._named_blobs = {k: v for k, v in self._named_blobs.items()
                                     if v[1] != digest}
                self._blob_stager.drop_shared(digest)

    def _forget(self, tasks: Iterable[Task]) -> None:
        """Tasks the interface refused: never counted as outstanding, so nothing waits for them."""
        for task in tasks:
            if self._live.pop(task.task_id, None) is not None:
                self._counts[TaskState.SUBMITTED] -= 1
                self._total -= 1
                tally.add(submitted=-1)
            self._blobs.pop(task.task_id, None)
            self._release_shared(task.task_id)
            task.state = TaskState.QUEUED

    def _hand_over(self, encoded: list[tuple[Task, bytes]],
                   shared: Mapping[str, bytes]) -> None:
        """Register and submit encoded tasks; a refusal forgets all it was to submit.

        A task with the content of an earlier master's uncollected one takes that one's place
        (its id, its result when it comes); one whose result the checkpoint holds finishes now,
        with that result. Neither is submitted.
        """
        claimed: set[str] = set()
        with self._lock:
            for task, _ in encoded:
                earlier = self._earlier.claim(task.digest) if self._earlier else None
                if earlier is not None:
                    task.task_id = earlier  # the engine knows it by that id
                    claimed.add(earlier)
        stored: dict[str, tuple[bytes, bool]] = {}
        if self.checkpoint is not None:
            for task, _ in encoded:
                if task.task_id not in claimed:
                    kept = self.checkpoint.get(task.digest)
                    if kept is not None:
                        stored[task.task_id] = kept
        new = [(task, blob) for task, blob in encoded
               if task.task_id not in claimed and task.task_id not in stored]
        if self._content_index is not None:
            # before the engine has them: a master dying right after still left their digests
            self._content_index.record([(task.task_id, task.digest) for task, _ in new])
        with self._lock:
            self._check_open()
            for task, blob in encoded:
                self._register(task, blob, shared)
            self._from_earlier.update(claimed)
            self._from_earlier.update(stored)
            for task_id in claimed:
                waiting = self._earlier.outcome(task_id)  # what came before it was ours
                if waiting is not None:
                    self._absorb(waiting)
            for task_id, (record, trusted) in stored.items():
                # taken in as a completion from a worker: decoded exactly as a fresh result,
                # and as untrusted when untrusted workers made it, whatever this interface is
                self._absorb(Completion(task_id, record=record), kept_trusted=trusted)
            if len(new) < len(encoded):
                encoded = new
                self._cond.notify_all()
            if not encoded:
                return
            try:
                if len(encoded) == 1:
                    self.interface.submit(encoded[0][0].task_id, encoded[0][1])
                else:
                    batch = [(task.task_id, blob) for task, blob in encoded]
                    if isinstance(self.interface, BatchSubmitting):
                        self.interface.submit_many(batch)
                    else:
                        for task_id, blob in batch:
                            self.interface.submit(task_id, blob)
            except BaseException:
                self._forget(task for task, _ in encoded)
                raise

    def broadcast(self, obj: Any) -> encoding.Shared:
        """Pickle ``obj`` once; pass the handle to tasks (argument or closure) and each worker
        receives the object once, however many tasks use it. Inside a task it is the object."""
        return encoding.Shared(obj)

    def submit_task(
        self,
        executable: Executable,
        input_data: Sequence[Any] = (),
        modules: Sequence[str] = (),
        dep_funcs: Sequence[Callable[..., Any]] = (),
        data_files: Sequence[str | os.PathLike[str]] = (),
        *,
        kwargs: Mapping[str, Any] | None = None,
    ) -> Task:
        """Queue ``executable(*input_data, **kwargs)`` (or the script at that path); its Task."""
        self._check_open()
        if not callable(executable) and not isinstance(executable, str | os.PathLike):
            raise TaskError(None, "TypeError", f"cannot run {executable!r}: not a function or path")
        name = (
            getattr(executable, "__qualname__", "function")
            if callable(executable)
            else os.path.basename(os.fspath(executable))
        )
        task = self._new_task(name)
        if not isinstance(input_data, tuple | list):
            input_data = (input_data,)
        shared: dict[str, bytes] = {}
        function_blob = (self._pickle_function(executable, shared, dep_funcs)
                         if callable(executable) else None)
        blob = self._encode(task, executable, input_data=input_data, modules=modules,
                            dep_funcs=dep_funcs, data_files=self._read_files(data_files),
                            kwargs=kwargs, function_blob=function_blob, shared=shared)
        self._hand_over([(task, blob)], shared)
        return task

    def _stream(
        self,
        func: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        chunksize: int,
        modules: Sequence[str],
        dep_funcs: Sequence[Callable[..., Any]],
        data_files: Sequence[str | os.PathLike[str]],
        timeout: float | None,
    ) -> Iterator[Task]:
        """Submit ``func`` over the zipped iterables a window at a time, yielding tasks in input
        order as they finish: encoding and handing over keep pace with the workers."""
        self._check_open()
        if chunksize < 1:
            raise TaskError(None, "ValueError", f"chunksize must be at least 1, not {chunksize}")
        shared: dict[str, bytes] = {}
        function_blob = self._pickle_function(func, shared, dep_funcs)
        files = self._read_files(data_files)
        name = getattr(func, "__qualname__", "function")
        calls = zip(*iterables, strict=False)
        window = self._window()
        deadline = None if timeout is None else time.monotonic() + timeout
        running: deque[Task] = deque()
        exhausted = False
        try:
            while True:
                if not exhausted and len(running) <= window // 2:
                    encoded: list[tuple[Task, bytes]] = []
                    # encode a whole window before handing any of it over: an item that cannot be
                    # encoded then leaves nothing of its window behind
                    while len(running) + len(encoded) < window:
                        items = list(itertools.islice(calls, chunksize))
                        if not items:
                            exhausted = True
                            break
                        task = self._new_task(name if chunksize == 1 else f"{name}[chunk]")
                        what: dict[str, Any] = (
                            {"input_data": items[0]} if chunksize == 1
                            else {"chunk": items})
                        encoded.append((task, self._encode(
                            task, func, modules=modules, dep_funcs=dep_funcs, data_files=files,
                            function_blob=function_blob, shared=shared, **what)))
                    if encoded:
                        self._hand_over(encoded, shared)
                        running.extend(task for task, _ in encoded)
                if not running:
                    return
                self._wait_for(running[0], deadline, len(running))
                yield running.popleft()
        finally:
            for task in running:  # the caller stopped early: nobody wants these
                self.cancel(task)

    def _wait_for(self, task: Task, deadline: float | None, left: int) -> None:
        self._wait_until(lambda: task if _ended(task) else None, deadline,
                         lambda: TaskTimeout(f"{left} task(s) still running after the timeout"))

    def _window(self) -> int:
        """How many tasks map keeps handed over: enough to keep every worker's queue full."""
        workers = getattr(self.interface, "num_workers", None)
        return 4096 if not workers else max(256, 128 * int(workers))

    def imap(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        chunksize: int = 1,
        modules: Sequence[str] = (),
        dep_funcs: Sequence[Callable[..., Any]] = (),
        data_files: Sequence[str | os.PathLike[str]] = (),
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """``func(*args)`` for args zipped from ``iterables``, yielded in input order as they
        finish; a failed task raises its TaskError there (the tasks still running are cancelled)."""
        for task in self._stream(func, iterables, chunksize, modules, dep_funcs, data_files,
                                 timeout):
            with self._lock:
                value = self._take(task)
            if chunksize == 1:
                yield value
            else:
                yield from value

    def map(
        self,
        func: Callable[..., Any],
        *iterables: Iterable[Any],
        chunksize: int = 1,
        modules: Sequence[str] = (),
        dep_funcs: Sequence[Callable[..., Any]] = (),
        data_files: Sequence[str | os.PathLike[str]] = (),
        timeout: float | None = None,
    ) -> list[Any]:
        """``[func(*args) for args in zip(*iterables)]`` on the workers, in input order.

        Tasks are encoded and handed over as workers free up; ``chunksize`` calls ride in one task.
        The first task that failed (in input order) raises its TaskError after all have ended.
        """
        results: list[Any] = []
        first_error: BaseException | None = None
        for task in self._stream(func, iterables, chunksize, modules, dep_funcs, data_files,
                                 timeout):
            with self._lock:
                try:
                    value = self._take(task)
                except TaskError as exc:
                    first_error = first_error or exc
                    continue
            if first_error is None:
                if chunksize == 1:
                    results.append(value)
                else:
                    results.extend(value)
        if first_error is not None:
            raise first_error
        return results

    def submit_many(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        *,
        modules: Sequence[str] = (),
        dep_funcs: Sequence[Callable[..., Any]] = (),
        data_files: Sequence[str | os.PathLike[str]] = (),
    ) -> list[Task]:
        """Submit ``func(x)`` for every x: the function is pickled once for all of them.

        Tasks go to the interface in chunks of ``SUBMIT_CHUNK`` as they are encoded, so an
        engine can start on the first (BOINC: create their work units) while the last are
        still being encoded. An item that cannot be encoded raises TaskError and nothing of its
        chunk is submitted (a short iterable is all or nothing); earlier chunks run, and their
        tasks are this master's as usual.
        """
        self._check_open()
        shared: dict[str, bytes] = {}
        function_blob = self._pickle_function(func, shared, dep_funcs)
        files = self._read_files(data_files)
        name = getattr(func, "__qualname__", "function")
        items = iter(iterable)
        tasks: list[Task] = []
        while chunk := list(itertools.islice(items, SUBMIT_CHUNK)):
            # encode the whole chunk before handing any of it over: a task that cannot be
            # encoded must not leave its predecessors registered with no engine running them
            encoded = []
            for item in chunk:
                task = self._new_task(name)
                encoded.append((task, self._encode(
                    task, func, input_data=(item,), modules=modules, dep_funcs=dep_funcs,
                    data_files=files, function_blob=function_blob, shared=shared)))
            self._hand_over(encoded, shared)
            tasks += [task for task, _ in encoded]
        return tasks

    # --- collecting --------------------------------------------------------------------------

    def _absorb(self, completion: Completion, kept_trusted: bool | None = None) -> None:
        """Take in one completion (lock held); a result goes into the checkpoint. A record the
        checkpoint held comes with ``kept_trusted``: whether trusted workers made it."""
        task = self._live.get(completion.task_id)
        if task is None or _ended(task):
            if task is None and completion.task_id in self._earlier:
                self._earlier.hold(completion)  # until a task with its content claims it
            return  # not ours, cancelled, or a duplicate report: each result is taken once
        if completion.started:
            if task._state is TaskState.SUBMITTED:
                self._move(task, TaskState.RUNNING)
                task.worker = completion.worker or None
                task.start_time = time.time()
                events.emit("started", task)
            return
        if completion.record is None:
            blob = self._blobs.get(task.task_id)
            if completion.retryable and blob is not None and task.attempts <= self.retries:
                task.attempts += 1
                self._move(task, TaskState.SUBMITTED)  # queued again: no worker has it
                self.interface.submit(task.task_id, blob)
                return
            task.worker = completion.worker or None
            task.stderr = completion.stderr
            if completion.attempts > 1:  # the engine tried it on several workers (BOINC)
                task.attempts += completion.attempts - 1
            self._finish(
                task,
                error=WorkerLost(task, completion.error_type or "WorkerLost",
                                 completion.failure or "the engine lost it"),
            )
            return
        try:
            record = completion.header or encoding.decode_result_header(completion.record)
        except encoding.EncodingError as exc:
            self._finish(task, error=TaskError(task, "EncodingError", str(exc)))
            return
        task.worker = record.worker or completion.worker or None
        task.start_time = record.started or None
        task.finish_time = record.finished or None
        task.stdout, task.stderr = record.stdout, record.stderr
        trusted = self.interface.trusted and kept_trusted is not False
        if record.ok:
            try:
                value = encoding.decode_value(record, trusted=trusted)
            except Exception as exc:
                self._finish(task, error=TaskError(task, "EncodingError",
                                                   f"cannot decode the result: {exc}"))
                return
            if kept_trusted is None and self.checkpoint is not None and completion.record:
                self.checkpoint.put(task.digest, completion.record, trusted)
            self._finish(task, result=value)
            return
        error_class = {"version": PythonVersionMismatch,
                       "signature": TaskSignatureError}.get(record.error_kind, TaskError)
        original = encoding.decode_exception(record, trusted=trusted)
        remote_traceback = self._code_places.restore(record.error_traceback)
        error = error_class(task, record.error_type, record.error_message, remote_traceback,
                            original)
        if remote_traceback:
            error.__cause__ = RemoteTraceback(remote_traceback)
        self._finish(task, error=error)

    def _finish(self, task: Task, result: Any = None, error: BaseException | None = None,
                state: TaskState | None = None) -> None:
        state = state or (TaskState.FAILED if error is not None else TaskState.DONE)
        self._move(task, state)
        if state is not TaskState.CANCELLED:
            tally.add(finished=1)
        task._result, task._error = result, error
        if task.finish_time is None:
            task.finish_time = time.time()
        self._blobs.pop(task.task_id, None)
        self._release_shared(task.task_id)
        if state is not TaskState.CANCELLED:  # a cancelled task is nobody's result
            self._uncollected[task.task_id] = task
            if task.task_id in self._from_earlier:
                self._from_earlier.discard(task.task_id)
                self.reused += 1
            else:
                self.computed += 1
        for watch in self._watches:
            if task.task_id in watch.wanted:
                watch.finished.append(task)
        events.emit("finished", task)

    def _move(self, task: Task, state: TaskState) -> None:
        """Change a task's state, and the counts with it (lock held)."""
        self._counts[task._state] -= 1
        self._counts[state] += 1
        task.state = state

    def _wait_until(self, ready: Callable[[], R | None], deadline: float | None,
                    timed_out: Callable[[], BaseException]) -> R:
        """Take completions until ``ready()`` (called with the lock held) gives something.

        One caller at a time waits on the interface; the others wait for it to signal. Whatever
        the interface already received is taken in before a timeout is raised, so a zero timeout
        (a poll) sees every task that finished before it was asked.
        """
        looked = False  # this caller took in what the interface held, since the deadline or not
        while True:
            with self._cond:
                found = ready()
                if found is not None:
                    return found
                if self._closed:
                    raise TaskError(None, "RuntimeError", "this master was cleaned up")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0 and (looked or self._pumping):
                    # a caller pumping hands over what came as soon as it comes
                    raise timed_out()
                slice_ = PUMP_SLICE_SECONDS if remaining is None else max(
                    0.0, min(remaining, PUMP_SLICE_SECONDS))
                if self._pumping:
                    self._cond.wait(slice_)
                    continue
                self._pumping = True
            completions: list[Completion] = []
            looked = True
            try:
                completions = self.interface.wait(slice_)
            finally:
                with self._cond:
                    # still pumping while absorbing: a listener reading a task's state must not
                    # start another look at the interface from inside this one
                    for completion in completions:
                        self._absorb(completion)
                    del completions
                    self._pumping = False
                    self._cond.notify_all()

    def _pump_now(self) -> None:
        """Take in whatever completions are there, without waiting (unless another caller is)."""
        with self._cond:
            if self._pumping or self._closed:
                return
            self._pumping = True
        completions: list[Completion] = []
        try:
            completions = self.interface.wait(0.0)
        finally:
            with self._cond:
                for completion in completions:
                    self._absorb(completion)
                self._pumping = False
                self._cond.notify_all()

    def _look_for_state(self) -> None:
        """A task's state is being read: take in what the interface holds. Where that look is a
        query (HTCondor asks its schedd) it is made again only after 100 times as long as it
        took, so a loop reading states spends about 1% of its time on it; an interface whose
        look takes under a millisecond (local, MPI: a queue) is looked at every time."""
        start = time.monotonic()
        if start < self._next_state_look:
            return
        self._pump_now()
        took = time.monotonic() - start
        self._next_state_look = start + 100 * took if took > STATE_LOOK_CHEAP_SECONDS else 0.0

    def _pick(self, wanted: Task | Sequence[Task] | None) -> Task | None:
        if wanted is None:
            return next(iter(self._uncollected.values()), None)
        if isinstance(wanted, Task):
            return wanted if _ended(wanted) else None
        for task in wanted:
            if _ended(task) and not task.collected and task._state is not TaskState.CANCELLED:
                return task
        return None

    def get_result(
        self, task: Task | Sequence[Task] | None = None, timeout: float | None = None
    ) -> tuple[Task, Any]:
        """Wait for a task and return ``(task, result)``; a task that raised raises TaskError.

        ``task`` None: any finished task not yet collected. A Task: that one. A list: one of them.
        ``timeout`` seconds without one raises TaskTimeout; nothing is lost, ask again later.
        A result is handed back once: the master then keeps nothing of it.
        """
        with self._lock:
            if isinstance(task, Task):
                if task._state is TaskState.CANCELLED:
                    assert task._error is not None
                    raise task._error
                if task.collected:
                    raise TaskError(task, "LookupError",
                                    f"task {task.task_id} was collected already")
                if task.task_id not in self._live:
                    raise TaskError(task, "KeyError", "that task was not submitted to this master")
            elif task is None:
                if not self._uncollected and not self._outstanding():
                    raise TaskError(None, "LookupError", "no task is outstanding")
            elif not any(not t.collected and t._state is not TaskState.CANCELLED for t in task):
                raise TaskError(None, "LookupError",
                                "every one of these tasks was collected already")
        deadline = None if timeout is None else time.monotonic() + timeout

        def ready() -> Task | None:
            found = self._pick(task)
            if found is None and task is None and not self._outstanding():
                raise TaskError(None, "LookupError", "no task is outstanding")
            return found

        while True:
            found = self._wait_until(
                ready, deadline,
                lambda: TaskTimeout(f"no task finished within {timeout:g} s"))
            with self._lock:
                if found.collected:
                    continue  # another thread took it first
                return found, self._take(found)

    def cancel(self, task: Task) -> bool:
        """Give up a task that has not finished: dropped if queued, its worker replaced if it is
        running (a hung task). True if it was cancelled; get_result(task) then raises
        TaskCancelled."""
        with self._lock:
            if _ended(task) or task.task_id not in self._live:
                return False
            self._live.pop(task.task_id, None)
            try:
                self.interface.cancel(task.task_id)
            finally:
                self._finish(task, error=TaskCancelled(task, "TaskCancelled",
                                                       "the task was cancelled"),
                             state=TaskState.CANCELLED)
                self._cond.notify_all()
            return True

    def as_completed(
        self,
        tasks: Sequence[Task] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Task]:
        """Yield tasks as they finish (done or failed); check ``task.state``, then get_result."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # one pass over the tasks; after that _finish tells the watch which of them finished,
        # so a wait costs the same with 100,000 tasks outstanding as with ten
        with self._lock:
            pending = list(self._live.values()) if tasks is None else list(tasks)
            waiting = {t.task_id: t for t in pending}
            watch = _Watch(set(waiting))
            ready = [t for t in pending if _ended(t)]
            self._watches.append(watch)
        try:
            while waiting:
                for task in ready:
                    if waiting.pop(task.task_id, None) is not None:
                        yield task
                if not waiting:
                    return
                ready = self._wait_until(
                    watch.take, deadline,
                    lambda: TaskTimeout(f"{len(waiting)} task(s) still running after the timeout"))
        finally:
            with self._lock:
                self._watches.remove(watch)

    def _outstanding(self) -> int:
        return self._counts[TaskState.SUBMITTED] + self._counts[TaskState.RUNNING]

    # --- status ------------------------------------------------------------------------------

    def get_status(self) -> Status:
        """Counts of tasks by state (all this master ran), and per-worker figures."""
        self._pump_now()
        with self._lock:
            counts = {state.value: self._counts[state] for state in TaskState}
        return Status(
            interface=self.interface.name,
            counts=counts,
            workers=[w.__dict__ for w in self.interface.workers()],
        )

    def get_progress(self) -> Progress:
        self._pump_now()
        with self._lock:
            return Progress(done=self._counts[TaskState.DONE],
                            failed=self._counts[TaskState.FAILED], total=self._total)

    @property
    def tasks(self) -> list[Task]:
        """The tasks not yet collected (the master keeps no others)."""
        with self._lock:
            return list(self._live.values())

    # --- ending ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TaskError(None, "RuntimeError", "this master was cleaned up")

    def cleanup(self) -> None:
        """Stop the workers; safe to call twice. Results already collected stay with the caller;
        asking for any other result then raises TaskError.

        On a durable engine a clean end settles the run: the earlier master's tasks nobody
        submitted again are cancelled (one line says how many), and the results kept for a
        re-run go, unless the end is a ``stop`` (then they stay for the next run) or the
        interface keeps its work (BOINC's ``keep=yes``).
        """
        stopping = _stopping.is_set()
        if stopping and self._own_results:
            self._pump_now()  # what came in before the stop is kept for the next run
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        unclaimed = len(self._earlier)
        keep = bool(getattr(self.interface, "keep", False))
        try:
            self.interface.close()
        finally:
            _live_masters.discard(self)
        if unclaimed:
            print(f"pymw: {unclaimed} task(s) an earlier master left were not submitted again: "
                  + ("kept for a later run (keep=yes)" if keep else "cancelled"),
                  file=sys.stderr, flush=True)
        if self._state_dir is not None and not keep and not stopping:
            if self._own_results:
                clear_results(self._state_dir)
            if self._content_index is not None:
                self._content_index.clear()
        self._report_reuse()

    def _report_reuse(self) -> None:
        """How many results came from an earlier master and how many were computed anew: one
        line when any was reused, and the run's ``reuse`` file for ``pymw-admin runs``."""
        if self.reused:
            print(f"pymw: {self.reused} result(s) from an earlier master, {self.computed} "
                  "computed anew", file=sys.stderr, flush=True)
        run_dir = os.environ.get(RUN_DIR_ENV)
        if run_dir and self._state_dir is not None:
            with contextlib.suppress(OSError):
                Path(run_dir, REUSE_FILE).write_text(f"{self.reused} {self.computed}\n")


PyMW_Master = Master
