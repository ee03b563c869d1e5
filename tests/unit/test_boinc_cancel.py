"""Cancelling work units in bulk (``interfaces.boinc_cancel``), against a stand-in for mysql: the
statements are BOINC's ``cancel_job`` for many work units at once, finished ones left out."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pymw_admin.interfaces import boinc_cancel, boinc_database
from tests import fake_mysql


def project(tmp_path: Path, database: str = "<db_name>boinc</db_name>") -> Path:
    root = tmp_path / "proj"
    root.mkdir(parents=True)
    (root / "config.xml").write_text(
        f"<boinc><config>{database}<db_user>owner</db_user><db_passwd>secret</db_passwd>"
        "<db_host>db.example</db_host></config></boinc>")
    return root


def test_cancel_jobs_statements_a_thousand_names_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_mysql.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", fake_mysql.path_with(fake)["PATH"])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    names = [f"pymw_t_{i}" for i in range(2001)]
    boinc_cancel.cancel_work_units(project(tmp_path), names)
    [call] = fake_mysql.calls(fake)  # one mysql for all of them
    assert "secret" not in " ".join(call["args"]) and call["args"][-1] == "boinc"
    assert call["options"] == '[client]\nuser="owner"\npassword="secret"\nhost="db.example"\n'
    assert call["mode"] == "0o600"
    statements = call["statements"].splitlines()
    assert len(statements) == 9  # three a chunk: 1000, 1000, 1
    listed = "'pymw_t_2000'"
    unfinished = "canonical_resultid=0 AND {0}assimilate_state<1"
    assert statements[6] == (
        "UPDATE result r JOIN workunit w ON r.workunitid=w.id SET r.server_state=5, "
        f"r.outcome=5 WHERE r.server_state<=2 AND w.{unfinished.format('w.')} "
        f"AND w.name IN ({listed});")
    assert statements[7] == ("UPDATE workunit SET error_mask=error_mask|16, "
                             f"transition_time=UNIX_TIMESTAMP() WHERE {unfinished.format('')} "
                             f"AND name IN ({listed});")
    assert statements[8] == ("SELECT name FROM workunit WHERE error_mask&16=0 AND "
                             f"NOT ({unfinished.format('')}) AND name IN ({listed});")
    assert statements[0].count("'pymw_t_") == 1000
    assert not list(tmp_path.glob("pymw-cancel-*"))  # the option file is gone


def test_finished_work_units_are_told_apart_from_cancelled_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_mysql.install(tmp_path / "fake", [
        ("SELECT name FROM workunit", b"pymw_t_2\npymw_t_0\npymw_other_1\n")])
    monkeypatch.setenv("PATH", fake_mysql.path_with(fake)["PATH"])
    outcome = boinc_cancel.cancel_work_units(project(tmp_path), ["pymw_t_0", "pymw_t_1",
                                                                 "pymw_t_2", "pymw_t_3"])
    # in the order given; a name the database says that was not asked about is not ours
    assert outcome == boinc_cancel.Cancelled(cancelled=["pymw_t_1", "pymw_t_3"],
                                             finished=["pymw_t_0", "pymw_t_2"])


# work units as BOINC leaves them: (name, canonical_resultid, assimilate_state, error_mask) and
# their results: (work unit, server_state); 2 unsent, 4 in progress, 5 over
WORK_UNITS = [("pymw_t_new", 0, 0, 0), ("pymw_t_running", 0, 0, 0),
              ("pymw_t_validated", 7, 0, 0), ("pymw_t_assimilated", 8, 2, 0),
              ("pymw_t_failed", 0, 1, 8), ("pymw_t_other", 0, 0, 0)]
RESULTS = [("pymw_t_new", 2), ("pymw_t_new", 2), ("pymw_t_running", 4), ("pymw_t_running", 2),
           ("pymw_t_validated", 5), ("pymw_t_validated", 2), ("pymw_t_assimilated", 5),
           ("pymw_t_failed", 5), ("pymw_t_other", 2)]


def _in_sqlite(db: sqlite3.Connection) -> Callable[[Path, str], str]:
    """``query`` against an SQLite database: MySQL's UPDATE ... JOIN spelt as SQLite's
    UPDATE ... FROM, the rest as it is."""

    def run(_root: Path, statements: str) -> str:
        said = []
        for statement in statements.splitlines():
            joined = re.fullmatch(r"UPDATE result r JOIN workunit w ON (\S+) SET (.*?) WHERE (.*)",
                                  statement)
            if joined:
                on, changes, where = joined.groups()
                statement = (f"UPDATE result AS r SET {changes.replace('r.', '')} "
                             f"FROM workunit AS w WHERE {on} AND {where}")
            said += ["\t".join(map(str, row)) for row in db.execute(statement)]
        db.commit()
        return "".join(f"{line}\n" for line in said)

    return run


def test_the_statements_leave_what_boinc_finished_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = sqlite3.connect(":memory:")
    db.create_function("UNIX_TIMESTAMP", 0, lambda: 1234)
    db.execute("CREATE TABLE workunit (id INTEGER PRIMARY KEY, name TEXT UNIQUE, "
               "canonical_resultid INT, assimilate_state INT, error_mask INT, "
               "transition_time INT DEFAULT 0)")
    db.execute("CREATE TABLE result (id INTEGER PRIMARY KEY, workunitid INT, server_state INT, "
               "outcome INT DEFAULT 0)")
    db.executemany("INSERT INTO workunit (name, canonical_resultid, assimilate_state, error_mask)"
                   " VALUES (?, ?, ?, ?)", WORK_UNITS)
    db.executemany("INSERT INTO result (workunitid, server_state) SELECT id, ? FROM workunit "
                   "WHERE name=?", [(state, name) for name, state in RESULTS])
    monkeypatch.setattr(boinc_cancel, "query", _in_sqlite(db))
    asked = [name for name, *_ in WORK_UNITS if name != "pymw_t_other"] + ["pymw_t_gone"]
    outcome = boinc_cancel.cancel_work_units(tmp_path, asked)
    assert outcome.finished == ["pymw_t_validated", "pymw_t_assimilated", "pymw_t_failed"]
    assert outcome.cancelled == ["pymw_t_new", "pymw_t_running", "pymw_t_gone"]
    masks = dict(db.execute("SELECT name, error_mask FROM workunit"))
    assert masks == {"pymw_t_new": 16, "pymw_t_running": 16, "pymw_t_validated": 0,
                     "pymw_t_assimilated": 0, "pymw_t_failed": 8, "pymw_t_other": 0}
    touched = dict(db.execute("SELECT name, transition_time FROM workunit"))
    assert {name for name, when in touched.items() if when} == {"pymw_t_new", "pymw_t_running"}
    states = sorted(db.execute("SELECT w.name, r.server_state, r.outcome FROM result r "
                               "JOIN workunit w ON r.workunitid=w.id"))
    assert states == sorted([
        ("pymw_t_new", 5, 5), ("pymw_t_new", 5, 5),  # unsent: over, "didn't need"
        ("pymw_t_running", 4, 0), ("pymw_t_running", 5, 5),  # the one a volunteer has runs on
        ("pymw_t_validated", 5, 0), ("pymw_t_validated", 2, 0),  # finished: as BOINC left it
        ("pymw_t_assimilated", 5, 0), ("pymw_t_failed", 5, 0), ("pymw_t_other", 2, 0)])


def test_what_cannot_be_cancelled_in_bulk_says_why_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_mysql.install(tmp_path / "fake")
    monkeypatch.setenv("PATH", fake_mysql.path_with(fake)["PATH"])
    (fake / "fail").write_text("a warning first\nERROR 1045 (28000): Access denied\n")
    with pytest.raises(boinc_cancel.CancelFailed, match=r"^ERROR 1045 \(28000\): Access denied$"):
        boinc_cancel.cancel_work_units(project(tmp_path), ["pymw_t_1"])
    with pytest.raises(boinc_cancel.CancelFailed, match="names no database"):
        boinc_cancel.cancel_work_units(project(tmp_path / "other", database=""), ["pymw_t_1"])


def test_only_names_the_interface_makes_reach_the_statement(tmp_path: Path) -> None:
    root = project(tmp_path)
    for name in ("x' OR '1'='1", "a b", "a;b", "a\\b", ""):
        with pytest.raises(ValueError, match="not a work-unit name"):
            boinc_cancel.cancel_work_units(root, ["pymw_t_1", name])
    boinc_cancel.cancel_work_units(tmp_path / "nowhere", [])  # nothing to do: nothing read


@pytest.mark.skipif(shutil.which("mysql") is None, reason="no mysql client here")
def test_a_password_mysql_would_misread_reaches_it_whole(tmp_path: Path) -> None:
    """In an option file a # starts a comment and a backslash an escape: values are quoted
    (the assimilator writes them the same way: test_boinc_assimilator_daemon)."""
    password = 'a#b\\c" d '
    value = boinc_database._option_value
    options = tmp_path / "options.cnf"
    options.write_text(f"[client]\nuser={value('owner')}\npassword={value(password)}\n")
    said = subprocess.run(["mysql", f"--defaults-extra-file={options}", "--print-defaults"],
                          capture_output=True, text=True, check=True).stdout
    assert f"--user=owner --password={password} \n" in said
