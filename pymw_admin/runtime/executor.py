"""``PyMWExecutor``: a ``concurrent.futures.Executor`` over a Master, on any interface.

    with PyMWExecutor(num_workers=4) as pool:          # or interface="mpi", "condor", ...
        future = pool.submit(fn, 1, 2, key=3)
        print(future.result())                          # re-raises the task's own exception
        print(list(pool.map(fn, range(100), chunksize=10)))

One collector thread takes results from the master and settles the futures. A task whose
exception can be rebuilt on the master re-raises that exception; otherwise the TaskError.
``Future.cancel()`` succeeds while the task is pending (not yet finished) and cancels the task.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

from pymw_admin.interfaces.base import Interface
from pymw_admin.runtime.errors import TaskError, TaskTimeout
from pymw_admin.runtime.master import Master
from pymw_admin.runtime.task import Task

COLLECT_SLICE_SECONDS = 0.5


def _call_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    return [fn(*args) for args in chunk]


class PyMWExecutor(Executor):
    def __init__(self, interface: Interface | str | None = None,
                 num_workers: int | None = None, *, master: Master | None = None,
                 **master_options: Any) -> None:
        """A pool on its own Master (``interface``, ``num_workers``, Master's options), or on
        ``master``, which it then shares with its owner and leaves running at shutdown."""
        self._owns_master = master is None
        self.master = master if master is not None else Master(
            interface=interface, num_workers=num_workers, **master_options)
        self._futures: dict[str, tuple[Task, Future[Any]]] = {}
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._shutdown = False
        self._collector = threading.Thread(target=self._collect, daemon=True,
                                           name="pymw-executor")
        self._collector.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future[Any] = Future()
        task = self.master.submit_task(fn, args, kwargs=kwargs)
        with self._work:
            self._futures[task.task_id] = (task, future)
            self._work.notify()
        future.add_done_callback(lambda f: self._cancelled(f, task))
        return future

    def _cancelled(self, future: Future[Any], task: Task) -> None:
        if future.cancelled():
            self.master.cancel(task)
            with self._lock:
                self._futures.pop(task.task_id, None)

    def _collect(self) -> None:
        while True:
            with self._work:
                while not self._futures:
                    if self._shutdown:
                        return
                    self._work.wait()
                tasks = [task for task, _ in self._futures.values()]
            try:
                task, value = self.master.get_result(tasks, timeout=COLLECT_SLICE_SECONDS)
            except TaskTimeout:
                continue
            except TaskError as exc:
                if exc.task is None:
                    continue  # every one was collected or cancelled meanwhile
                self._settle(exc.task, error=exc.exception or exc)
                continue
            self._settle(task, value=value)

    def _settle(self, task: Task, value: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            entry = self._futures.pop(task.task_id, None)
        if entry is None:
            return
        future = entry[1]
        if not future.set_running_or_notify_cancel():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int = 1) -> Iterator[Any]:
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        calls = zip(*iterables, strict=False)
        chunks = iter(lambda: list(itertools.islice(calls, chunksize)), [])
        results = super().map(_call_chunk, itertools.repeat(fn), chunks, timeout=timeout)
        return itertools.chain.from_iterable(results)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._work:
            self._shutdown = True
            pending = list(self._futures.values())
            self._work.notify()
        if cancel_futures:
            for _, future in pending:
                future.cancel()
        if wait:
            self._collector.join()
        if self._owns_master:
            self.master.cleanup()
