"""Bulk submission on the real test project: work units stream into BOINC's database while later
tasks are still being encoded, small tasks in their command lines or every task a file, and a
large object many tasks share is staged once and named by every work unit that needs it, and the
real client runs such tasks (in command lines: the deployed app's versions understand them).

The first two checks send their work units to a separate app, ``pymwscale``, registered with no
app version, so the attached client never runs them; they are deleted afterwards.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed.boinc_project import OWNER, PROJECT_DIR
from tests.helpers.boinc_master import Project, start_master, tag, write_script

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

APP = "pymwscale"

# the owner runs it with the master's Python: the app, then one check, printing JSON
SCRIPT = '''
import hashlib, json, os, re, subprocess, sys, time
from pathlib import Path

from pymw_admin.admin import boincxml
from pymw_admin.interfaces.boinc import BATCH_SIZE, BoincInterface
from pymw_admin.interfaces.boinc_database import query
from pymw_admin.runtime import Master

root, app, tag, check = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
config = (root / "config.xml").read_text()


def sql(statement):
    return query(root, statement)


def work_units():
    return int(sql(f"SELECT COUNT(*) FROM workunit WHERE name LIKE 'pymw\\\\_{tag}\\\\_%'"))


project_xml = root / "project.xml"
if app not in boincxml.project_apps(project_xml.read_text()):
    project_xml.write_text(boincxml.add_app(project_xml.read_text(), app, "pymw-admin tests"))
    subprocess.run(["bin/xadd"], cwd=root, check=True, capture_output=True)
(root / "templates" / f"{app}_in").write_text(boincxml.input_template())
(root / "templates" / f"{app}_out").write_text(boincxml.output_template())


def double(x):
    return 2 * x


BIG = os.urandom(1 << 20)  # a large object every task reads: over the sharing threshold


def size_plus(x):
    return len(BIG) + x


out = {}
iface = BoincInterface(root, app_name=app, tag=tag)
# the app has no versions, so no deploy-app notes: told what they say of a current app's
check, _, way = check.partition("-")
iface.inline_tasks = way != "file"
task_dir = Path(iface.layout.task_dir(iface.tag))


def task_files():
    return len(list(task_dir.glob("*.task"))) if task_dir.is_dir() else 0


def command_lines():
    return int(sql(f"SELECT COUNT(*) FROM workunit WHERE name LIKE 'pymw\\\\_{tag}\\\\_%' "
                   "AND xml_doc LIKE '%<command_line>%--pymw-task=%'"))


try:
    if check == "stream":
        count = 2 * BATCH_SIZE + 500

        def items():
            for i in range(count):
                if i == count - 1:  # the last task is about to be encoded
                    # held back until a full batch exists (or a minute): a master that made
                    # work units only at flush would make none meanwhile
                    deadline = time.monotonic() + 60
                    while work_units() < BATCH_SIZE and time.monotonic() < deadline:
                        time.sleep(0.05)
                    out["existing_before_last_encoded"] = work_units()
                yield i

        tasks = Master(iface).submit_many(double, items())
        iface.flush()
        out["tasks"] = len(tasks)
        out["created"] = work_units()
        out["task_files"] = task_files()
        out["command_lines"] = command_lines()
    elif check == "cancel":
        Master(iface).submit_many(double, range(1500))
        iface.flush()
        # the transitioner's unsent replicas of some of them, as a project at work has them
        time.sleep(3)
        out["unsent_before"] = int(sql(
            f"SELECT COUNT(*) FROM result r JOIN workunit w ON r.workunitid=w.id "
            f"WHERE w.name LIKE 'pymw\\\\_{tag}\\\\_%' AND r.server_state=2"))
        started = time.monotonic()
        iface.close()  # a clean end cancels what is still out
        out["cancel_seconds"] = time.monotonic() - started
        out["cancelled"] = int(sql(f"SELECT COUNT(*) FROM workunit WHERE name LIKE "
                                   f"'pymw\\_{tag}\\_%' AND error_mask & 16"))
        # replicas the transitioner was making meanwhile (from the work unit as it read it
        # before) it takes back on its next pass: the cancel called it back, as cancel_jobs does
        deadline = time.monotonic() + 120
        while True:
            out["unsent_after"] = int(sql(
                f"SELECT COUNT(*) FROM result r JOIN workunit w ON r.workunitid=w.id "
                f"WHERE w.name LIKE 'pymw\\\\_{tag}\\\\_%' AND r.server_state<=2"))
            if not out["unsent_after"] or time.monotonic() > deadline:
                break
            time.sleep(2)
    else:
        master = Master(iface)
        master.submit_many(size_plus, range(20))  # BIG reaches every task: shared, not copied
        iface.flush()
        rows = sql(f"SELECT xml_doc FROM workunit WHERE name LIKE 'pymw\\_{tag}\\_%'")
        names = set(re.findall(r"<name>(pymw_shared_[0-9a-f]{64})</name>", rows))
        out["created"] = work_units()
        out["shared_names"] = len(names)
        name = names.pop()
        out["naming_shared"] = rows.count(f"<name>{name}</name>")
        staged = list((root / "download").glob(f"*/{name}"))
        out["staged_copies"] = len(staged)
        md5 = hashlib.md5(staged[0].read_bytes()).hexdigest()
        out["md5_of_shared"] = rows.count(f"<md5_cksum>{md5}</md5_cksum>")
        out["task_files"] = task_files()
        out["command_lines"] = command_lines()
        # each task, in its command line (base64) or its file, is small beside the blob
        out["largest_task"] = max(
            [len(c) for c in re.findall(r"--pymw-task=([A-Za-z0-9+/=]+)", rows)]
            + [(task_dir / f"{iface.wu_name(t.task_id)}.task").stat().st_size
               for t in master.tasks if iface.wu_name(t.task_id) in iface._task_files])
        out["shared_size"] = staged[0].stat().st_size
finally:
    iface.close()
    app_id = sql(f"SELECT id FROM app WHERE name='{app}'").strip()
    sql(f"DELETE FROM result WHERE appid={app_id}; DELETE FROM workunit WHERE appid={app_id}")
    for path in (root / "download").glob(f"*/pymw_{tag}_*"):
        path.unlink()
    for path in (root / "download" / "pymw_tasks" / tag).glob("*"):
        path.unlink()
print("OUT", json.dumps(out))
'''


def run_check(master_python: str, check: str) -> dict[str, int]:
    script = write_script("boinc_scale_check.py", SCRIPT)
    done = subprocess.run(
        ["sudo", "-n", "-u", OWNER, "-H", master_python, str(script), str(PROJECT_DIR), APP,
         tag(check.replace("-", "")), check], capture_output=True, text=True, timeout=600,
        cwd="/", check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("OUT "))
    result: dict[str, int] = json.loads(line[4:])
    return result


@pytest.mark.parametrize("way", ["inline", "file"])
def test_work_units_exist_before_the_last_task_is_encoded(
        project: Project, master_python: str, way: str) -> None:
    out = run_check(master_python, f"stream-{way}")
    assert out["created"] == out["tasks"] == 2500
    # the first full batches were in BOINC's database while the master still encoded
    assert out["existing_before_last_encoded"] >= 1000, out
    # small tasks in their work units' command lines, or every one a file
    assert (out["command_lines"], out["task_files"]) == (
        (2500, 0) if way == "inline" else (0, 2500)), out


def test_a_clean_end_cancels_its_work_units_in_bulk(project: Project, master_python: str) -> None:
    """What cancel_jobs does one work unit at a time, for all of them at once: every work unit
    cancelled, and no replica left to send, in seconds (one cancel_jobs process each took about
    a tenth of a second)."""
    out = run_check(master_python, "cancel")
    assert out["cancelled"] == 1500, out
    assert out["unsent_after"] == 0, out
    assert out["cancel_seconds"] < 60, out


@pytest.mark.parametrize("way", ["inline", "file"])
def test_a_shared_blob_is_staged_once_for_every_work_unit(
        project: Project, master_python: str, way: str) -> None:
    out = run_check(master_python, f"shared-{way}")
    assert out["created"] == 20
    assert out["shared_names"] == 1
    assert out["naming_shared"] == 20  # every work unit's input list names the one file
    assert out["md5_of_shared"] == 20  # with its checksum, from the .md5 side file
    assert out["staged_copies"] == 1
    assert out["largest_task"] < out["shared_size"] // 100, out
    assert (out["command_lines"], out["task_files"]) == (
        (20, 0) if way == "inline" else (0, 20)), out



SHARED_RUN = """
import os
from pymw_admin.runtime import Master, options

BIG = os.urandom(1 << 20)  # over the sharing threshold: staged once, not in each task file


def size_plus(x):
    return len(BIG) + x


with Master(interface=options.interface_from_args()) as master:
    print("VALUES", master.map(size_plus, range(3)), flush=True)
"""


def test_tasks_sharing_a_large_object_run_on_the_real_client(
        project: Project, master_python: str, kicker: None) -> None:
    script = write_script("boinc_shared_run.py", SHARED_RUN)
    run = start_master(master_python, script, "-a", f"tag={tag('sharedrun')}").finish(timeout=400)
    assert run.proc.returncode == 0, run.stderr[-3000:]
    assert f"VALUES {[(1 << 20) + i for i in range(3)]}" in run.stdout, run.stdout
