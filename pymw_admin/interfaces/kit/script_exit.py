"""Did the master script end on an uncaught exception? One ``sys.excepthook`` patch answers it
for every part that must act on it at exit (a master not ended by ``with`` detaches; MPI workers
learn the script's exit status). Python runs the hook before the exit handlers.

Ctrl-C shows what the run got done (``on_interrupt``) instead of a traceback into the master's
waiting; Python then ends the process by SIGINT as usual (a shell sees status 130).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from pymw_admin.errors import EngineUnavailable, UsageError

_failed = False
_previous_excepthook = sys.excepthook
_installed = False
_interrupt_reports: list[Callable[[], str | None]] = []


def on_interrupt(report: Callable[[], str | None]) -> None:
    """Call ``report`` when Ctrl-C ends the script; the line it gives (if any) is printed in
    place of the KeyboardInterrupt's traceback."""
    _interrupt_reports.append(report)


def _note_uncaught(*info: Any) -> None:
    """Bad input or a missing engine (a refused BOINC tag, say) is one line, not a traceback."""
    global _failed
    _failed = True
    if len(info) > 1 and isinstance(info[1], UsageError | EngineUnavailable):
        print(f"error: {info[1]}", file=sys.stderr, flush=True)
        return
    if len(info) > 1 and isinstance(info[1], KeyboardInterrupt):
        lines = [line for report in _interrupt_reports if (line := report())]
        if lines:
            print("\n".join(lines), file=sys.stderr, flush=True)
            return
    _previous_excepthook(*info)


def watch() -> None:
    """Install the hook, once: a hook installed later that calls ours must not be called back."""
    global _installed, _previous_excepthook
    if not _installed:
        _installed = True
        _previous_excepthook = sys.excepthook
        sys.excepthook = _note_uncaught


def ended_by_exception() -> bool:
    return _failed


watch()
