"""The local (multicore) interface: persistent worker processes on this machine.

Each worker is ``python -m pymw_admin.worker.run --serve`` talking over its stdin/stdout pipes.
A worker is fed several tasks at a time while tasks are short (so no-op tasks are not bound by round
trips) and at most two while they are long; what a busy worker holds but has not started is
taken back when another worker idles (worker_load). A worker that dies is replaced: the task it
was running comes back as a retryable failure (the master decides), the others it held are dealt
again.
Shared blobs (``put_shared``) are sent to a worker once, before the first task that needs them.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from pymw_admin.errors import UsageError
from pymw_admin.interfaces.base import Completion, WorkerStats, drain
from pymw_admin.interfaces.serve_child import ServeChild
from pymw_admin.interfaces.worker_load import (
    SHORT_TASK_SECONDS,
    WorkerLoad,
    deal,
    to_revoke,
    where,
)
from pymw_admin.wire.framing import (
    DIGEST_SIZE,
    FORGET_MAGIC,
    REVOKE_MAGIC,
    REVOKED_MAGIC,
    ids_record,
    pack_batch,
    read_ids,
    shared_ahead_frame,
    shared_frame,
    unpack_batch,
)

RECENT_SHARED_BYTES = 256 << 20


@dataclass(kw_only=True)
class _Worker(WorkerLoad):
    child: ServeChild
    receiving: int = 0  # large blobs queued for it and not yet written down its pipe


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
        self._suspects: deque[tuple[str, bytes]] = deque()  # held by a worker that died
        self._workers: list[_Worker] = []
        self._completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._shared: dict[str, bytes] = {}
        # blobs no task needs now, left on the workers in case the next tasks need them again
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._cancelled: set[str] = set()  # held by a worker when cancelled: drop, never requeue
        self._imbalance = threading.Event()
        self._closed = False
        self._started = False
        self._next_index = 0
        # how many workers are sent a large blob at once: about one per two cores, as each copy
        # keeps two processes busy (the writing thread here, the reading worker)
        self._blob_gate = threading.Semaphore(max(1, (os.cpu_count() or 2) // 2))

    # --- workers ---------------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        self._next_index += 1
        name = f"local-{self._next_index}"
        worker = _Worker(name=name, child=ServeChild(name, self.python, self._blob_gate))
        threading.Thread(target=self._reader, args=(worker,), daemon=True,
                         name=worker.name).start()
        return worker

    def _start(self) -> None:
        self._started = True
        self._workers = [self._spawn() for _ in range(self.num_workers)]
        threading.Thread(target=self._balancer, daemon=True, name="local-balancer").start()

    def _reader(self, worker: _Worker) -> None:
        while (bodies := worker.child.read_frames()) is not None:
            self._take_frames(worker, bodies)
            del bodies  # hold no result while waiting for the next
        worker.child.close_output()  # the reader owns the output: closed once reading is over
        self._on_death(worker)

    def _take_frames(self, worker: _Worker, bodies: list[bytes]) -> None:
        with self._lock:
            for body in bodies:
                for blob in unpack_batch(body):
                    self._take(worker, blob)
            self._dispatch_locked()

    def _take(self, worker: _Worker, blob: bytes) -> None:
        notices = worker.started(blob, self._cancelled)
        if notices is not None:
            for notice in notices:
                self._completions.put(notice)
            return
        given_back = read_ids(REVOKED_MAGIC, blob)
        if given_back is None:
            completion = worker.finished(blob)
            if completion.task_id not in self._cancelled:
                self._completions.put(completion)
            self._cancelled.discard(completion.task_id)
            return
        back = worker.revoked(given_back)
        self._pending.extendleft(reversed([t for t in back if t[0] not in self._cancelled]))
        self._cancelled.difference_update(given_back)

    def _on_death(self, worker: _Worker) -> None:
        how = worker.child.reason()
        with self._lock:
            worker.alive = False
            worker.child.close_input()
            if self._closed:
                return
            running, suspects = worker.lost()
            if running is not None and running not in self._cancelled:
                self._completions.put(
                    Completion(
                        running,
                        failure=f"worker {worker.name} (pid {worker.child.pid}) {how} "
                        "while running the task",
                        worker=worker.name,
                    )
                )
            self._cancelled.discard(running or "")
            self._suspects.extend(t for t in suspects if t[0] not in self._cancelled)
            self._cancelled.difference_update(t[0] for t in suspects)
            replacement = self._spawn()
            self._workers[self._workers.index(worker)] = replacement
            self._dispatch_locked()

    def _send_blob_locked(self, worker: _Worker, parts: Sequence[object]) -> None:
        """Queue a large blob's frame for a worker, which counts as receiving until the blob is
        written (its digest may follow): tasks are dealt to workers not receiving, so none waits
        behind a transfer while another worker could start it."""
        worker.receiving += 1

        def written() -> None:
            with self._lock:
                worker.receiving -= 1
                if not self._closed and not worker.receiving:
                    self._dispatch_locked()

        worker.child.send_parts(list(parts), written)

    def _ready_locked(self) -> list[_Worker]:
        """The workers to deal tasks to: those not receiving a blob (a task dealt to one would
        wait behind the transfer; when it ends, tasks are dealt again)."""
        return [w for w in self._workers if w.alive and not w.receiving]

    def _dispatch_locked(self) -> None:
        ready = self._ready_locked()
        for worker, blobs in deal(ready, self._pending, self._suspects):
            for digest in worker.shared_to_send(blobs):
                blob = self._shared.get(digest) or self._recent.get(digest)
                if blob is not None:  # else the task file carries it inline
                    self._send_blob_locked(worker, shared_frame(digest, blob))
                    worker.shared_bytes_sent += len(blob)
            worker.child.send(pack_batch(blobs))
        if not self._pending:
            for worker, ask in to_revoke(self._workers, idle=ready):
                worker.child.send(pack_batch([ask]))
        if any(w.alive and not w.in_flight for w in ready) and any(
                len(w.in_flight) > 1 for w in self._workers):
            self._imbalance.set()  # a worker idles while another holds queued tasks: look again

    def _balancer(self) -> None:
        """Deal again while a worker idles beside one holding queued tasks: a worker only counts
        as stuck after a short silence, which no event may follow."""
        while not self._closed:
            self._imbalance.wait()
            time.sleep(SHORT_TASK_SECONDS * 2)
            with self._lock:
                self._imbalance.clear()
                if not self._closed:
                    self._dispatch_locked()

    # --- the Interface protocol ------------------------------------------------------------------

    def submit(self, task_id: str, task_file: bytes) -> None:
        self.submit_many([(task_id, task_file)])

    def submit_many(self, tasks: list[tuple[str, bytes]]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the local interface is closed")
            if not self._started:
                self._start()
            self._pending.extend(tasks)
            self._dispatch_locked()

    def put_shared(self, digest: str, blob: bytes) -> None:
        with self._lock:
            self._recent.pop(digest, None)
            self._shared[digest] = blob

    def known_digest(self, blob: bytes) -> str | None:
        with self._lock:
            for digest, held in itertools.chain(self._shared.items(), self._recent.items()):
                if held is blob:
                    return digest
        return None

    def send_ahead(self, blob: bytes) -> Callable[[str | None], None]:
        """Start writing a large blob to every worker now, its digest last: the master hashes
        it meanwhile (on another core). Each worker gets it once, as through put_shared."""
        digest_part: Future[bytes] = Future()
        with self._lock:
            if self._closed:
                return lambda digest: None
            if not self._started:
                self._start()
            workers = [w for w in self._workers if w.alive]
            for worker in workers:
                self._send_blob_locked(worker, shared_ahead_frame(memoryview(blob), digest_part))

        def named(digest: str | None) -> None:
            digest_part.set_result((digest or "0" * DIGEST_SIZE).encode())
            with self._lock:
                for worker in workers:
                    if digest is None:  # the hash failed: the workers drop what they got
                        worker.child.send(pack_batch([FORGET_MAGIC + b"0" * DIGEST_SIZE]))
                        continue
                    worker.has_shared.add(digest)
                    worker.shared_bytes_sent += len(blob)
                if digest is not None and digest not in self._shared:
                    # kept as a recent blob until a task needs it (put_shared), so that the
                    # workers are told to forget it if none ever does
                    self._recent[digest] = blob
                    self._forget_old_locked()

        return named

    def drop_shared(self, digest: str) -> None:
        """No task needs this blob now: the workers keep it while the recent ones fit in
        RECENT_SHARED_BYTES (a loop of one task at a time sends it once), then forget it."""
        with self._lock:
            blob = self._shared.pop(digest, None)
            if blob is None:
                return
            self._recent[digest] = blob
            self._forget_old_locked()

    def _forget_old_locked(self) -> None:
        while sum(len(b) for b in self._recent.values()) > RECENT_SHARED_BYTES:
            old, _ = self._recent.popitem(last=False)
            for worker in self._workers:
                if old in worker.has_shared:
                    worker.has_shared.discard(old)
                    worker.child.send(pack_batch([FORGET_MAGIC + old.encode()]))

    def wait(self, timeout: float | None) -> list[Completion]:
        return drain(self._completions, timeout)

    def cancel(self, task_id: str) -> None:
        """Drop a pending task, take back a dealt one, or replace the worker running it."""
        with self._lock:
            before = len(self._pending) + len(self._suspects)
            self._pending = deque(t for t in self._pending if t[0] != task_id)
            self._suspects = deque(t for t in self._suspects if t[0] != task_id)
            if len(self._pending) + len(self._suspects) != before:
                return
            worker, running = where(self._workers, task_id)
            if worker is None:
                return
            self._cancelled.add(task_id)
            if running:
                worker.child.kill()  # a hung task ends only with its process; it is replaced
            else:
                worker.revoking.add(task_id)
                worker.child.send(pack_batch([ids_record(REVOKE_MAGIC, [task_id])]))

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
            self._imbalance.set()
            workers = list(self._workers)
            self._pending.clear()
            self._shared.clear()
            self._recent.clear()
            for w in workers:
                if w.in_flight:
                    w.child.kill()  # its tasks are abandoned with the master: don't wait for them
        deadline = time.monotonic() + 2.0
        for w in workers:
            w.child.stop(grace=max(0.05, deadline - time.monotonic()))


def build(num_workers: int | None = None, **_: object) -> LocalInterface:
    return LocalInterface(num_workers=num_workers)
