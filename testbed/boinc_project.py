"""The BOINC test project: its name, owner, directory, URL, and the work directory the owner
reads scripts and the master's venv from. The BOINC tests deploy it; `invoke bench` uses it."""

from __future__ import annotations

from pathlib import Path

from testbed import boinc_client, ssh_host
from testbed.cache import CACHE

NAME = "pymwtest"
OWNER = boinc_client.USER
PROJECT_DIR = Path(f"/home/{OWNER}/projects/{NAME}")
MASTER_URL = f"http://{ssh_host.VM_ADDR}/{NAME}/"
WORK = CACHE / "boinc-tests"  # scripts and the master's venv, readable by the owner


def clear_queue() -> None:
    """Cancel every unsent result an earlier session left (a benchmark or run killed midway):
    masters of this session must not wait behind them. (The feeder drops the cancelled ones from
    its slots within a minute by itself: init-project gives it --purge_stale. Restarting the
    daemons here instead answered a client's request "feeder not running", and the client then
    waited an hour.)"""
    import subprocess

    sql = ("UPDATE workunit SET error_mask = error_mask | 16, transition_time = UNIX_TIMESTAMP() "
           "WHERE id IN (SELECT workunitid FROM result WHERE server_state = 2); "
           "UPDATE result SET server_state = 5, outcome = 5 WHERE server_state = 2;")
    subprocess.run(["mysql", NAME, "-e", sql], check=True)
    # an earlier benchmark made upload fan-out directories the web server could not write to
    # (BOINC's upload handler then drops the file and answers success): give them back
    repair = ('cd "$1" && find upload -mindepth 1 -maxdepth 1 -type d -user "$(id -un)" '
              '! -perm -g+w -exec chmod 2771 {} +')
    done = ssh_host.run_in_vm("sudo", "-n", "-u", OWNER, "sh", "-c", repair, "sh",
                              str(PROJECT_DIR))
    if done.returncode != 0:
        raise RuntimeError(f"repairing {NAME}'s upload directories failed: {done.stderr.strip()}")
