"""The CLI's one error line survives any text: brackets in paths, remote or volunteers' output."""

from __future__ import annotations

import pytest
import typer

from pymw_admin.cli import status as status_cli
from pymw_admin.cli.app import fail
from pymw_admin.cli.runs import runs_table


@pytest.mark.parametrize("message", ["no such file [/x]", "[bold]not bold[/bold]", "a [b] c"])
def test_fail_prints_the_message_as_text(message: str, capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = fail(message, 2)
    assert isinstance(exit_, typer.Exit)
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}"


def test_tables_take_names_as_text() -> None:
    from rich.console import Console

    from pymw_admin.admin import runs

    info = runs.RunInfo(id="1", script="[/x].py", pid=None, alive=False, exit_code=1,
                        started=None, ended=None, stopped=False)
    console = Console(record=True, width=120)
    console.print(runs_table([info]))
    assert "[/x].py" in console.export_text()


def test_status_failures_take_volunteers_text_as_text() -> None:
    from rich.console import Console

    from pymw_admin.admin import status as project_status

    failure = project_status.Failure(kind="result", name="wu_1", workunit="wu", app="[/a]",
                                     when=0.0, reason="Traceback [/x] ]]>")
    status = project_status.Status(
        project="p", host="h", time=0.0, daemons={"feeder": True}, daemons_disabled=False,
        apps=[project_status.AppCounts(name="[/a]")], failures=[failure], runs=[])
    console = Console(record=True, width=200)
    console.print(status_cli.render(status))
    text = console.export_text()
    assert "Traceback [/x] ]]>" in text
    assert "[/a]" in text


def test_the_runs_table_shows_each_runs_tag() -> None:
    from rich.console import Console

    from pymw_admin.admin import runs

    tagged = runs.RunInfo(id="1", script="monte_pi.py", pid=None, alive=False, exit_code=0,
                          started=None, ended=None, stopped=False, tag="monte_pi", reused=22,
                          computed=2)
    local = runs.RunInfo(id="2", script="m.py", pid=None, alive=False, exit_code=0,
                         started=None, ended=None, stopped=False)
    console = Console(record=True, width=160)
    console.print(runs_table([tagged, local]))
    rows = console.export_text().splitlines()
    assert "tag" in next(r for r in rows if "script" in r)
    cells = [c.strip() for c in next(r for r in rows if "monte_pi.py" in r).split("│")]
    assert cells[-3:-1] == ["monte_pi", "22/2"]  # its tag, and a resumed run's reused/new
    cells = [c.strip() for c in next(r for r in rows if "m.py" in r).split("│")]
    assert cells[-3:-1] == ["-", "-"]
    console = Console(record=True, width=80)  # status's table, in a pipe: no resumed run
    console.print(runs_table([local, runs.RunInfo(
        id="3", script="null_test.py", pid=None, alive=False, exit_code=0, started=1.7e9,
        ended=1.7e9 + 5, stopped=False, tag="null_test")]))
    text = console.export_text()
    assert "null_test.py" in text and "reused/new" not in text


def test_status_shows_what_the_tasks_did_as_text() -> None:
    """Exception types, messages and tags come from volunteers (through the assimilator's
    tally) and the database: shown as text, never markup or terminal controls."""
    from rich.console import Console

    from pymw_admin.admin import status as project_status

    tag = project_status.TaskOutcomes(
        app="pymw", tag="[b]mc", runs=["3"], ok=2, raised={"[red]Value\x1bError": 3},
        examples=[project_status.RaisedExample("[red]Value\x1bError", "bad [/x] \x1b]0;t\x07",
                                               "pymw_mc_deadbeef_1", 1.0)],
        failed=[project_status.FailureCount("result", "client error [/y]", 2, 1.0)],
        cancelled_results=4)
    tag.workunits.update(done=5, cancelled=1)
    app = project_status.TaskOutcomes(app="pymw")
    app.tags.append(tag)
    app.add(tag)
    status = project_status.Status(
        project="p", host="h", time=0.0, daemons={"feeder": True}, daemons_disabled=False,
        apps=[project_status.AppCounts(name="pymw")], failures=[], runs=[], tasks=[app])
    console = Console(record=True, width=250)
    console.print(status_cli.render(status))
    text = console.export_text()
    assert "\x1b" not in text and "\x07" not in text
    for shown in ("[b]mc", "[red]Value\\x1bError", "bad [/x] \\x1b]0;t\\x07",
                  "client error [/y]", "tasks that raised", "failures by reason"):
        assert shown in text, shown
    row = next(line for line in text.splitlines() if "[b]mc" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    # runs, waiting, done, returned, raised, failed wus / results, cancelled wus / results
    assert cells[1:] == ["3", "0", "5", "2", "3", "0 / 2", "1 / 4"]


def test_status_says_a_tally_it_could_not_read() -> None:
    from rich.console import Console

    from pymw_admin.admin import status as project_status

    status = project_status.Status(
        project="p", host="h", time=0.0, daemons={"feeder": True}, daemons_disabled=False,
        apps=[], failures=[], runs=[], tasks_error="tally unreadable for app(s) [x]")
    console = Console(record=True, width=200)
    console.print(status_cli.render(status))
    assert "tasks: tally unreadable for app(s) [x]" in console.export_text()
