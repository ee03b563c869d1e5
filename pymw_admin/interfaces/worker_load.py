"""What an interface tracks of one worker: tasks in flight, throughput, how many to feed it.

A worker is fed many tasks at once while its recent tasks were short (so no-op tasks are not bound
by round trips) and at most two while they are long (so the last tasks don't wait behind a busy
one). "Recent" is a moving average, and a worker that has reported nothing for longer than a
short task takes is treated as busy with a long one: a master that switches from short to long
tasks does not pile them onto one worker.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pymw_admin.interfaces.base import Completion, WorkerStats
from pymw_admin.runtime.encoding import decode_result_header

SHORT_TASK_SECONDS = 0.005  # below this mean run time a worker is fed many tasks at once
DEEP_PREFETCH = 64
SHALLOW_PREFETCH = 2
RECENT_WEIGHT = 0.3  # weight of the newest task in the moving average of task durations


@dataclass(kw_only=True)
class WorkerLoad:
    name: str
    in_flight: dict[str, object] = field(default_factory=dict)  # task ids, in sending order
    alive: bool = True
    tasks_done: int = 0
    busy_seconds: float = 0.0
    recent_seconds: float = 0.0  # moving average of the latest task durations
    last_progress: float = 0.0  # monotonic time of the last result, or of work given to it idle

    def prefetch(self) -> int:
        """How many tasks this worker should hold at once."""
        quiet_for = time.monotonic() - self.last_progress
        if (self.tasks_done >= 4 and self.recent_seconds < SHORT_TASK_SECONDS
                and not (self.in_flight and quiet_for > SHORT_TASK_SECONDS)):
            return DEEP_PREFETCH
        return SHALLOW_PREFETCH

    def room(self) -> int:
        return self.prefetch() - len(self.in_flight) if self.alive else 0

    def stats(self, **extra: object) -> WorkerStats:
        return WorkerStats(name=self.name, alive=self.alive, tasks_done=self.tasks_done,
                           busy_seconds=self.busy_seconds, in_flight=len(self.in_flight),
                           extra=dict(extra))

    def finished(self, record: bytes) -> Completion:
        """Account for a result record this worker sent; the Completion to report."""
        header = decode_result_header(record)
        self.in_flight.pop(header.task_id, None)
        took = max(0.0, header.finished - header.started)
        self.last_progress = time.monotonic()
        self.tasks_done += 1
        self.busy_seconds += took
        self.recent_seconds = (
            took if self.tasks_done == 1
            else RECENT_WEIGHT * took + (1 - RECENT_WEIGHT) * self.recent_seconds
        )
        return Completion(header.task_id, record=record, worker=self.name)


W = TypeVar("W", bound=WorkerLoad)


def deal(workers: Sequence[W], pending: deque[tuple[str, bytes]]) -> list[tuple[W, list[bytes]]]:
    """Move pending tasks onto workers with room, the emptiest first and no worker more than its
    share, so a few tasks spread over all workers; returns each worker's new batch of task files,
    to send as one frame."""
    batches: list[tuple[W, list[bytes]]] = []
    open_workers = [w for w in workers if w.room() > 0]
    if not open_workers or not pending:
        return batches
    share = -(-len(pending) // len(open_workers))
    for worker in sorted(open_workers, key=lambda w: len(w.in_flight)):
        if not pending:
            break
        room = min(worker.room(), share)
        if room > 0 and not worker.in_flight:
            worker.last_progress = time.monotonic()
        blobs: list[bytes] = []
        while pending and len(blobs) < room:
            task_id, blob = pending.popleft()
            worker.in_flight[task_id] = None
            blobs.append(blob)
        if blobs:
            batches.append((worker, blobs))
    return batches
