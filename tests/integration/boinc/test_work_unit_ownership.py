"""A run's BOINC work units are its own: a clean exit or `pymw-admin stop` cancels those still open
(BOINC then never sends them), `keep=yes` keeps them for a later `resume=yes`, and `pymw-admin runs
drop TAG` cancels what a tag's earlier masters left, after which a plain master may use the tag."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from testbed.boinc_project import NAME
from tests.helpers.boinc_master import Project, start_master, tag, write_script
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

SUBMIT_AND_LEAVE = '''
import sys, time
from pymw_admin.runtime import Master, options


def square(x):
    return x * x


with Master(interface=options.interface_from_args()) as master:
    if sys.argv[-1] == "resume":
        print("RESUMED", len(master.resumed), flush=True)
        master.interface.detach()  # leave them (as a crash would) for runs drop
        sys.exit(0)
    for i in range(2):
        master.submit_task(square, (i,))
    master.interface.flush()
    print("SUBMITTED", flush=True)
    if sys.argv[-1] == "wait":
        time.sleep(600)  # stopped here
'''

CANCELLED = 16  # WU_ERROR_CANCELLED


def _masks(wanted_tag: str) -> list[int]:
    query = f"SELECT error_mask FROM workunit WHERE name LIKE 'pymw\\_{wanted_tag}\\_%'"
    out = subprocess.run(["mysql", "-N", "-B", NAME, "-e", query], capture_output=True,
                         text=True, check=True).stdout
    return [int(v) for v in out.split()]


def _wait_masks(wanted_tag: str, count: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    masks = _masks(wanted_tag)
    while time.monotonic() < deadline and (len(masks) != count
                                           or not all(m & CANCELLED for m in masks)):
        time.sleep(0.5)
        masks = _masks(wanted_tag)
    return masks


def test_a_clean_exit_cancels_the_runs_work_units(project: Project, master_python: str) -> None:
    script = write_script("submit_and_leave.py", SUBMIT_AND_LEAVE)
    mine = tag("clean")
    run = start_master(master_python, script, "-a", f"tag={mine}", "exit").finish(timeout=120)
    assert run.proc.returncode == 0, run.stderr
    masks = _masks(mine)
    assert len(masks) == 2 and all(m & CANCELLED for m in masks), masks


def test_kept_work_units_are_resumed_or_dropped(project: Project, master_python: str) -> None:
    script = write_script("submit_and_leave.py", SUBMIT_AND_LEAVE)
    mine = tag("kept")
    run = start_master(master_python, script, "-a", f"tag={mine} keep=yes",
                       "exit").finish(timeout=120)
    assert run.proc.returncode == 0, run.stderr
    assert _masks(mine) == [0, 0]  # kept: still to be sent
    resumed = start_master(master_python, script, "-a", f"tag={mine} resume=yes",
                           "resume").finish(timeout=120)
    assert "RESUMED 2" in resumed.stdout, resumed.stderr
    dropped = pymw_admin("runs", "drop", mine, "--project-file", str(project.project_file))
    assert dropped.returncode == 0, dropped.stderr
    assert f"tag {mine}: cancelled 2 work unit(s)" in dropped.stdout
    assert all(m & CANCELLED for m in _masks(mine))
    plain = start_master(master_python, script, "-a", f"tag={mine}", "exit").finish(timeout=120)
    assert plain.proc.returncode == 0, plain.stderr  # the tag is free of leftovers


def test_stop_cancels_the_runs_work_units(project: Project, tmp_path: object) -> None:
    script = write_script("submit_and_wait.py", SUBMIT_AND_LEAVE)
    mine = tag("stop")
    started = pymw_admin("run", "--detach", "--project-file", str(project.project_file),
                         str(script), "--", "-a", f"tag={mine}", "wait")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    deadline = time.monotonic() + 300
    while "SUBMITTED" not in pymw_admin("logs", run_id, "--project-file",
                                        str(project.project_file)).stdout:
        assert time.monotonic() < deadline, "the run never submitted"
        time.sleep(1)
    stopped = pymw_admin("stop", run_id, "--project-file", str(project.project_file))
    assert stopped.returncode == 0, stopped.stderr
    # stop says what the master settled (a work unit the client finished first is kept)
    assert re.search(r"pymw: cancelled \d+ work unit\(s\)", stopped.stdout), stopped.stdout
    masks = _wait_masks(mine, 2)
    assert len(masks) == 2 and all(m & CANCELLED for m in masks), masks
    # a stop is a clean end: the same script on the same tag runs again, not refused
    again = pymw_admin("run", "--project-file", str(project.project_file), str(script), "--",
                       "-a", f"tag={mine}")
    assert again.returncode == 0 and "SUBMITTED" in again.stdout, again.stdout + again.stderr


def _done(wanted_tag: str) -> list[tuple[int, int]]:
    """(assimilated: 1 or 0, error mask) of the tag's work units."""
    query = (f"SELECT canonical_resultid<>0 AND assimilate_state=2, error_mask FROM workunit "
             f"WHERE name LIKE 'pymw\\_{wanted_tag}\\_%'")
    out = subprocess.run(["mysql", "-N", "-B", NAME, "-e", query], capture_output=True,
                         text=True, check=True).stdout
    return [(int(a), int(b)) for a, b in (line.split() for line in out.splitlines())]


def test_finished_work_stays_done_through_stop_and_drop(project: Project, kicker: None) -> None:
    """A run stopped after the client finished its work units (validated, not collected):
    they stay done (never marked cancelled), their result files go with the run's end, and
    `runs drop` finds nothing left to cancel."""
    script = write_script("submit_and_wait.py", SUBMIT_AND_LEAVE)
    mine = tag("finished")
    started = pymw_admin("run", "--detach", "--project-file", str(project.project_file),
                         str(script), "--", "-a", f"tag={mine}", "wait")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    deadline = time.monotonic() + 600
    while not ((done := _done(mine)) and len(done) == 2 and all(c for c, _ in done)):
        assert time.monotonic() < deadline, f"the client never finished them: {done}"
        time.sleep(2)
    stopped = pymw_admin("stop", run_id, "--project-file", str(project.project_file))
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(5)  # the transitioner and assimilator have their turn
    assert [mask for _, mask in _done(mine)] == [0, 0]  # done, not cancelled
    results = project.dir / "pymw" / "results"
    assert not [p.name for p in results.iterdir() if p.name.startswith(f"pymw_{mine}_")]
    dropped = pymw_admin("runs", "drop", mine, "--project-file", str(project.project_file))
    assert dropped.returncode == 0, dropped.stderr
    assert [mask for _, mask in _done(mine)] == [0, 0]
