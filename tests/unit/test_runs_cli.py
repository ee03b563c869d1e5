"""``run --detach`` reports a run that ends at its start, ``stop`` says what the master cancelled
and kept: the shell snippet runs here on a run directory made here, the commands against a
recording host."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pymw_admin.admin import runs, target
from pymw_admin.admin.runs import control
from pymw_admin.cli import app
from pymw_admin.cli import runs as runs_cli
from pymw_admin.errors import UsageError
from tests.doubles import RecordingHost

REFUSAL = ("pymw_admin.errors.UsageError: tag sweep holds 3 uncollected task(s) of an earlier "
           "master: run it with -a resume=yes, or pymw-admin runs drop sweep")
STOPPED_LOG = (
    "GOT 2\n"
    "pymw: 12 work unit(s) queued for volunteers (tag sweep, 12 out)\n"
    "pymw: cancelled 9 work unit(s), kept 1 BOINC had finished\n"
    "pymw: 4 task(s) an earlier master left were not submitted again: cancelled\n"
    "pymw: 2 result(s) from an earlier master, 1 computed anew\n"
    "the script's own last words\n"
)


def project(tmp_path: Path) -> target.ProjectTarget:
    return target.ProjectTarget(name="p", owner="o", project_dir=str(tmp_path),
                                host=target.HostSpec("h"))


def run_dir(t: target.ProjectTarget, run_id: str = "7") -> Path:
    d = Path(runs.runs_dir(t)) / run_id
    d.mkdir(parents=True)
    return d


def sh(command: str) -> str:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                          check=True).stdout


# -- the snippet: check, wait, read ---------------------------------------------------------------
def test_a_run_that_ended_at_its_start_gives_its_status_and_last_lines(tmp_path: Path) -> None:
    t = project(tmp_path)
    d = run_dir(t)
    (d / "log").write_text("".join(f"line {n}\n" for n in range(20)) + REFUSAL + "\n")
    (d / "exit").write_text("1\n")
    ended = control.parse_early_end(sh(runs.early_end_command(t, "7", 5)))
    assert ended is not None and ended.exit_code == 1
    assert ended.log_tail.splitlines()[-1] == REFUSAL
    assert len(ended.log_tail.splitlines()) == control.EARLY_END_LINES


def test_a_run_still_going_is_waited_for_briefly_then_left(tmp_path: Path) -> None:
    t = project(tmp_path)
    run_dir(t)
    began = time.monotonic()
    assert control.parse_early_end(sh(runs.early_end_command(t, "7", 0.3))) is None
    assert time.monotonic() - began < 3


def test_an_end_within_the_wait_is_seen_when_it_comes(tmp_path: Path) -> None:
    t = project(tmp_path)
    d = run_dir(t)
    (d / "log").write_text(REFUSAL + "\n")

    def end_later() -> None:
        time.sleep(0.3)
        (d / "exit.tmp").write_text("2\n")
        (d / "exit.tmp").rename(d / "exit")  # as run.sh writes it

    ender = threading.Thread(target=end_later)
    ender.start()
    began = time.monotonic()
    ended = control.parse_early_end(sh(runs.early_end_command(t, "7", 5)))
    ender.join()
    assert ended is not None and (ended.exit_code, ended.log_tail) == (2, REFUSAL + "\n")
    assert time.monotonic() - began < 4


def test_the_snippet_is_data() -> None:
    t = target.ProjectTarget(name="p", owner="o", project_dir="/home/o/projects/my p",
                             host=target.HostSpec("h"))
    command = runs.early_end_command(t, "12", 5)
    assert command.startswith("cd '/home/o/projects/my p/pymw/runs/12' || exit 0;")
    assert "[ $i -lt 50 ]" in command and "tail -n 10 -- log" in command
    with pytest.raises(UsageError, match="invalid run id"):
        runs.early_end_command(t, "../1")


@pytest.mark.parametrize("out", ["", "@exit\n", "@exit x\n", "noise\n@exit 1\n"])
def test_anything_but_an_exit_status_is_a_run_going_on(out: str) -> None:
    assert control.parse_early_end(out) is None


def test_closing_lines_are_what_the_master_said_of_its_work() -> None:
    t = project(Path("/srv/p"))
    host = RecordingHost([("tail -n 50", STOPPED_LOG)], root=False)
    assert runs.closing_lines(host, t, "7") == [
        "pymw: cancelled 9 work unit(s), kept 1 BOINC had finished",
        "pymw: 4 task(s) an earlier master left were not submitted again: cancelled",
        "pymw: 2 result(s) from an earlier master, 1 computed anew",
    ]
    assert "-u o" in host.commands[-1]  # the owner's file, read as the owner


# -- the commands ---------------------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RecordingHost, Path]]:
    """The CLI against a recording host: the project, its environment and start are faked."""
    host = RecordingHost(root=False)
    t = project(tmp_path / "server")

    @contextlib.contextmanager
    def opened(*_: object) -> Iterator[tuple[RecordingHost, target.ProjectTarget]]:
        yield host, t

    monkeypatch.setattr(runs_cli, "opened", opened)
    monkeypatch.setattr(runs, "check_project", lambda *_: None)
    monkeypatch.setattr(runs, "ensure_environment", lambda *_: "/v/bin/python")
    monkeypatch.setattr(runs, "start", lambda *_: "7")
    script = tmp_path / "sweep.py"
    script.write_text("print('hi')\n")
    yield host, script


def test_detach_exits_with_a_refused_runs_status_and_its_error_line(
        cli: tuple[RecordingHost, Path]) -> None:
    host, script = cli
    host.replies = [(re.compile(r"-f exit"),
                     f"@exit 1\nTraceback (most recent call last):\n{REFUSAL}\n")]
    result = CliRunner().invoke(app, ["run", "--detach", str(script)])
    assert result.exit_code == 1
    assert result.stdout == ""  # no id for a script to go on with
    assert REFUSAL in result.stderr
    assert "run 7: exited(1) at its start (pymw-admin logs 7)" in result.stderr


def test_detach_of_a_run_still_going_prints_its_id(cli: tuple[RecordingHost, Path]) -> None:
    host, script = cli
    result = CliRunner().invoke(app, ["run", "--detach", str(script)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "7\n"
    assert sum("-f exit" in c for c in host.commands) == 1  # one round trip to watch its start


def test_detach_of_a_run_that_finished_well_prints_its_id(cli: tuple[RecordingHost, Path]) -> None:
    host, script = cli
    host.replies = [(re.compile(r"-f exit"), "@exit 0\nhi\n")]
    result = CliRunner().invoke(app, ["run", "--detach", str(script)])
    assert (result.exit_code, result.stdout) == (0, "7\n")


def _run(state: str) -> runs.RunInfo:
    return runs.RunInfo(id="7", script="sweep.py", pid=11, alive=state == "running",
                        exit_code=None if state == "running" else 143, started=1.0, ended=None,
                        stopped=state != "running", pgid=10)


def test_stop_prints_what_the_master_cancelled_and_kept(
        cli: tuple[RecordingHost, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    host, _ = cli
    monkeypatch.setattr(runs, "get_run", lambda *_: _run("running"))
    monkeypatch.setattr(runs, "stop", lambda *_: _run("killed"))
    host.replies = [(re.compile(r"tail -n 50"), STOPPED_LOG)]
    result = CliRunner().invoke(app, ["stop", "7"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "run 7 stopped: killed",
        "pymw: cancelled 9 work unit(s), kept 1 BOINC had finished",
        "pymw: 4 task(s) an earlier master left were not submitted again: cancelled",
        "pymw: 2 result(s) from an earlier master, 1 computed anew",
    ]


def test_stopping_a_run_that_was_over_reads_no_log(
        cli: tuple[RecordingHost, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    host, _ = cli
    monkeypatch.setattr(runs, "get_run", lambda *_: _run("killed"))
    monkeypatch.setattr(runs, "stop", lambda *_: _run("killed"))
    result = CliRunner().invoke(app, ["stop", "7"])
    assert result.stdout == "run 7 was not running: killed\n"
    assert host.commands == []
