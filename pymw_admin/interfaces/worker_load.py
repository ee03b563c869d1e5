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
from pymw_admin.wire.encoding import decode_result_header

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
    """Move pending tasks onto workers with room; returns each worker's new batch of task files,
    to send as one frame.

    Workers that are idle or turning tasks around come first, each taking no more than its share
    of what is pending, so a few tasks spread over all of them; only then does a worker stuck on
    a long task get its next one queued (so it never idles between two long tasks).
    """
    batches: dict[int, tuple[W, list[bytes]]] = {}
    open_workers = [w for w in workers if w.room() > 0]
    responsive = [w for w in open_workers if not w.stuck()]
    stuck = [w for w in open_workers if w.stuck()]
    for group in (responsive, stuck):
        if not pending or not group:
            continue
        share = -(-len(pending) // len(group))
        for worker in sorted(group, key=lambda w: len(w.in_flight)):
            room = min(worker.room(), share)
            if room > 0 and not worker.in_flight:
                worker.last_progress = time.monotonic()  # its silence counts from now
            while pending and room > 0:
                task_id, blob = pending.popleft()
                worker.in_flight[task_id] = None
                batches.setdefault(id(worker), (worker, []))[1].append(blob)
                room -= 1
    return list(batches.values())
