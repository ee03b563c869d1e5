"""A stalled BOINC run says why, from a fake project directory, a fake database and a fake clock.

The clock is the watch's own (``now``); the database's clock and the hosts' last requests are in
the fake answers, as epoch seconds.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from pymw_admin.interfaces import boinc_stall
from pymw_admin.interfaces.boinc_database import DatabaseError
from pymw_admin.interfaces.boinc_stall import StallWatch, Unsent

DB_NOW = 1_700_000_000.0


def make_project(tmp_path: Path, daemons: dict[str, bool]) -> Path:
    """A project whose config.xml lists ``daemons``, each with a live pid file or a dead one."""
    root = tmp_path / "proj"
    (root / "pid_vm").mkdir(parents=True)
    listed = "".join(f"<daemon><cmd>{name} -d 3</cmd></daemon>" for name in daemons)
    listed += "<daemon><cmd>file_deleter</cmd></daemon>"  # never running: sending needs it not
    (root / "config.xml").write_text(
        f"<boinc><config><host>vm</host></config><daemons>{listed}</daemons></boinc>\n")
    for name, alive in daemons.items():
        (root / "pid_vm" / f"{name}.pid").write_text(f"{_live_pid() if alive else _dead_pid()}\n")
    return root


def _live_pid() -> int:
    return os.getpid()


def _dead_pid() -> int:
    """A process that was and is no more (reaped: its pid answers nobody)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeDatabase:
    """Answers the watch's one query with the next of ``answers`` (the last one again when they
    run out); an exception in the list is raised instead."""

    def __init__(self, answers: list[Unsent | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, root: Path, statements: str, timeout: float = 0.0) -> str:
        self.asked.append(statements)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return (f"{answer.count}\t{answer.oldest:.0f}\t{answer.running}\t{answer.now:.0f}\t"
                f"{answer.last_rpc:.0f}\n")


def unsent(count: int, *, waiting: float = 75, running: int = 0, rpc_ago: float | None = 5,
           later: float = 0) -> Unsent:
    now = DB_NOW + later
    return Unsent(count, now - waiting, running, now,
                  0.0 if rpc_ago is None else now - rpc_ago)


def watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answers: list[Unsent | Exception],
          daemons: dict[str, bool] | None = None) -> tuple[StallWatch, Clock, list[str],
                                                           FakeDatabase]:
    root = make_project(tmp_path, {"feeder": True, "transitioner": True}
                        if daemons is None else daemons)
    database = FakeDatabase(answers)
    monkeypatch.setattr(boinc_stall, "query", database)
    clock, said = Clock(), []
    return StallWatch(root, "my_tag", now=clock, say=said.append), clock, said, database


def run_for(w: StallWatch, clock: Clock, seconds: float, *, open_units: int = 12,
            came_back: bool = False, step: float = 0.5) -> None:
    """Poll as the wait loop does for ``seconds``."""
    end = clock.t + seconds
    while clock.t < end:
        w.tick(open_units, came_back)
        clock.t += step


def test_work_flowing_never_asks_the_database(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, said, database = watch(tmp_path, monkeypatch, [unsent(12)])
    for _ in range(10):  # a result every 50 s: never a quiet minute
        run_for(w, clock, 49.5)
        w.tick(12, True)
    run_for(w, clock, 300, open_units=0)  # nothing out: nothing to look at
    assert database.asked == [] and said == []


def test_a_stopped_feeder_is_said_once_with_how_long_and_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, said, database = watch(tmp_path, monkeypatch, [unsent(12, waiting=75)],
                                     daemons={"feeder": False, "transitioner": True})
    run_for(w, clock, 59)
    assert database.asked == []  # not before a quiet minute
    run_for(w, clock, 32)
    assert said == ["pymw: 12 work unit(s) unsent for 75 s: the feeder is not running "
                    "(bin/start starts it; pymw-admin status)"]
    asked = len(database.asked)
    assert asked == 2  # one look cannot tell; the second, 30 s on, can
    run_for(w, clock, 300)
    assert len(said) == 1  # once a stall
    assert len(database.asked) - asked == 10  # every 30 s, no more
    assert "w.name LIKE 'pymw!_my!_tag!_%' ESCAPE '!'" in database.asked[0]


def test_a_stall_is_said_again_after_ten_minutes_and_when_its_reason_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, said, _ = watch(tmp_path, monkeypatch, [unsent(12, rpc_ago=600)])
    run_for(w, clock, 91)
    assert len(said) == 1
    run_for(w, clock, boinc_stall.REPEAT)
    assert len(said) == 2 and said[0] == said[1]
    pid_file = w.root / "pid_vm" / "transitioner.pid"
    pid_file.write_text(f"{_dead_pid()}\n")
    run_for(w, clock, 31)
    assert said[-1].endswith(": the transitioner is not running (bin/start starts it; "
                             "pymw-admin status)")
    (w.root / "stop_daemons").write_text("")
    run_for(w, clock, 31)
    assert said[-1].endswith(": the project's daemons are stopped (a stop_daemons file: "
                             "bin/start starts them; pymw-admin status)")
    assert len(said) == 4


def test_both_sending_daemons_down_are_named_together(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"feeder": False, "transitioner": False})
    assert boinc_stall.stopped_daemons(root) == (
        "the feeder and transitioner are not running (bin/start starts them; pymw-admin status)")
    assert boinc_stall.stopped_daemons(make_project(tmp_path / "b", {})) == ""


