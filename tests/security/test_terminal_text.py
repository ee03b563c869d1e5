"""M4: volunteers' text reaches a terminal as text: escapes written out in tables, error lines and
log output; raw only in --json."""

from __future__ import annotations

import importlib
import io
import json

import pytest
from rich.console import Console

from pymw_admin.admin import runs
from pymw_admin.admin import status as project_status
from pymw_admin.cli.runs import runs_table
from pymw_admin.cli.status import render
from pymw_admin.cli.terminal_text import safe_writer, shown, shown_line

# clipboard write (OSC 52), window title, clear screen, cursor up, a bidi override, a bell
HOSTILE = ("boom\x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b]0;owned\x07\x1b[2J\x1b[1A"
           "\u202eevil\x07\r\x9b31m")
RAW_MARKS = ("\x1b]", "\x1b[2J", "\x1b[1A", "\u202e", "\x07", "\r", "\x9b")


def no_raw(text: str) -> bool:
    return not any(mark in text for mark in RAW_MARKS)


def test_shown_writes_escapes_out() -> None:
    assert shown(HOSTILE).startswith("boom\\x1b]52;c;")
    assert no_raw(shown(HOSTILE)) and no_raw(shown_line(HOSTILE))
    assert shown("line 1\nline\t2") == "line 1\nline\t2"
    assert shown_line("a\nb") == "a\\nb"
    assert shown("ünïcode ✓") == "ünïcode ✓"


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    # a real terminal's console: colours on, so only our escapes are ours
    return Console(file=out, force_terminal=True, color_system=None, width=400), out


def test_status_tables_show_failures_as_text() -> None:
    reading = project_status.Status(
        project="p", host="h", time=0.0, daemons={HOSTILE: True}, daemons_disabled=False,
        apps=[project_status.AppCounts(HOSTILE)],
        failures=[project_status.Failure("result", HOSTILE, "wu", HOSTILE, 0.0, HOSTILE)],
        runs=[runs.RunInfo("1", HOSTILE, None, False, 0, 0.0, 1.0, False)])
    console, out = terminal()
    console.print(render(reading))
    assert no_raw(out.getvalue()) and "boom\\x1b]52" in out.getvalue()
    console, out = terminal()
    console.print(runs_table(reading.runs))
    assert no_raw(out.getvalue())
    # --json keeps the text itself (JSON escapes it its own way)
    assert json.loads(json.dumps(reading.as_dict()))["failures"][0]["reason"] == HOSTILE


def test_error_lines_show_text(monkeypatch: pytest.MonkeyPatch) -> None:
    cli_app = importlib.import_module("pymw_admin.cli.app")  # the module, not the Typer app
    console, out = terminal()
    monkeypatch.setattr(cli_app, "err_console", console)
    cli_app.error_line(f"task failed: {HOSTILE}")
    assert no_raw(out.getvalue()) and "\\x1b]0;owned" in out.getvalue()


def test_log_stream_is_shown_even_split_mid_character() -> None:
    written: list[str] = []
    take = safe_writer(written.append)
    data = ("ok ✓ " + HOSTILE + "\n").encode()
    for i in range(0, len(data), 3):  # chunks cut through escapes and UTF-8 sequences
        take(data[i : i + 3])
    text = "".join(written)
    assert no_raw(text) and text.startswith("ok ✓ boom\\x1b]52")


def test_a_volunteers_error_raised_in_the_master_shows_its_escapes_as_text() -> None:
    """A master script that prints (or dies with) a task's error writes no escape sequence a
    volunteer put in its message or traceback; the attributes keep what it sent."""
    from pymw_admin.runtime.errors import RemoteTraceback, TaskError

    osc52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
    error = TaskError(None, "ValueError", f"bad\n{osc52}")
    assert "\x1b" not in str(error) and "\x07" not in str(error)
    assert "\\x1b]52;c;" in str(error) and "bad\n" in str(error)
    assert error.remote_message == f"bad\n{osc52}"
    assert "\x1b" not in str(RemoteTraceback(f"Traceback\n{osc52}\n"))
