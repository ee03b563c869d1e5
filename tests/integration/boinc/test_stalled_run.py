"""A stalled run says why: with the project's daemons stopped, a master's work units stay unsent,
and the run's log gets one line saying so (not only "queued" for minutes); once they are sent
again, it says that too, and the run ends right."""

from __future__ import annotations

import subprocess
import time

import pytest

from testbed.boinc_project import OWNER, PROJECT_DIR
from tests.helpers.boinc_master import Project, tag, write_script
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

SCRIPT = '''
from pymw_admin.runtime import Master, options


def double(x):
    return 2 * x


with Master(interface=options.interface_from_args()) as master:
    print("SUM", sum(master.map(double, range(3))), flush=True)
'''


def _as_owner(*command: str) -> None:
    subprocess.run(["sudo", "-n", "-u", OWNER, *command], cwd=PROJECT_DIR, check=True,
                   capture_output=True)


def _wait_for(project: Project, run_id: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = pymw_admin("logs", run_id, "--project-file", str(project.project_file)).stdout
        if text in log:
            return log
        time.sleep(2)
    raise AssertionError(f"no {text!r} in run {run_id}'s log:\n{log}")


def test_a_run_whose_work_is_not_sent_says_why(project: Project, kicker: None) -> None:
    script = write_script("stalled.py", SCRIPT)
    _as_owner(str(PROJECT_DIR / "bin" / "stop"))  # bin/start --cron leaves them stopped too
    try:
        started = pymw_admin("run", "--detach", "--project-file", str(project.project_file),
                             str(script), "--", "-a", f"tag={tag('stall')}")
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.strip()
        log = _wait_for(project, run_id, "unsent for", timeout=300)
        assert "the project's daemons are stopped" in log, log
    finally:
        _as_owner(str(PROJECT_DIR / "bin" / "start"))
    log = _wait_for(project, run_id, "SUM 6", timeout=600)
    assert "pymw: work units are being sent again" in log, log
