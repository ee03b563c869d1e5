"""The PyMW master: submit tasks to an interface, collect their results.

The master is single-threaded from the caller's view: it encodes tasks, hands them to its
interface, and decodes completions whenever the caller asks for a result. It never imports engine
code; interfaces only move task files and result records.
"""

from __future__ import annotations

import atexit
import itertools
import os
import sys
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymw_admin.interfaces import make_interface
from pymw_admin.interfaces.base import (
    BatchSubmitting,
    Completion,
    Detachable,
    Interface,
    Resumable,
)
from pymw_admin.runtime import events, options
from pymw_admin.runtime.errors import (
    PythonVersionMismatch,
    RemoteTraceback,
    TaskError,
    TaskTimeout,
    WorkerLost,
)
from pymw_admin.runtime.task import Task, TaskState
from pymw_admin.wire import encoding

Executable = Callable[..., Any] | str | os.PathLike[str]


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


_live_masters: weakref.WeakSet[Master] = weakref.WeakSet()


_ended_by_exception = False
_previous_excepthook = sys.excepthook


def _note_uncaught(*info: Any) -> None:
    """A script ending on an uncaught exception: masters not ended by ``with`` detach at exit."""
    global _ended_by_exception
    _ended_by_exception = True
    _previous_excepthook(*info)


sys.excepthook = _note_uncaught


