"""The PyMW master-worker API.

    from pymw_admin.runtime import Master, options

    with Master(interface=options.interface_from_args()) as master:
        tasks = [master.submit_task(f, input_data=(x,)) for x in range(10)]
        for _ in tasks:
            task, result = master.get_result()
"""

from pymw_admin.runtime import options
from pymw_admin.runtime.errors import (
    PythonVersionMismatch,
    RemoteTraceback,
    TaskError,
    TaskTimeout,
    WorkerLost,
)
from pymw_admin.runtime.master import Master, Progress, PyMW_Master, Status
from pymw_admin.runtime.scripting import pymw_get_input, pymw_set_output
from pymw_admin.runtime.task import Task, TaskState

__all__ = [
    "Master",
    "Progress",
    "PyMW_Master",
    "PythonVersionMismatch",
    "RemoteTraceback",
    "Status",
    "Task",
    "TaskError",
    "TaskState",
    "TaskTimeout",
    "WorkerLost",
    "options",
    "pymw_get_input",
    "pymw_set_output",
]