def test_a_daemon_disabled_or_run_on_another_host_is_not_missed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "config.xml").write_text(
        "<boinc><config><host>vm</host></config><daemons>"
        "<daemon><cmd>feeder</cmd><disabled>1</disabled></daemon>"
        "<daemon><cmd>transitioner</cmd><host>other</host></daemon></daemons></boinc>")
    assert boinc_stall.stopped_daemons(root) == ""


def test_no_host_asking_says_since_when(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, said, _ = watch(tmp_path, monkeypatch, [unsent(12, rpc_ago=3600)])
    run_for(w, clock, 91)
    since = time.strftime("%H:%M", time.localtime(DB_NOW - 3600))
    assert said == [f"pymw: 12 work unit(s) unsent for 75 s: no volunteer host has asked for "
                    f"work since {since} (attach a client, or wait)"]


def test_no_host_ever(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, said, _ = watch(tmp_path, monkeypatch, [unsent(3, waiting=600, rpc_ago=None)])
    run_for(w, clock, 91)
    assert said == ["pymw: 3 work unit(s) unsent for 10 min: no volunteer host has ever asked "
                    "for work (attach a client, or wait)"]


def test_busy_hosts_and_a_generic_reason(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, said, _ = watch(tmp_path, monkeypatch, [unsent(96, running=4)])
    run_for(w, clock, 91)
    assert said == ["pymw: 96 work unit(s) unsent for 75 s: 4 other(s) run on the volunteers' "
                    "hosts and keep them busy (attach more clients, or wait)"]
    w2, clock2, said2, _ = watch(tmp_path / "b", monkeypatch, [unsent(5)])
    run_for(w2, clock2, 91)
    assert said2 == ["pymw: 5 work unit(s) unsent for 75 s: hosts ask for work but are sent "
                     "none of these (pymw-admin status: the app versions' platforms, recent "
                     "failures)"]


def test_a_trickle_is_no_stall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long tasks: nothing comes back for minutes, but each look finds fewer unsent."""
    answers: list[Unsent | Exception] = [unsent(100 - n, waiting=600) for n in range(30)]
    w, clock, said, _ = watch(tmp_path, monkeypatch, answers)
    run_for(w, clock, 600)
    assert said == []


def test_young_work_units_are_no_stall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, said, _ = watch(tmp_path, monkeypatch, [unsent(12, waiting=30)])
    run_for(w, clock, 120)
    assert said == []


def test_the_end_of_a_stall_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[Unsent | Exception] = [unsent(12), unsent(12), unsent(12), unsent(7)]
    w, clock, said, _ = watch(tmp_path, monkeypatch, answers, daemons={"feeder": False})
    run_for(w, clock, 91)
    assert len(said) == 1
    run_for(w, clock, 31, came_back=True)  # results alone do not end it: sending does
    assert len(said) == 1
    run_for(w, clock, 31, came_back=True)
    assert said[-1] == "pymw: work units are being sent again"
    run_for(w, clock, 120, came_back=True)
    assert len(said) == 2


def test_every_unsent_work_unit_sent_ends_it_too(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    w, clock, said, _ = watch(tmp_path, monkeypatch, [unsent(12), unsent(12), unsent(0)],
                              daemons={"feeder": False})
    run_for(w, clock, 91)
    run_for(w, clock, 31)
    assert said[1:] == ["pymw: work units are being sent again"]


@pytest.mark.parametrize("failure", [DatabaseError("ERROR 2002: Can't connect"),
                                     OSError("no mysql"), ValueError("junk")])
def test_a_failed_look_is_one_line_and_never_ends_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    w, clock, said, database = watch(tmp_path, monkeypatch, [failure])
    run_for(w, clock, 3600)
    assert said == [f"pymw: cannot tell whether work units are being sent ({failure})"]
    assert len(database.asked) <= 3600 / boinc_stall.BACK_OFF + 1  # it backs off


def test_a_junk_answer_is_a_failed_look() -> None:
    with pytest.raises(ValueError, match="unexpected answer"):
        boinc_stall.parse_unsent("1\t2\n")


def test_the_query_takes_only_a_tag() -> None:
    with pytest.raises(ValueError):
        boinc_stall.unsent_sql("a' OR 1=1 --")


def test_the_interface_polls_the_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook in the wait loop: each poll tells the watch what is open and what came back."""
    from pymw_admin.interfaces import boinc
    from tests.unit.test_boinc_interface import TASK, make_project

    ticks: list[tuple[int, bool]] = []
    monkeypatch.setattr(boinc.StallWatch, "tick",
                        lambda self, open_units, came_back: ticks.append((open_units, came_back)))
    monkeypatch.setenv("FAKE_CREATE_WORK_QUEUE", "1")  # work units made, none run
    interface = boinc.BoincInterface(make_project(tmp_path), tag="t", poll_seconds=0.01)
    try:
        interface.submit("1", TASK)
        assert interface.wait(0.05) == []
        assert ticks and set(ticks) == {(1, False)}
    finally:
        interface.detach()
