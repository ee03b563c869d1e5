"""What an interface tracks of one worker: tasks in flight, throughput, how many to feed it.

A worker is fed many tasks at once while its tasks are short (so no-op tasks are not bound by
round trips) and at most two while they are long (so the last tasks don't wait behind a busy one).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pymw_admin.interfaces.base import Completion, WorkerStats
from pymw_admin.runtime.encoding import decode_result_header

SHORT_TASK_SECONDS = 0.005  # below this mean run time a worker is fed many tasks at once
DEEP_PREFETCH = 64
SHALLOW_PREFETCH = 2


@dataclass(kw_only=True)
class WorkerLoad:
    name: str
    in_flight: dict[str, object] = field(default_factory=dict)  # task ids, in sending order
    alive: bool = True
    tasks_done: int = 0
    busy_seconds: float = 0.0

    def prefetch(self) -> int:
        """How many tasks this worker should hold at once."""
        if self.tasks_done >= 4 and self.busy_seconds / self.tasks_done < SHORT_TASK_SECONDS:
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
        self.tasks_done += 1
        self.busy_seconds += max(0.0, header.finished - header.started)
        return Completion(header.task_id, record=record, worker=self.name)


W = TypeVar("W", bound=WorkerLoad)


def deal(workers: Sequence[W], pending: deque[tuple[str, bytes]]) -> list[tuple[W, list[bytes]]]:
    """Move pending tasks onto workers with room, the emptiest first (so a few tasks spread
    over all workers); returns each worker's new batch of task files, to send as one frame."""
    batches: list[tuple[W, list[bytes]]] = []
    for worker in sorted(workers, key=lambda w: len(w.in_flight)):
        if not pending:
            break
        room = worker.room()
        blobs: list[bytes] = []
        while pending and len(blobs) < room:
            task_id, blob = pending.popleft()
            worker.in_flight[task_id] = None
            blobs.append(blob)
        if blobs:
            batches.append((worker, blobs))
    return batches
