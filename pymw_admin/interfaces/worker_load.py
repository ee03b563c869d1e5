"""What an interface tracks of one worker: tasks in flight, throughput, how many to feed it.

A worker is fed many tasks at once while its recent tasks were short (so no-op tasks are not bound
by round trips) and at most two while they are long (so the last tasks don't wait behind a busy
one). "Recent" is a moving average, and a worker that has reported nothing for longer than a
short task takes is treated as busy with a long one: a master that switches from short to long
tasks does not pile them onto one worker.

A worker runs the tasks it holds in order, so the first one in ``in_flight`` is the one running.
When a worker is idle and nothing is pending, tasks another (stuck) worker holds but has not
started are revoked from it and dealt again (``to_revoke``): no task waits behind a long one while
a worker idles. A worker's death fails only its running task (``lost``): holding one task, that
is the one; holding several, which one ran is not known (results of short tasks ride together), so
all go back uncharged as *suspects*, each then dealt to a worker holding nothing else.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pymw_admin.interfaces.base import Completion, WorkerStats
from pymw_admin.wire import framing
from pymw_admin.wire.encoding import decode_result_header, task_shared

SHORT_TASK_SECONDS = 0.005  # below this mean run time a worker is fed many tasks at once
DEEP_PREFETCH = 64
SHALLOW_PREFETCH = 2
RECENT_WEIGHT = 0.3  # weight of the newest task in the moving average of task durations


@dataclass(kw_only=True)
class WorkerLoad:
    name: str
    in_flight: dict[str, bytes] = field(default_factory=dict)  # task files, in sending order
    revoking: set[str] = field(default_factory=set)  # asked back, no answer yet
    has_shared: set[str] = field(default_factory=set)  # digests of shared blobs it was sent
    shared_bytes_sent: int = 0
    isolated: str | None = None  # the suspect it holds alone
    alive: bool = True
    tasks_done: int = 0
    busy_seconds: float = 0.0
    recent_seconds: float = 0.0  # moving average of the latest task durations
    last_progress: float = 0.0  # monotonic time of the last result, or of work given to it idle

    def stuck(self) -> bool:
        """Holding tasks but silent for longer than a short task takes: busy with a long one."""
        return bool(self.in_flight) and (
            time.monotonic() - self.last_progress > SHORT_TASK_SECONDS)

    def prefetch(self) -> int:
        """How many tasks this worker should hold at once."""
        if (self.tasks_done >= 4 and self.recent_seconds < SHORT_TASK_SECONDS
                and not self.stuck()):
            return DEEP_PREFETCH
        return SHALLOW_PREFETCH

    def room(self) -> int:
        if not self.alive or self.isolated is not None:
            return 0
        return self.prefetch() - len(self.in_flight)

    def stats(self, **extra: object) -> WorkerStats:
        return WorkerStats(name=self.name, alive=self.alive, tasks_done=self.tasks_done,
                           busy_seconds=self.busy_seconds, in_flight=len(self.in_flight),
                           extra={"shared_bytes_sent": self.shared_bytes_sent, **extra})

    def running(self) -> str | None:
        """The task this worker is running (or about to): the first it holds."""
        return next(iter(self.in_flight), None)

    def lost(self) -> tuple[str | None, list[tuple[str, bytes]]]:
        """The worker died: the task that killed it when known, else the suspects to deal again
        one per worker (uncharged)."""
        items = list(self.in_flight.items())
        self.in_flight.clear()
        self.revoking.clear()
        self.has_shared.clear()
        self.isolated = None
        if len(items) == 1:
            return items[0][0], []
        return None, items

    def revoked(self, ids: list[str]) -> list[tuple[str, bytes]]:
        """The worker gave these back unstarted: their task files, to deal again."""
        back = [(tid, self.in_flight.pop(tid)) for tid in ids if tid in self.in_flight]
        self.revoking.difference_update(ids)
        return back

    def shared_to_send(self, blobs: list[bytes]) -> list[str]:
        """Digests the tasks in ``blobs`` need that this worker has not been sent yet."""
        missing: list[str] = []
        for blob in blobs:
            for digest in task_shared(blob):
                if digest not in self.has_shared:
                    self.has_shared.add(digest)
                    missing.append(digest)
        return missing

    def started(self, record: bytes, cancelled: Container[str] = ()) -> list[Completion] | None:
        """The start notices of a STARTED record this worker sent, for tasks it holds that were
        not cancelled; None when the record is not one."""
        ids = framing.read_ids(framing.STARTED_MAGIC, record)
        if ids is None:
            return None
        return [Completion(tid, worker=self.name, started=True)
                for tid in ids if tid in self.in_flight and tid not in cancelled]

    def finished(self, record: bytes) -> Completion:
        """Account for a result record this worker sent; the Completion to report."""
        header = decode_result_header(record)
        self.revoking.discard(header.task_id)
        if self.isolated == header.task_id:
            self.isolated = None
        self.in_flight.pop(header.task_id, None)
        took = max(0.0, header.finished - header.started)
        self.last_progress = time.monotonic()
        self.tasks_done += 1
        self.busy_seconds += took
        self.recent_seconds = (
            took if self.tasks_done == 1
            else RECENT_WEIGHT * took + (1 - RECENT_WEIGHT) * self.recent_seconds
        )
        return Completion(header.task_id, record=record, worker=self.name, header=header)


W = TypeVar("W", bound=WorkerLoad)


def deal(workers: Sequence[W], pending: deque[tuple[str, bytes]],
         suspects: deque[tuple[str, bytes]] | None = None) -> list[tuple[W, list[bytes]]]:
    """Move pending tasks onto workers with room; returns each worker's new batch of task files,
    to send as one frame. Suspects go first, each alone to a worker holding nothing.

    Workers that are idle or turning tasks around come first, each taking no more than its share
    of what is pending, one task each in turn, so a few tasks spread over all of them; only then
    does a worker stuck on a long task get its next one queued (so it never idles between two
    long tasks).
    """
    batches: dict[int, tuple[W, list[bytes]]] = {}
    for worker in workers:
        if not suspects:
            break
        if worker.alive and not worker.in_flight:
            task_id, blob = suspects.popleft()
            worker.in_flight[task_id] = blob
            worker.isolated = task_id
            worker.last_progress = time.monotonic()
            batches[id(worker)] = (worker, [blob])
    if suspects:
        # suspects still wait: no worker takes more, so the next one to empty takes the next
        return list(batches.values())
    open_workers = [w for w in workers if w.room() > 0]
    # one reading of stuck() each: a worker read twice as its silence crossed the line was in
    # both groups, dealt to twice, and its room went below zero
    responsive: list[W] = []
    stuck: list[W] = []
    for worker in open_workers:
        (stuck if worker.stuck() else responsive).append(worker)
    for group in (responsive, stuck):
        if not pending or not group:
            continue
        share = -(-len(pending) // len(group))
        order = sorted(group, key=lambda w: len(w.in_flight))
        rooms = [min(worker.room(), share) for worker in order]
        for worker, room in zip(order, rooms, strict=True):
            if room > 0 and not worker.in_flight:
                worker.last_progress = time.monotonic()  # its silence counts from now
        # one task to each worker in turn: neighbours in the input start side by side, so
        # results come back near input order (imap) and two long tasks never queue on one
        # worker while the other idles after its short ones
        while pending and any(room > 0 for room in rooms):
            for i, worker in enumerate(order):
                if not pending:
                    break
                if rooms[i] > 0:
                    task_id, blob = pending.popleft()
                    worker.in_flight[task_id] = blob
                    batches.setdefault(id(worker), (worker, []))[1].append(blob)
                    rooms[i] -= 1
    return list(batches.values())


def to_revoke(workers: Sequence[W], idle: Sequence[W] | None = None) -> list[tuple[W, bytes]]:
    """With a worker idle (and nothing pending), the unstarted tasks stuck workers hold: a
    REVOKE record to send each of them. The answer (``revoked``) says which it gave back.
    ``idle``: the workers whose idleness counts (those tasks may be dealt to), if not all."""
    if not any(w.alive and not w.in_flight for w in (workers if idle is None else idle)):
        return []
    asks: list[tuple[W, bytes]] = []
    for worker in workers:
        if not worker.alive or len(worker.in_flight) < 2 or not worker.stuck():
            continue
        queued = [tid for tid in list(worker.in_flight)[1:] if tid not in worker.revoking]
        if queued:
            worker.revoking.update(queued)
            asks.append((worker, framing.ids_record(framing.REVOKE_MAGIC, queued)))
    return asks


def where(workers: Sequence[W], task_id: str) -> tuple[W | None, bool]:
    """The worker holding ``task_id`` and whether it is the one it runs."""
    for worker in workers:
        if task_id in worker.in_flight:
            return worker, worker.running() == task_id
    return None, False
