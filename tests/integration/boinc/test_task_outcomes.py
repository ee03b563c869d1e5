"""`status` shows what tasks did: a task that raised is a BOINC success, so the project looked
healthy while every task of a run failed; now the run's tag counts its tasks that raised, by
exception type, with the newest examples, and a stop's cancellations are not failures."""

from __future__ import annotations

import json

import pytest

from tests.helpers.boinc_master import Project, start_master, tag, write_script
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

RAISERS = '''
from pymw_admin.runtime import Master, TaskError, options


def check(i):
    if i:
        raise ValueError(f"bad {i}\\nsecond line")
    return "fine"


with Master(interface=options.interface_from_args()) as master:
    tasks = [master.submit_task(check, (i,)) for i in range(5)]
    for task in tasks:
        try:
            print("OK", master.get_result(task, timeout=600)[1], flush=True)
        except TaskError as exc:
            print("RAISED", exc.remote_type, flush=True)
'''


def test_status_counts_the_tasks_that_raised(project: Project, master_python: str,
                                             kicker: None) -> None:
    mine = tag("raisers")
    script = write_script("raisers.py", RAISERS)
    run = start_master(master_python, script, "-a", f"tag={mine}").finish(timeout=900)
    assert run.proc.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("RAISED ValueError") == 4 and "OK fine" in run.stdout
    out = pymw_admin("status", "--json", "--project-file", str(project.project_file))
    data = json.loads(out.stdout)
    app = next(a for a in data["tasks"] if a["app"] == "pymw")
    mine_tagged = next(t for t in app["tags"] if t["tag"] == mine)
    assert mine_tagged["raised"] == {"ValueError": 4} and mine_tagged["ok"] == 1, mine_tagged
    examples = mine_tagged["raised_examples"]
    assert examples and all(e["message"].startswith("bad ") and "\n" not in e["message"]
                            for e in examples)
    assert mine_tagged["failed"] == []
    text = pymw_admin("status", "--project-file", str(project.project_file)).stdout
    assert "tasks that raised" in text and "ValueError" in text
