"""A Task: one call of a function (or run of a script) on some worker, as the master sees it."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TaskState(enum.Enum):
    QUEUED = "queued"  # made, not yet handed to the interface
    SUBMITTED = "submitted"  # handed to the interface, not known to have started
    RUNNING = "running"  # a worker said it started it (local, MPI; others go on to the end)
    DONE = "done"  # finished and returned a value
    FAILED = "failed"  # raised, or its worker was lost more often than retried
    CANCELLED = "cancelled"  # given up by Master.cancel before it finished


@dataclass(eq=False)
class Task:
    """What the master knows of one task. Compare tasks by identity; ``task_id`` is unique.

    Reading ``state`` (or ``finished``) of an unfinished task first takes in whatever its master's
    interface already received, without waiting: a task that ended a moment ago reads as ended.
    """

    task_id: str
    name: str
    _state: TaskState = field(default=TaskState.QUEUED, repr=False)
    submit_time: float | None = None
    start_time: float | None = None
    finish_time: float | None = None
    worker: str | None = None
    stdout: str = ""
    stderr: str = ""
    attempts: int = 0
    collected: bool = False
    # sha256 of what the worker runs (encoding.task_digest): equal tasks, equal digests
    digest: str = ""
    _result: Any = field(default=None, repr=False)
    _error: BaseException | None = field(default=None, repr=False)
    # the master's non-blocking look at its interface (it holds the master weakly)
    _refresh: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def state(self) -> TaskState:
        if self._refresh is not None and self._state not in FINAL_STATES:
            self._refresh()
        return self._state

    @state.setter
    def state(self, state: TaskState) -> None:
        self._state = state

    def __getstate__(self) -> dict[str, Any]:
        # a pickled or copied task is a snapshot: it keeps no link to the master
        return {**self.__dict__, "_refresh": None}

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def duration(self) -> float | None:
        """Seconds the task ran on its worker, when known."""
        if self.start_time is None or self.finish_time is None:
            return None
        return self.finish_time - self.start_time

    def __repr__(self) -> str:
        return f"<Task {self.task_id} {self.name} {self._state.value}>"


FINAL_STATES = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED})
