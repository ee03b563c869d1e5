"""The PyMW master-worker API.

    from pymw_admin.runtime import Master, options

    with Master(interface=options.interface_from_args()) as master:
        tasks = [master.submit_task(f, input_data=(x,)) for x in range(10)]
        for _ in tasks:
            task, result = master.get_result()

Names load on first use: a worker imports ``pymw_admin.worker.run`` and should not pay for
the master, its options and the interfaces (a third of a frozen worker's start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymw_admin.runtime import options
    from pymw_admin.runtime.errors import (
        PythonVersionMismatch,
        RemoteTraceback,
        TaskCancelled,
        TaskError,
        TaskSignatureError,
        TaskTimeout,
        WorkerLost,
    )
    from pymw_admin.runtime.executor import PyMWExecutor
    from pymw_admin.runtime.master import Master, Progress, PyMW_Master, Status
    from pymw_admin.runtime.task import Task, TaskState
    from pymw_admin.wire.encoding import Shared
    from pymw_admin.worker.scripting import pymw_get_input, pymw_set_output

_WHERE = {
    "options": "pymw_admin.runtime.options",
    "PythonVersionMismatch": "pymw_admin.runtime.errors",
    "RemoteTraceback": "pymw_admin.runtime.errors",
    "TaskCancelled": "pymw_admin.runtime.errors",
    "TaskError": "pymw_admin.runtime.errors",
    "TaskSignatureError": "pymw_admin.runtime.errors",
    "TaskTimeout": "pymw_admin.runtime.errors",
    "WorkerLost": "pymw_admin.runtime.errors",
    "Master": "pymw_admin.runtime.master",
    "Progress": "pymw_admin.runtime.master",
    "PyMW_Master": "pymw_admin.runtime.master",
    "Status": "pymw_admin.runtime.master",
    "PyMWExecutor": "pymw_admin.runtime.executor",
    "Shared": "pymw_admin.wire.encoding",
    "pymw_get_input": "pymw_admin.worker.scripting",
    "pymw_set_output": "pymw_admin.worker.scripting",
    "Task": "pymw_admin.runtime.task",
    "TaskState": "pymw_admin.runtime.task",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'pymw_admin.runtime' has no attribute {name!r}")
    module = importlib.import_module(where)
    value = module if name == "options" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "Master",
    "Progress",
    "PyMWExecutor",
    "PyMW_Master",
    "PythonVersionMismatch",
    "RemoteTraceback",
    "Shared",
    "Status",
    "Task",
    "TaskCancelled",
    "TaskError",
    "TaskSignatureError",
    "TaskState",
    "TaskTimeout",
    "WorkerLost",
    "options",
    "pymw_get_input",
    "pymw_set_output",
]
