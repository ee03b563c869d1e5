"""The app's assimilator daemon (``bin/pymw_assimilator --app APP``) on the real project database.

Work units of a separate app with no app version (``pymwassim``: no client runs them) are made
ready the way BOINC's validator leaves them: a canonical result with its upload in the upload
hierarchy, a work unit that failed with its replicas' stderr, one whose canonical result record
is gone, and one whose upload was lost. One pass files each as the master expects, marks them
all done as BOINC's assimilator does, and a second pass finds nothing to do. The daemon's normal
runs (started by bin/start) are shown by the end-to-end tests with the real client.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed.boinc_project import OWNER, PROJECT_DIR
from tests.helpers.boinc_master import Project, tag, write_script

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

APP = "pymwassim"

SCRIPT = r'''
import json, os, subprocess, sys, time
from pathlib import Path

from pymw_admin.admin import boincxml
from pymw_admin.interfaces.boinc import ProjectLayout
from pymw_admin.interfaces.boinc_database import query

root, app, tag = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
config = (root / "config.xml").read_text()


def sql(statement):
    return query(root, statement)


project_xml = root / "project.xml"
if app not in boincxml.project_apps(project_xml.read_text()):
    project_xml.write_text(boincxml.add_app(project_xml.read_text(), app, "pymw-admin tests"))
    subprocess.run(["bin/xadd"], cwd=root, check=True, capture_output=True)
(root / "templates" / f"{app}_in").write_text(boincxml.input_template())
(root / "templates" / f"{app}_out").write_text(boincxml.output_template())
app_id = int(sql(f"SELECT id FROM app WHERE name='{app}'"))
layout = ProjectLayout.read(root)
upload_dir = Path(boincxml.config_value(config, "upload_dir") or root / "upload")
uploads = ProjectLayout(root, upload_dir, layout.fanout, "")
host_tmp = next(p for p in root.glob("tmp_*") if p.is_dir())
results = root / "pymw" / "results"
kinds = ("ok", "failed", "gone", "lost")
names = {kind: f"pymw_{tag}_{kind}" for kind in kinds}


def file_ref(result_name):
    name = f"{result_name}_r4242_0"
    return name, (f"<file_info>\n<name>{name}</name>\n<generated_locally/>\n</file_info>\n"
                  f"<result>\n<name>{result_name}</name>\n<file_ref>\n"
                  f"<file_name>{name}</file_name>\n<open_name>pymw_result</open_name>\n"
                  "</file_ref>\n</result>\n")


def add_result(wu_id, result_name, outcome, xml_doc_in="", stderr=""):
    fields = {"create_time": "UNIX_TIMESTAMP()", "workunitid": wu_id, "server_state": 5,
              "outcome": outcome, "name": f"'{result_name}'", "appid": app_id,
              "xml_doc_in": f"'{xml_doc_in}'", "stderr_out": f"'{stderr}'",
              "exit_status": 0 if outcome == 1 else 1, "validate_state": 1 if outcome == 1 else 0}
    for zero in ("client_state", "hostid", "userid", "report_deadline", "sent_time",
                 "received_time", "cpu_time", "batch", "file_delete_state", "claimed_credit",
                 "granted_credit", "opaque", "random", "app_version_num", "teamid", "priority",
                 "elapsed_time", "flops_estimate", "app_version_id", "runtime_outlier",
                 "peak_working_set_size", "peak_swap_size", "peak_disk_usage"):
        fields[zero] = 0
    sql(f"INSERT INTO result ({', '.join(fields)}) VALUES "
        f"({', '.join(str(v) for v in fields.values())})")
    return int(sql(f"SELECT id FROM result WHERE name='{result_name}'"))


out = {}
try:
    for name in names.values():
        layout.stage(f"{name}.task", b"task")
    subprocess.run(["bin/create_work", "--appname", app, "--wu_template", f"templates/{app}_in",
                    "--result_template", f"templates/{app}_out", "--stdin"],
                   input="".join(f"--wu_name {n} {n}.task\n" for n in names.values()),
                   text=True, cwd=root, check=True, capture_output=True)
    # the transitioner stays away (its results would be named WU_0, WU_1: ours are WU_5...)
    sql(f"UPDATE workunit SET transition_time=UNIX_TIMESTAMP()+86400 WHERE appid={app_id}")
    wu = {kind: int(sql(f"SELECT id FROM workunit WHERE name='{name}'"))
          for kind, name in names.items()}
    canonical, mask = {}, {"failed": 2}
    upload_name, xml = file_ref(f"{names['ok']}_5")
    canonical["ok"] = add_result(wu["ok"], f"{names['ok']}_5", 1, xml)
    upload = uploads.download_path(upload_name)
    if not upload.parent.is_dir():
        upload.parent.mkdir(mode=0o2771)
        upload.parent.chmod(0o2771)
    upload.write_bytes(b"the canonical result's record")
    for i in range(2):
        add_result(wu["failed"], f"{names['failed']}_{5 + i}", 3,
                   stderr=f"<stderr_txt>\nreplica {i} says boom\n</stderr_txt>")
    canonical["gone"] = 2**31 - 1  # BOINC's assimilator: the canonical record was deleted
    _, xml = file_ref(f"{names['lost']}_5")
    canonical["lost"] = add_result(wu["lost"], f"{names['lost']}_5", 1, xml)
    for kind in kinds:  # as the validator leaves them
        sql(f"UPDATE workunit SET canonical_resultid={canonical.get(kind, 0)}, "
            f"error_mask={mask.get(kind, 0)}, assimilate_state=1, "
            f"transition_time=UNIX_TIMESTAMP()+86400 WHERE id={wu[kind]}")
    started = int(time.time())
    command = ["../bin/pymw_assimilator", "--app", app, "--one_pass"]
    first = subprocess.run(command, cwd=host_tmp, capture_output=True, text=True)
    out["first"] = [first.returncode, first.stdout + first.stderr]
    out["filed"] = {p.name: p.read_bytes().decode() for p in results.glob(f"pymw_{tag}_*")}
    out["upload_left"] = upload.exists()
    out["file_delete_state"] = int(sql(f"SELECT file_delete_state FROM result "
                                       f"WHERE id={canonical['ok']}"))
    rows = sql(f"SELECT name, assimilate_state, error_mask, transition_time FROM workunit "
               f"WHERE appid={app_id} AND name LIKE 'pymw\\_{tag}\\_%'")
    out["work_units"] = {n: [int(s), int(m), int(t) >= started]
                         for n, s, m, t in (r.split("\t") for r in rows.splitlines())}
    second = subprocess.run(command, cwd=host_tmp, capture_output=True, text=True)
    out["second"] = [second.returncode, second.stdout + second.stderr]
    out["filed_again"] = {p.name: p.read_bytes().decode() for p in results.glob(f"pymw_{tag}_*")}
finally:
    sql(f"DELETE FROM result WHERE appid={app_id}; DELETE FROM workunit WHERE appid={app_id}")
    for name in names.values():
        layout.download_path(f"{name}.task").unlink(missing_ok=True)
        for path in results.glob(f"{name}.*"):
            path.unlink()
    for path in upload_dir.glob(f"*/pymw_{tag}_*"):
        path.unlink()
print("OUT", json.dumps(out))
'''


def test_one_pass_files_every_kind_of_ready_work_unit(project: Project, master_python: str) -> None:
    run_tag = tag("assim")
    script = write_script("assimilator_check.py", SCRIPT)
    done = subprocess.run(["sudo", "-n", "-u", OWNER, "-H", master_python, str(script),
                           str(PROJECT_DIR), APP, run_tag],
                          capture_output=True, text=True, timeout=300, cwd="/", check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("OUT "))[4:])
    assert out["first"][0] == 0 and "filed 4 work unit(s)" in out["first"][1], out["first"]
    name = f"pymw_{run_tag}"
    filed = out["filed"]
    assert filed[f"{name}_ok.result"] == "the canonical result's record"
    # moved out, and its files marked deleted (2, DONE): BOINC's file deleter passes over them
    assert out["upload_left"] is False
    assert out["file_delete_state"] == 2
    failed = json.loads(filed[f"{name}_failed.error"])
    assert failed["error_mask"] == 2 and failed["error"] == "too many error results"
    assert "replica 0 says boom" in failed["stderr"] and "replica 1 says boom" in failed["stderr"]
    assert json.loads(filed[f"{name}_gone.error"])["error"] == "no canonical result"
    assert "upload was lost" in json.loads(filed[f"{name}_lost.error"])["error"]
    assert set(filed) == {f"{name}_ok.result", f"{name}_failed.error", f"{name}_gone.error",
                          f"{name}_lost.error"}
    # as BOINC's assimilator leaves them: done, and the transitioner called back at once
    assert out["work_units"] == {f"{name}_ok": [2, 0, True], f"{name}_failed": [2, 2, True],
                                 f"{name}_gone": [2, 32, True], f"{name}_lost": [2, 0, True]}
    assert out["second"][0] == 0 and "filed" not in out["second"][1], out["second"]
    assert out["filed_again"] == filed
