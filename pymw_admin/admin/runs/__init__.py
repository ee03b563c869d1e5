"""Master scripts run on the project's server, detached, started from the admin's machine:
``control`` (a run's files, listing, start, follow, stop), ``upload`` (what a run takes from
the admin's machine), ``venv`` (the server's Python environment for runs).

On the server a run is one directory, ``PROJECT/pymw/runs/ID/`` (ID = 1, 2, 3 ...), owned by the
project's owner:

    SCRIPT.py, local modules, data files   uploaded; the run's working directory
    run.sh        the wrapper: records pid, start, end and exit status around the script
    meta.json     who started what: script, args, local modules, data files, pymw-admin version
    script_name   the script's file name (read by the listing's shell loop)
    pid           the wrapper's pid = the run's process group and session id (setsid)
    master_pid    the master script's own pid (the wrapper's child)
    started       start time (epoch seconds); ``ended`` and ``exit`` when it is over
    log           stdout and stderr, merged, unbuffered
    stopped       present when ``pymw-admin stop`` ended it

The script runs as the owner with the Python of a venv under the owner's home
(``~OWNER/.pymw-admin/venv``) holding this very pymw-admin version, built here as a wheel and
installed there; it is rebuilt and reinstalled only when the package's sources change. The
environment gives the script ``-i boinc -p PROJECT`` as defaults (PYMW_INTERFACE,
PYMW_PROJECT_HOME), which its own switches override.
"""

from __future__ import annotations

from pymw_admin.admin.runs.control import (
    CLOSING_LINES,
    EARLY_END_SECONDS,
    FIELD_SEP,
    RUN_FILES,
    STOP_GRACE,
    EarlyEnd,
    RunInfo,
    boinc_tag,
    check_project,
    check_run_id,
    closing_lines,
    drop_tag,
    early_end,
    early_end_command,
    follow,
    get_run,
    list_runs,
    listing_command,
    parse_listing,
    read_log,
    runs_dir,
    start,
    stop,
    venv_dir,
)
from pymw_admin.admin.runs.upload import (
    RunPlan,
    data_placement,
    local_modules,
    run_script,
)
from pymw_admin.admin.runs.venv import (
    ServerPython,
    ensure_environment,
    local_wheel,
    source_hash,
    source_root,
    wheelhouse,
)

__all__ = [
    "CLOSING_LINES",
    "EARLY_END_SECONDS",
    "FIELD_SEP",
    "RUN_FILES",
    "STOP_GRACE",
    "EarlyEnd",
    "RunInfo",
    "RunPlan",
    "ServerPython",
    "boinc_tag",
    "check_project",
    "check_run_id",
    "closing_lines",
    "data_placement",
    "drop_tag",
    "early_end",
    "early_end_command",
    "ensure_environment",
    "follow",
    "get_run",
    "list_runs",
    "listing_command",
    "local_modules",
    "local_wheel",
    "parse_listing",
    "read_log",
    "run_script",
    "runs_dir",
    "source_hash",
    "source_root",
    "start",
    "stop",
    "venv_dir",
    "wheelhouse",
]
