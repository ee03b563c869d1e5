"""After a crash, running the same script again gives the complete and right answer: on the real
project, with the real client doing the work, through `pymw-admin run` as an admin runs it.

The script is an ordinary one: it submits its 24 tasks and adds up whatever `get_result()` gives.
The first run is killed (SIGKILL) after two results; the re-run with ``-a resume=yes`` prints the
right sum, and the database shows that no work unit was made for a task whose work existed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from testbed.boinc_project import NAME
from tests.helpers.boinc_master import Project, record_timing
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

SUMSQ = '''
import time
from pymw_admin.runtime import Master, options


def sq(i):
    time.sleep(1.5)
    return i * i


with Master(interface=options.interface_from_args()) as master:  # takes -a resume=yes
    for i in range(24):
        master.submit_task(sq, (i,))
    total = 0
    for n in range(24):
        total += master.get_result(timeout=900)[1]
        print("GOT", n + 1, flush=True)
    print("SUMSQ", total, flush=True)
'''
RIGHT = sum(i * i for i in range(24))  # 4324


def _cli(project: Project, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return pymw_admin(args[0], "--project-file", str(project.project_file), *args[1:],
                      timeout=timeout)


def _work_units(tag: str) -> int:
    query = f"SELECT COUNT(*) FROM workunit WHERE name LIKE 'pymw\\_{tag}\\_%'"
    return int(subprocess.run(["mysql", "-N", "-B", NAME, "-e", query], capture_output=True,
                              text=True, check=True).stdout.strip())


def _wait_for_log(project: Project, run_id: str, text: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = _cli(project, "logs", run_id).stdout
        if text in log:
            return log
        time.sleep(1.0)
    raise AssertionError(f"run {run_id} never printed {text!r}:\n{_cli(project, 'logs', run_id)}")


def test_a_killed_run_run_again_gives_the_right_sum_without_running_work_twice(
        project: Project, kicker: None, tmp_path: Path) -> None:
    tag = f"sumsq_{uuid.uuid4().hex[:6]}"
    script = tmp_path / f"{tag}.py"
    script.write_text(SUMSQ)

    started = _cli(project, "run", "--detach", str(script))
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip().split()[-1]
    _wait_for_log(project, run_id, "GOT 2")
    master_pid = int((project.dir / "pymw" / "runs" / run_id / "master_pid").read_text())
    os.kill(master_pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    runs: dict[str, dict[str, object]] = {}
    while time.monotonic() < deadline:
        runs = {str(r["id"]): r for r in json.loads(_cli(project, "runs", "--json").stdout)}
        if runs[run_id]["state"] != "running":
            break
        time.sleep(0.5)
    assert runs[run_id]["state"] == "exited(137)"
    made = _work_units(tag)
    assert made == 24

    # refused at its start: even detached, `run` says so and exits non-zero
    refused = _cli(project, "run", "--detach", str(script))
    assert refused.returncode != 0 and refused.stdout == ""
    assert "uncollected task(s) of an earlier master" in refused.stderr, refused.stderr

    began = time.monotonic()
    again = _cli(project, "run", str(script), "--", "-a", "resume=yes")
    resumed_seconds = time.monotonic() - began
    assert again.returncode == 0, again.stderr + again.stdout
    assert f"SUMSQ {RIGHT}" in again.stdout, again.stdout + again.stderr
    assert "result(s) from an earlier master, 0 computed anew" in again.stdout + again.stderr
    assert _work_units(tag) == made  # every task's work existed: no work unit made again
    again_id = re.search(r"run (\d+):", again.stderr)
    assert again_id is not None, again.stderr
    listed = {str(r["id"]): r for r in json.loads(_cli(project, "runs", "--json").stdout)}
    assert (listed[again_id.group(1)]["reused"], listed[again_id.group(1)]["computed"]) == (24, 0)

    # the resumed run ended cleanly: the tag is clean, and a plain run computes everything
    began = time.monotonic()
    fresh = _cli(project, "run", str(script))
    fresh_seconds = time.monotonic() - began
    assert fresh.returncode == 0, fresh.stderr + fresh.stdout
    assert f"SUMSQ {RIGHT}" in fresh.stdout
    assert _work_units(tag) == made + 24
    record_timing("resume_by_content", {"resumed_run_s": round(resumed_seconds, 1),
                                        "fresh_run_s": round(fresh_seconds, 1)})
    print(f"re-run after the crash {resumed_seconds:.1f} s, a fresh run {fresh_seconds:.1f} s")
