"""Cancelling work units in bulk (``interfaces.boinc_cancel``), against a stand-in for mysql: the
statements are BOINC's ``cancel_job`` for many work units at once."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
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
    assert len(statements) == 6  # two a chunk: 1000, 1000, 1
    listed = "'pymw_t_2000'"
    assert statements[4] == (
        "UPDATE result r JOIN workunit w ON r.workunitid=w.id SET r.server_state=5, "
        f"r.outcome=5 WHERE r.server_state<=2 AND w.name IN ({listed});")
    assert statements[5] == ("UPDATE workunit SET error_mask=error_mask|16, "
                             f"transition_time=UNIX_TIMESTAMP() WHERE name IN ({listed});")
    assert statements[0].count("'pymw_t_") == 1000
    assert not list(tmp_path.glob("pymw-cancel-*"))  # the option file is gone


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
