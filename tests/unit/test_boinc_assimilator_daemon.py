"""The assimilator daemon's pass (``pymw_assimilator --app APP``) against a stand-in for mysql:
what it asks the database, what it files, what it marks done. The real database is the
integration tests' (tests/integration/boinc/test_assimilator.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pymw_admin.interfaces import boinc_database
from pymw_admin.interfaces.boinc import ProjectLayout
from tests import fake_mysql
from tests.unit.test_boinc_scripts import installed

APP_ID = b"7\n"


def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "tmp_vm").mkdir(parents=True)
    (root / "upload").mkdir()
    (root / "config.xml").write_text(
        "<boinc><config><db_name>boinc</db_name><db_user>owner</db_user>"
        "<db_passwd>se#cr\\et&quot;</db_passwd>"
        f"<upload_dir>{root}/upload</upload_dir><uldl_dir_fanout>1024</uldl_dir_fanout>"
        "</config></boinc>")
    return root


def upload(root: Path, name: str, data: bytes) -> Path:
    path = ProjectLayout(root, root / "upload", 1024, "").download_path(name)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def xml_doc_in(file_name: str) -> bytes:
    # as mysql -B writes a field: newlines as \n
    return (f"<file_info>\\n<name>{file_name}</name>\\n</file_info>\\n<result>\\n<file_ref>\\n"
            f"<file_name>{file_name}</file_name>\\n<open_name>pymw_result</open_name>\\n"
            "</file_ref>\\n</result>\\n").encode()


def one_pass(tmp_path: Path, root: Path) -> subprocess.CompletedProcess[str]:
    script = installed(tmp_path, "pymw_assimilator", "pymw_boinc_contract.py") / "pymw_assimilator"
    return subprocess.run([sys.executable, "-I", str(script), "--app", "pymw", "--one_pass"],
                          capture_output=True, text=True, cwd=root / "tmp_vm", check=False,
                          env=fake_mysql.path_with(tmp_path / "fake"))


def test_a_pass_files_each_kind_and_marks_them_done(tmp_path: Path) -> None:
    root = project(tmp_path)
    uploaded = upload(root, "pymw_t_ok_0_r5_0", b"the record")
    fake = fake_mysql.install(tmp_path / "fake", [
        ("from app", APP_ID),
        ("from workunit", b"1\tpymw_t_ok\t11\t0\n2\tpymw_t_failed\t0\t2\n"
                          b"3\tpymw_t_gone\t99\t0\n"),
        ("select id, xml_doc_in", b"11\t" + xml_doc_in("pymw_t_ok_0_r5_0") + b"\n"),
        # a volunteer's stderr is a BLOB: any bytes, not only UTF-8
        ("select workunitid", b"2\t3\t1\t<stderr_txt>\\nboom \xff\xfe\x1b[2J\\n</stderr_txt>\n"),
    ])
    done = one_pass(tmp_path, root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "filed 3 work unit(s)" in done.stdout
    results = root / "pymw" / "results"
    assert (results / "pymw_t_ok.result").read_bytes() == b"the record"
    # moved, and its files marked deleted (below): nothing left for BOINC's file deleter
    assert not uploaded.exists()
    failed = json.loads((results / "pymw_t_failed.error").read_text())
    assert failed["error_mask"] == 2 and "boom" in failed["stderr"]
    assert failed["failed_results"] == 1  # its one replica: the task's one attempt
    gone = json.loads((results / "pymw_t_gone.error").read_text())
    assert gone["error_mask"] == 32 and gone["error"] == "no canonical result"
    assert gone["failed_results"] == 0
    statements = [c["statements"] for c in fake_mysql.calls(fake)]
    assert "app where name='pymw'" in statements[0]
    assert "appid=7 and assimilate_state=1" in statements[1]
    assert "where id in (11,99)" in statements[2]
    assert "workunitid in (2,3)" in statements[3]
    assert statements[4] == ("update result set file_delete_state=2 where id in (11) "
                             "and file_delete_state<2; "
                             "update workunit set error_mask=error_mask|32 where id in (3); "
                             "update workunit set assimilate_state=2, transition_time="
                             "unix_timestamp() where id in (1,2,3) and assimilate_state=1")
    call = fake_mysql.calls(fake)[0]
    password = 'se#cr\\et"'  # config.xml's, unescaped
    assert password not in " ".join(call["args"])  # the password: never on a command line
    # quoted so mysql reads it back whole (a # would start a comment), as the bulk cancel does
    assert "password=" + boinc_database._option_value(password) + "\n" in call["options"]
    assert call["mode"] == "0o600"


def test_mysqls_own_error_is_said_in_one_line(tmp_path: Path) -> None:
    root = project(tmp_path)
    fake = fake_mysql.install(tmp_path / "fake", [("from app", APP_ID)])
    (fake / "fail").write_text("mysql: Deprecated program name. It will be removed in a future "
                               "release, use '/usr/bin/mariadb' instead\nERROR 2002 (HY000): "
                               "Can't connect to local server through socket\n")
    done = one_pass(tmp_path, root)
    assert done.returncode == 1
    assert len(done.stdout.strip().splitlines()) == 1, done.stdout
    assert "ERROR 2002" in done.stdout and not done.stderr


def test_a_work_unit_that_cannot_be_filed_holds_back_no_other(tmp_path: Path) -> None:
    """It stays ready for the next pass; the rest of the batch is filed and marked done."""
    root = project(tmp_path)
    for name in ("pymw_t_a", "pymw_t_stuck", "pymw_t_b"):
        upload(root, f"{name}_0_r5_0", name.encode())
    blocked = root / "pymw" / "results" / "pymw_t_stuck.result"  # a rename onto it fails
    (blocked / "in_the_way").mkdir(parents=True)
    fake = fake_mysql.install(tmp_path / "fake", [
        ("from app", APP_ID),
        ("from workunit", b"1\tpymw_t_a\t11\t0\n2\tpymw_t_stuck\t12\t0\n3\tpymw_t_b\t13\t0\n"),
        ("select id, xml_doc_in", b"".join(
            b"%d\t%s\n" % (11 + i, xml_doc_in(f"{name}_0_r5_0"))
            for i, name in enumerate(("pymw_t_a", "pymw_t_stuck", "pymw_t_b")))),
    ])
    done = one_pass(tmp_path, root)
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout.strip().splitlines()[1:]  # after the line the daemon starts with
    assert len(said) == 2 and "1 work unit(s) not filed" in said[0] and "work unit 2:" in said[0]
    assert "filed 2 work unit(s)" in said[1]
    results = root / "pymw" / "results"
    assert (results / "pymw_t_a.result").read_bytes() == b"pymw_t_a"
    assert (results / "pymw_t_b.result").read_bytes() == b"pymw_t_b"
    update = fake_mysql.calls(fake)[-1]["statements"]
    assert "where id in (1,3) and assimilate_state=1" in update


def test_a_broken_config_xml_is_said_in_one_line(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "config.xml").write_text("<boinc><config>")
    fake_mysql.install(tmp_path / "fake")
    done = one_pass(tmp_path, root)
    assert done.returncode == 1 and not done.stderr, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1
    assert "cannot read the project's config.xml" in done.stdout


def _record(ok: bool, error_type: str = "", message: str = "") -> bytes:
    from pymw_admin.wire.encoding import ResultRecord, encode_result

    return encode_result(ResultRecord(task_id="ab-1", ok=ok, python="3.11", error_type=error_type,
                                      error_message=message, payload=b"\x80\x05never loaded"))


def _three_results(tmp_path: Path, root: Path) -> Path:
    names = ("pymw_mc_deadbeef_1", "pymw_mc_deadbeef_2", "pymw_mc_deadbeef_3")
    records = (_record(True), _record(False, "ValueError", "bad x\nmore"),
               _record(False, "ValueError", "bad y"))
    for name, record in zip(names, records, strict=True):
        upload(root, f"{name}_0_r5_0", record)
    return fake_mysql.install(tmp_path / "fake", [
        ("from app", APP_ID),
        ("from workunit", b"".join(b"%d\t%s\t%d\t0\n" % (n, name.encode(), 10 + n)
                                   for n, name in enumerate(names, 1))),
        ("select id, xml_doc_in", b"".join(b"%d\t%s\n" % (10 + n, xml_doc_in(f"{name}_0_r5_0"))
                                           for n, name in enumerate(names, 1))),
    ])


def test_a_pass_tallies_what_the_tasks_did(tmp_path: Path) -> None:
    """A task that raised is a BOINC success: its record's header says so, and the tally
    counts it by run tag and exception type for status."""
    root = project(tmp_path)
    _three_results(tmp_path, root)
    done = one_pass(tmp_path, root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "filed 3 work unit(s)" in done.stdout
    tally = json.loads((root / "pymw" / "outcomes" / "pymw.json").read_text())
    mc = tally["tags"]["mc"]
    assert (mc["ok"], mc["raised"], mc["unreadable"]) == (1, {"ValueError": 2}, 0)
    assert {e["wu"]: e["message"] for e in mc["examples"]["ValueError"]} == {
        "pymw_mc_deadbeef_2": "bad x", "pymw_mc_deadbeef_3": "bad y"}
    # filing is unchanged: each record moved whole
    assert (root / "pymw" / "results" / "pymw_mc_deadbeef_2.result").read_bytes() == _record(
        False, "ValueError", "bad x\nmore")


def test_a_tally_that_cannot_be_written_holds_back_no_filing(tmp_path: Path) -> None:
    root = project(tmp_path)
    fake = _three_results(tmp_path, root)
    (root / "pymw").mkdir()
    (root / "pymw" / "outcomes").write_text("a file where the directory goes")
    done = one_pass(tmp_path, root)
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout.strip().splitlines()
    assert len([ln for ln in said if "cannot write what the tasks did" in ln]) == 1, said
    assert "filed 3 work unit(s)" in said[-1]
    assert len(list((root / "pymw" / "results").glob("*.result"))) == 3
    assert "where id in (1,2,3) and assimilate_state=1" in fake_mysql.calls(fake)[-1]["statements"]