@atexit.register
def _cleanup_at_exit() -> None:
    for master in list(_live_masters):
        if _ended_by_exception:
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
    """

    def __init__(
        self,
        interface: Interface | str | None = None,
        *,
        num_workers: int | None = None,
        retries: int = 1,
        use_state_dir: bool = False,  # accepted for PyMW compatibility; state lives in memory
    ) -> None:
        if interface is None:  # the environment's choice, project directory and all
            interface = options.interface_from_environment(num_workers=num_workers)
        elif isinstance(interface, str):
            interface = make_interface(interface, num_workers=num_workers)
        self.interface: Interface = interface
        # the capability is looked up once: acknowledging runs once a task
        self._acknowledge = interface.acknowledge if isinstance(interface, Resumable) else None
        self.retries = retries
        self._tasks: dict[str, Task] = {}
        self._blobs: dict[str, bytes] = {}  # kept until the task ends, for retries
        self._uncollected: OrderedDict[str, Task] = OrderedDict()
        self._prefix = uuid.uuid4().hex[:8]
        self._counter = itertools.count(1)
        self._closed = False
        self.resumed: list[Task] = []  # tasks adopted from an earlier master (resume)
        _live_masters.add(self)
        self._adopt_resumed_tasks()

    def _adopt_resumed_tasks(self) -> None:
        if not isinstance(self.interface, Resumable):
            return
        for task_id, name in self.interface.resumed_tasks():
            task = Task(task_id=task_id, name=name, state=TaskState.SUBMITTED, attempts=1)
            self._tasks[task_id] = task  # no task file here: an adopted task is not retried
            self.resumed.append(task)

    def _hand_back(self, task: Task) -> None:
        """The caller now has this task's outcome: mark it collected, tell a resumable engine
        (once: asking again for a collected task hands it back without a second acknowledgement).
        """
        if task.collected:
            return
        task.collected = True
        self._uncollected.pop(task.task_id, None)
        if self._acknowledge is not None:
            self._acknowledge(task.task_id)

    # --- context manager ---------------------------------------------------------------------

    def __enter__(self) -> Master:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self._detach_or_cleanup()
        self.cleanup()

    def _detach_or_cleanup(self) -> None:
        """An exception or Ctrl-C ends the master: a resumable engine keeps its tasks for the
        next master (``detach``); any other is cleaned up."""
        if not isinstance(self.interface, Detachable) or self._closed:
            self.cleanup()
            return
        self._closed = True
        _live_masters.discard(self)
        self.interface.detach()

    # --- submitting --------------------------------------------------------------------------

    def _new_task(self, name: str) -> Task:
        return Task(task_id=f"{self._prefix}-{next(self._counter)}", name=name)

    def _encode(
        self,
        task: Task,
        executable: Executable,
        input_data: Sequence[Any],
        modules: Sequence[str],
        dep_funcs: Sequence[Callable[..., Any]],
        files: dict[str, bytes],
        function_blob: bytes | None = None,
    ) -> bytes:
        """A task file for ``task``; whatever cannot be encoded is a TaskError naming the task."""
        try:
            return encoding.encode_task(task.task_id, executable, input_data, modules, dep_funcs,
                                        files, function_blob=function_blob)
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

    def _forget(self, tasks: Iterable[Task]) -> None:
        """Tasks the interface refused: never counted as outstanding, so nothing waits for them."""
        for task in tasks:
            self._tasks.pop(task.task_id, None)
            self._blobs.pop(task.task_id, None)
            task.state = TaskState.QUEUED

    def _hand_over(self, task: Task, blob: bytes) -> None:
        self._tasks[task.task_id] = task
        self._blobs[task.task_id] = blob
        task.state = TaskState.SUBMITTED
        task.submit_time = time.time()
        task.attempts = 1
        events.emit("submitted", task)

    def submit_task(
        self,
        executable: Executable,
        input_data: Sequence[Any] = (),
        modules: Sequence[str] = (),
        dep_funcs: Sequence[Callable[..., Any]] = (),
        data_files: Sequence[str | os.PathLike[str]] = (),
    ) -> Task:
        """Queue ``executable(*input_data)`` (or the script at that path) and return its Task."""
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
        blob = self._encode(task, executable, input_data, modules, dep_funcs,
                            self._read_files(data_files))
        self._hand_over(task, blob)
        try:
            self.interface.submit(task.task_id, blob)
        except BaseException:
            self._forget([task])
            raise
        return task

    def map(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        *,
        modules: Sequence[str] = (),
        dep_funcs: Sequence[Callable[..., Any]] = (),
        data_files: Sequence[str | os.PathLike[str]] = (),
        timeout: float | None = None,
    ) -> list[Any]:
        """``[func(x) for x in iterable]`` on the workers, in input order.

        The first task that failed (in input order) raises its TaskError after all have ended.
        """
        tasks = self.submit_many(func, iterable, modules=modules, dep_funcs=dep_funcs,
                                 data_files=data_files)
        for _ in self.as_completed(tasks, timeout=timeout):
            pass
        results = []
        for task in tasks:
            self._hand_back(task)
        for task in tasks:
            if task._error is not None:
                raise task._error
            results.append(task._result)
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
        """Submit ``func(x)`` for every x: the function is pickled once for all of them."""
        self._check_open()
        function_blob = encoding.pickle_function(func)
        files = self._read_files(data_files)
        name = getattr(func, "__qualname__", "function")
        # encode everything before handing anything over: a task that cannot be encoded must
        # not leave its predecessors registered with no engine running them
        encoded = []
        for item in iterable:
            task = self._new_task(name)
            encoded.append((task, self._encode(task, func, (item,), modules, dep_funcs, files,
                                               function_blob)))
        for task, blob in encoded:
            self._hand_over(task, blob)
        tasks = [task for task, _ in encoded]
        batch = [(task.task_id, blob) for task, blob in encoded]
        try:
            if isinstance(self.interface, BatchSubmitting):
                self.interface.submit_many(batch)
            else:
                for task_id, blob in batch:
                    self.interface.submit(task_id, blob)
        except BaseException:
            self._forget(tasks)
            raise
        return tasks

    # --- collecting --------------------------------------------------------------------------

    def _absorb(self, completion: Completion) -> None:
        task = self._tasks.get(completion.task_id)
        if task is None or task.finished:
            return  # not ours, or a duplicate report: each result is taken once
        if completion.record is None:
            blob = self._blobs.get(task.task_id)
            if completion.retryable and blob is not None and task.attempts <= self.retries:
                task.attempts += 1
                self.interface.submit(task.task_id, blob)
                return
            self._finish(
                task,
                error=WorkerLost(task, completion.error_type or "WorkerLost",
                                 completion.failure or "the engine lost it"),
            )
            task.worker = completion.worker or None
            task.stderr = completion.stderr
            return
        try:
            record = encoding.decode_result_header(completion.record)
        except encoding.EncodingError as exc:
            self._finish(task, error=TaskError(task, "EncodingError", str(exc)))
            return
        task.worker = record.worker or completion.worker or None
        task.start_time = record.started or None
        task.finish_time = record.finished or None
        task.stdout, task.stderr = record.stdout, record.stderr
        trusted = self.interface.trusted
        if record.ok:
            try:
                value = encoding.decode_value(record, trusted=trusted)
            except Exception as exc:
                self._finish(task, error=TaskError(task, "EncodingError",
                                                   f"cannot decode the result: {exc}"))
                return
            self._finish(task, result=value)
            return
        error_class = PythonVersionMismatch if record.error_kind == "version" else TaskError
        original = encoding.decode_exception(record, trusted=trusted)
        error = error_class(
            task, record.error_type, record.error_message, record.error_traceback, original
        )
        if record.error_traceback:
            error.__cause__ = RemoteTraceback(record.error_traceback)
        self._finish(task, error=error)

    def _finish(self, task: Task, result: Any = None, error: BaseException | None = None) -> None:
        task.state = TaskState.FAILED if error is not None else TaskState.DONE
        task._result, task._error = result, error
        if task.finish_time is None:
            task.finish_time = time.time()
        self._blobs.pop(task.task_id, None)
        self._uncollected[task.task_id] = task
        events.emit("finished", task)

    def _pump(self, deadline: float | None) -> bool:
        """Take in completions until one arrives or the deadline passes; False on time-out."""
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        completions = self.interface.wait(remaining)
        for completion in completions:
            self._absorb(completion)
        return bool(completions)

    def _pick(self, wanted: Task | Sequence[Task] | None) -> Task | None:
        if wanted is None:
            for task in self._uncollected.values():
                return task
            return None
        if isinstance(wanted, Task):
            return wanted if wanted.finished else None
        for task in wanted:
            if task.finished and not task.collected:
                return task
        return None

    def get_result(
        self, task: Task | Sequence[Task] | None = None, timeout: float | None = None
    ) -> tuple[Task, Any]:
        """Wait for a task and return ``(task, result)``; a task that raised raises TaskError.

        ``task`` None: any finished task not yet collected. A Task: that one. A list: one of them.
        ``timeout`` seconds without one raises TaskTimeout; nothing is lost, ask again later.
        """
        if isinstance(task, Task) and task.task_id not in self._tasks:
            raise TaskError(task, "KeyError", "that task was not submitted to this master")
        if task is None and not self._uncollected and not self._outstanding():
            raise TaskError(None, "LookupError", "no task is outstanding")
        if (not isinstance(task, Task) and task is not None
                and not any(not t.finished or not t.collected for t in task)):
            raise TaskError(None, "LookupError", "every one of these tasks was collected already")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self._pick(task)
            if found is not None:
                self._hand_back(found)
                if found._error is not None:
                    raise found._error
                return found, found._result
            if not self._pump(deadline) and deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeout(f"no task finished within {timeout:g} s")

    def as_completed(
        self,
        tasks: Sequence[Task] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Task]:
        """Yield tasks as they finish (done or failed); check ``task.state``, then get_result."""
        pending = list(self._tasks.values()) if tasks is None else list(tasks)
        deadline = None if timeout is None else time.monotonic() + timeout
        waiting = {t.task_id: t for t in pending}
        while waiting:
            for task_id in [i for i, t in waiting.items() if t.finished]:
                yield waiting.pop(task_id)
            if not waiting:
                return
            if not self._pump(deadline) and deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeout(f"{len(waiting)} task(s) still running after the timeout")

    def _outstanding(self) -> int:
        return sum(1 for t in self._tasks.values() if not t.finished)

    # --- status ------------------------------------------------------------------------------

    def get_status(self) -> Status:
        """Counts of tasks by state, and per-worker figures from the interface."""
        self._pump(0.0)
        counts = {state.value: 0 for state in TaskState}
        for task in self._tasks.values():
            counts[task.state.value] += 1
        return Status(
            interface=self.interface.name,
            counts=counts,
            workers=[w.__dict__ for w in self.interface.workers()],
        )

    def get_progress(self) -> Progress:
        self._pump(0.0)
        done = sum(1 for t in self._tasks.values() if t.state is TaskState.DONE)
        failed = sum(1 for t in self._tasks.values() if t.state is TaskState.FAILED)
        return Progress(done=done, failed=failed, total=len(self._tasks))

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    # --- ending ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TaskError(None, "RuntimeError", "this master was cleaned up")

    def cleanup(self) -> None:
        """Stop the workers; safe to call twice. Results already collected stay with their tasks."""
        if self._closed:
            return
        self._closed = True
        self.interface.close()
        _live_masters.discard(self)


PyMW_Master = Master
