"""PyMW 0.4's names and semantics, so that a PyMW 0.4 master script (in Python 3 syntax) runs with
``import pymw_admin.compat as pymw`` as its only change.

    interface = pymw.interfaces.multicore.MulticoreInterface(num_workers=4)
    master = pymw.PyMW_Master(interface=interface)
    task = master.submit_task(func, input_data=(1, 2))   # input_data=None: no arguments
    task, result = master.get_result(task)               # blocking=False: (None, None) if not done
    master.get_progress(task)                            # 0.0, 0.5 (running) or 1.0
    master.get_status()                                  # {"tasks": {...}, "interface_status": ...}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from pymw_admin.compat import interfaces
from pymw_admin.runtime.errors import TaskTimeout
from pymw_admin.runtime.master import Executable, Master
from pymw_admin.runtime.task import Task, TaskState


class PyMW_Master(Master):
    """``Master`` with PyMW 0.4's method signatures and return values."""

    def __init__(self, interface: Any = None, loglevel: int | None = None,
                 delete_files: bool = True, scheduler: Any = None, **options: Any) -> None:
        super().__init__(interface=interface, **options)

    def submit_task(
        self,
        executable: Executable,
        input_data: Sequence[Any] | None = None,
        modules: Sequence[str] = (),
        dep_funcs: Sequence[Callable[..., Any]] = (),
        data_files: Sequence[str | os.PathLike[str]] = (),
        input_from_file: bool = False,
        **options: Any,
    ) -> Task:
        return super().submit_task(executable, () if input_data is None else input_data,
                                   modules, dep_funcs, data_files, **options)

    def get_result(  # type: ignore[override]
        self, task: Task | Sequence[Task] | None = None, blocking: bool = True,
        timeout: float | None = None,
    ) -> tuple[Task | None, Any]:
        if blocking:
            return super().get_result(task, timeout=timeout)
        try:
            return super().get_result(task, timeout=0)
        except TaskTimeout:
            return None, None

    def get_progress(self, task: Task | None = None) -> Any:
        """A task's progress as 0.4 gave it (0.0 waiting, 0.5 running, 1.0 finished); with no
        task, the whole run's Progress."""
        if task is None:
            return super().get_progress()
        self._pump_now()
        if task.finished:
            return 1.0
        return 0.5 if task.start_time is not None else 0.0

    def get_status(self) -> dict[str, Any]:  # type: ignore[override]
        status = super().get_status()
        tasks = {task: _STATES[task.state] for task in self.tasks}
        return {"tasks": tasks, "interface_status": {"interface": status.interface,
                                                     "counts": status.counts,
                                                     "workers": status.workers}}


_STATES = {
    TaskState.QUEUED: "new",
    TaskState.SUBMITTED: "executing",
    TaskState.RUNNING: "executing",
    TaskState.DONE: "finished",
    TaskState.FAILED: "error",
    TaskState.CANCELLED: "cancelled",
}

__all__ = ["PyMW_Master", "interfaces"]
