"""Listeners that hear about every master's tasks: how `pymw-admin rehearse` draws progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymw_admin.runtime.task import Task

# (event, task); events: "submitted", "started" (a worker began it), "finished"
Listener = Callable[[str, "Task"], None]
_listeners: list[Listener] = []


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def emit(event: str, task: Task) -> None:
    for listener in _listeners:
        listener(event, task)
