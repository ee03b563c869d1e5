"""The local (multicore) interface: persistent worker processes on this machine.

Each worker is ``python -m pymw_admin.worker.run --serve`` talking over its stdin/stdout pipes.
A worker is fed several tasks at a time while tasks are short (so no-op tasks are not bound by round
trips) and at most two while they are long (so the last tasks don't wait behind a busy worker). A
worker that dies is replaced; its tasks come back as retryable failures and the master decides.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from pymw_admin.errors import UsageError
from pymw_admin.interfaces.base import Completion, WorkerStats, drain
from pymw_admin.interfaces.serve_child import ServeChild
from pymw_admin.interfaces.worker_load import WorkerLoad, deal
from pymw_admin.wire.framing import pack_batch, unpack_batch


@dataclass(kw_only=True)
class _Worker(WorkerLoad):
    child: ServeChild


class LocalInterface:
    name = "local"
    trusted = True

    def __init__(self, num_workers: int | None = None, python: str | None = None) -> None:
        if num_workers is None:
            num_workers = os.cpu_count() or 1
        if num_workers < 1:
            raise UsageError(f"the local interface needs at least 1 worker, not {num_workers}")
        self.num_workers = num_workers
        self.python = python or sys.executable
        self._lock = threading.Lock()
        self._pending: deque[tuple[str, bytes]] = deque()
        self._workers: list[_Worker] = []
        self._completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._closed = False
        self._started = False
        self._next_index = 0

    # --- workers ---------------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        self._next_index += 1
        name = f"local-{self._next_index}"
        worker = _Worker(name=name, child=ServeChild(name, self.python))
        threading.Thread(target=self._reader, args=(worker,), daemon=True,
                         name=worker.name).start()
        return worker

    def _start(self) -> None:
        self._started = True
        self._workers = [self._spawn() for _ in range(self.num_workers)]

    def _reader(self, worker: _Worker) -> None:
        while (bodies := worker.child.read_frames()) is not None:
            with self._lock:
                for body in bodies:
                    for blob in unpack_batch(body):
                        self._completions.put(worker.finished(blob))
                self._dispatch_locked()
        worker.child.close_output()  # the reader owns the output: closed once reading is over
        self._on_death(worker)

    def _on_death(self, worker: _Worker) -> None:
        how = worker.child.reason()
        with self._lock:
            worker.alive = False
            worker.child.close_input()
            if self._closed:
                return
            for task_id in worker.in_flight:
                self._completions.put(
                    Completion(
                        task_id,
                        failure=f"worker {worker.name} (pid {worker.child.pid}) {how} "
                        "while running the task",
                        worker=worker.name,
                    )
                )
            worker.in_flight.clear()
            replacement = self._spawn()
            self._workers[self._workers.index(worker)] = replacement
            self._dispatch_locked()

    def _dispatch_locked(self) -> None:
        for worker, blobs in deal(self._workers, self._pending):
            worker.child.send(pack_batch(blobs))

    # --- the Interface protocol ------------------------------------------------------------------

    def submit(self, task_id: str, task_file: bytes) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the local interface is closed")
            if not self._started:
                self._start()
            self._pending.append((task_id, task_file))
            self._dispatch_locked()

    def submit_many(self, tasks: list[tuple[str, bytes]]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the local interface is closed")
            if not self._started:
                self._start()
            self._pending.extend(tasks)
            self._dispatch_locked()

    def wait(self, timeout: float | None) -> list[Completion]:
        return drain(self._completions, timeout)

    def cancel(self, task_id: str) -> None:
        with self._lock:
            self._pending = deque(t for t in self._pending if t[0] != task_id)

    def workers(self) -> list[WorkerStats]:
        with self._lock:
            return [w.stats(pid=w.child.pid) for w in self._workers]

    def pids(self) -> list[int]:
        return [w.child.pid for w in self._workers if w.alive]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
            self._pending.clear()
            for w in workers:
                if w.in_flight:
                    w.child.kill()  # its tasks are abandoned with the master: don't wait for them
        deadline = time.monotonic() + 2.0
        for w in workers:
            w.child.stop(grace=max(0.05, deadline - time.monotonic()))


def build(num_workers: int | None = None, **_: object) -> LocalInterface:
    return LocalInterface(num_workers=num_workers)
