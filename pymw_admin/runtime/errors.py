"""Errors the master raises about tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymw_admin.errors import PymwError
from pymw_admin.wire.visible_text import shown

if TYPE_CHECKING:
    from pymw_admin.runtime.task import Task


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback as the ``__cause__`` of a TaskError."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{shown(self.tb)}"""'


class TaskError(PymwError):
    """A task failed: it raised on the worker, or its worker was lost more often than retried.

    ``remote_type`` and ``remote_message`` name the exception the task raised, ``remote_traceback``
    is the worker's traceback, and ``exception`` is the original exception object when it could be
    rebuilt on the master (trusted interfaces only), else None. They are as the worker sent them;
    the message (what a traceback prints) shows a volunteer's escape sequences as text.
    """

    def __init__(
        self,
        task: Task | None,
        remote_type: str,
        remote_message: str,
        remote_traceback: str = "",
        exception: BaseException | None = None,
    ) -> None:
        self.task = task
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        self.exception = exception
        where = f"task {task.task_id}" if task is not None else "a task"
        text = f"{where} raised {remote_type}"
        super().__init__(shown(f"{text}: {remote_message}" if remote_message else text))


class WorkerLost(TaskError):
    """The worker running a task died (or the engine lost the job) more times than retried."""


class TaskCancelled(TaskError):
    """The task was cancelled (``Master.cancel``) before it finished."""


class PythonVersionMismatch(TaskError):
    """The worker's Python minor version differs from the master's, so the task cannot run."""


class TaskSignatureError(TaskError):
    """A volunteer's bundle refused the task file: unsigned, altered, or signed by another key
    (nothing of it ran)."""


class TaskTimeout(PymwError, TimeoutError):
    """No (matching) task finished within the timeout. Nothing was lost: ask again later."""
