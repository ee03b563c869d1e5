"""How a script task (a ``.py`` file submitted instead of a function) gets input and gives output.

The worker runs the script as ``__main__`` in the task's working directory with these two
functions already defined in its globals (PyMW's names), and importable from here as well::

    data = pymw_get_input()          # the submit_task input_data, as a tuple
    pymw_set_output(sum(data))       # the task's result (None when never called)

``sys.argv`` is ``[script name, *map(str, input_data)]``, so simple scripts can read argv instead.
"""

from __future__ import annotations

from typing import Any

_state: dict[str, Any] = {"input": (), "output": None}


def pymw_get_input() -> tuple[Any, ...]:
    """The input_data the master gave this task."""
    return tuple(_state["input"])


def pymw_set_output(value: Any) -> None:
    """Set the task's result."""
    _state["output"] = value


def begin(input_data: tuple[Any, ...]) -> None:
    _state["input"] = input_data
    _state["output"] = None


def output() -> Any:
    return _state["output"]


get_input = pymw_get_input
set_output = pymw_set_output
