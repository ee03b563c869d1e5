"""A task that crashes the same way on every host fails fast and speaks: with the master's
default retries=1 its work unit is given up after two failed replicas (not four), the master's
WorkerLost counts them in ``task.attempts``, and the line the task printed before it died is in
the error, as the real client reported it from the bundle's stderr."""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed.boinc_project import NAME
from tests.helpers.boinc_master import Project, record_timing, start_master, tag, write_script
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

ABORTS = '''
import sys
from pymw_admin.runtime import Master, WorkerLost, options


def aborts():
    import os, sys
    print("about to abort", file=sys.stderr, flush=True)
    os.abort()


with Master(interface=options.interface_from_args()) as master:
    task = master.submit_task(aborts)
    print("WU", master.interface.wu_name(task.task_id), flush=True)
    try:
        master.get_result(task, timeout=900)
    except WorkerLost as exc:
        print("LOST", task.attempts, str(exc).replace("\\n", "|"), flush=True)
        print("STDERR", task.stderr.replace("\\n", "|"), flush=True)
'''


def _sql(query: str) -> list[list[str]]:
    out = subprocess.run(["mysql", "-N", "-B", NAME, "-e", query], capture_output=True,
                         text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_a_task_that_aborts_fails_after_two_replicas_with_its_last_words(
        project: Project, master_python: str, kicker: None) -> None:
    script = write_script("aborts.py", ABORTS)
    run = start_master(master_python, script, "-a", f"tag={tag('abort')}").finish(timeout=900)
    assert run.proc.returncode == 0, run.stderr[-3000:]
    record_timing("abort_fails_after_s", round(run.seconds, 1))
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in run.stdout.splitlines()
             if " " in line}
    assert "LOST" in lines, run.stdout + run.stderr[-3000:]
    attempts, message = lines["LOST"].split(" ", 1)
    assert attempts == "2", message
    assert "(2 failed replicas)" in message and message.endswith("stderr: about to abort")
    assert lines["STDERR"].count("about to abort") == 2
    wu = lines["WU"]
    (limits,) = _sql(f"SELECT max_error_results, max_total_results, id FROM workunit "
                     f"WHERE name='{wu}'")
    assert limits[:2] == ["1", "3"]
    # the master heard of it after the assimilator filed it: the work unit's results are final
    outcomes = [row[0] for row in _sql(f"SELECT outcome FROM result WHERE workunitid={limits[2]}")]
    sent = [o for o in outcomes if o != "5"]  # 5: didn't need (made, never sent)
    assert sorted(sent) == ["3", "3"], outcomes  # two client errors, no third host
    # and status shows what the task said before it died
    status = json.loads(pymw_admin("status", "--json", "--project-file",
                                   str(project.project_file)).stdout)
    mine = [f for f in status["failures"] if f["workunit"] == wu]
    assert mine and all("about to abort" in f["reason"] for f in mine if f["kind"] == "result"), \
        mine
