"""The local (multicore) interface: persistent worker processes on this machine.

Each worker is ``python -m pymw_admin.runtime.worker --serve`` talking over its stdin/stdout pipes.
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
from dataclasses import dataclass, field

from pymw_admin.errors import UsageError
from pymw_admin.interfaces.base import Completion, WorkerStats, drain
from pymw_admin.interfaces.serve_child import ServeChild
from pymw_admin.runtime.encoding import decode_result_header
from pymw_admin.runtime.framing import pack_batch, unpack_batch

SHORT_TASK_SECONDS = 0.005  # below this mean run time a worker is fed many tasks at once
DEEP_PREFETCH = 64
SHALLOW_PREFETCH = 2


@dataclass
class _Worker:
    child: ServeChild
    in_flight: dict[str, bytes] = field(default_factory=dict)
    alive: bool = True
    tasks_done: int = 0
    busy_seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.child.name

    def prefetch(self) -> int:
        if self.tasks_done >= 4 and self.busy_seconds / self.tasks_done < SHORT_TASK_SECONDS:
            return DEEP_PREFETCH
        return SHALLOW_PREFETCH


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
        worker = _Worker(ServeChild(f"local-{self._next_index}", self.python))
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
                        header = decode_result_header(blob)
                        worker.in_flight.pop(header.task_id, None)
                        worker.tasks_done += 1
                        worker.busy_seconds += max(0.0, header.finished - header.started)
                        self._completions.put(
                            Completion(header.task_id, record=blob, worker=worker.name)
                        )
                self._dispatch_locked()
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
        if not self._pending:
            return
        for worker in self._workers:
            if not worker.alive:
                continue
            room = worker.prefetch() - len(worker.in_flight)
            if room <= 0:
                continue
            batch: list[bytes] = []
            while self._pending and len(batch) < room:
                task_id, blob = self._pending.popleft()
                worker.in_flight[task_id] = blob
                batch.append(blob)
            if batch:
                worker.child.send(pack_batch(batch))
            if not self._pending:
                return

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
            return [
                WorkerStats(
                    name=w.name,
                    alive=w.alive,
                    tasks_done=w.tasks_done,
                    busy_seconds=w.busy_seconds,
                    in_flight=len(w.in_flight),
                    extra={"pid": w.child.pid},
                )
                for w in self._workers
            ]

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
