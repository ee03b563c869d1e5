"""A real BOINC client (Debian's boinc-client) for the BOINC tests, attached to a test project.

It runs as the project owner's user with its own data directory (CACHE/boinc-client), an empty
gui_rpc_auth.cfg (boinccmd needs no password) and preferences that let it work while the machine
is busy: ``boinc --dir D --skip_cpu_benchmarks --no_gpus --redirectio``. ``attach`` gets an
account with ``boinccmd --lookup_account`` (or ``--create_account``) and attaches; ``update``
makes it ask the scheduler at once (it backs off after "no work"). ``down()`` stops it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from testbed.cache import CACHE, apt_install

USER = os.environ.get("PYMW_BOINC_CLIENT_USER", "boincpymw")  # the test project's owner
DATA = CACHE / "boinc-client"
RPC_PORT = int(os.environ.get("PYMW_BOINC_RPC_PORT", "31416"))
PID_FILE = DATA / "pymw-client.pid"
EMAIL, PASSWORD = "pymw-tests@example.org", "pymw-tests-password"

PREFS = """<global_preferences>
    <run_if_user_active>1</run_if_user_active>
    <run_gpu_if_user_active>0</run_gpu_if_user_active>
    <idle_time_to_run>0</idle_time_to_run>
    <suspend_cpu_usage>0</suspend_cpu_usage>
    <suspend_if_no_recent_input>0</suspend_if_no_recent_input>
    <max_ncpus_pct>100</max_ncpus_pct>
    <cpu_usage_limit>100</cpu_usage_limit>
    <work_buf_min_days>0.01</work_buf_min_days>
    <work_buf_additional_days>0.01</work_buf_additional_days>
    <disk_max_used_pct>90</disk_max_used_pct>
    <disk_min_free_gb>0.5</disk_min_free_gb>
    <dont_verify_images>0</dont_verify_images>
</global_preferences>
"""
CC_CONFIG = """<cc_config>
    <log_flags>
        <task_debug>1</task_debug>
        <sched_op_debug>1</sched_op_debug>
    </log_flags>
    <options>
        <max_file_xfers_per_project>8</max_file_xfers_per_project>
        <report_results_immediately>1</report_results_immediately>
    </options>
</cc_config>
"""


def boinccmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["boinccmd", "--host", f"localhost:{RPC_PORT}", "--passwd", "",
                           *args], capture_output=True, text=True, timeout=timeout, check=False)


def _answers() -> bool:
    if shutil.which("boinccmd") is None:
        return False
    return boinccmd("--get_cc_status", timeout=10).returncode == 0


def _ensure_user() -> None:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        # a group of that name outlives its user when www-data is in it (the owner step adds it)
        group = ["-g", USER] if subprocess.run(["getent", "group", USER], capture_output=True,
                                               check=False).returncode == 0 else []
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", *group, USER], check=True)


def up() -> Path:
    """The client runs and answers boinccmd (idempotent; at once when it already runs)."""
    if _answers():
        return DATA
    apt_install("boinc-client")
    _ensure_user()
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "gui_rpc_auth.cfg").write_text("")
    (DATA / "global_prefs_override.xml").write_text(PREFS)
    (DATA / "cc_config.xml").write_text(CC_CONFIG)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(DATA)], check=True)
    log = open(DATA / "pymw-client.out", "ab")  # noqa: SIM115 (the client keeps it)
    proc = subprocess.Popen(
        ["sudo", "-n", "-u", USER, "-H", "boinc", "--dir", str(DATA), "--skip_cpu_benchmarks",
         "--no_gpus", "--redirectio", "--gui_rpc_port", str(RPC_PORT)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    PID_FILE.write_text(f"{proc.pid}\n")
    for _ in range(200):
        if _answers():
            return DATA
        if proc.poll() is not None:
            raise RuntimeError(f"the BOINC client exited ({proc.returncode}); see "
                               f"{DATA}/stderrdae.txt")
        time.sleep(0.1)
    raise RuntimeError("the BOINC client does not answer boinccmd")


def attach(master_url: str) -> str:
    """Attach to the project (an account made on first use); returns the authenticator."""
    if master_url in boinccmd("--get_project_status").stdout:
        return ""
    auth = _account(master_url)
    result = boinccmd("--project_attach", master_url, auth)
    if result.returncode != 0:
        raise RuntimeError(f"boinccmd --project_attach failed: {result.stderr or result.stdout}")
    return auth


def _account(master_url: str) -> str:
    for command in (("--lookup_account", master_url, EMAIL, PASSWORD),
                    ("--create_account", master_url, EMAIL, PASSWORD, "pymw tests")):
        out = boinccmd(*command)
        for line in out.stdout.splitlines():
            if "account key:" in line:
                return line.split("account key:", 1)[1].strip()
    raise RuntimeError(f"no account on {master_url}: {out.stdout.strip()} {out.stderr.strip()}")


def update(master_url: str) -> None:
    """Ask the project's scheduler for work now."""
    boinccmd("--project", master_url, "update")


def forget_backoffs() -> None:
    """Ask every attached project now: after a test took a server down, the client that heard
    "feeder not running" would keep away from it for an hour, and later tests wait on it."""
    if not _answers():
        return
    for line in boinccmd("--get_project_status").stdout.splitlines():
        if "master URL:" in line:
            update(line.split("master URL:", 1)[1].strip())


def detach(master_url: str) -> None:
    boinccmd("--project", master_url, "detach")


def tasks() -> list[dict[str, str]]:
    """``boinccmd --get_tasks``, one dict a task (keys as boinccmd prints them)."""
    found: list[dict[str, str]] = []
    for line in boinccmd("--get_tasks").stdout.splitlines():
        line = line.strip()
        if line.endswith(") -----------"):
            found.append({})
        elif ":" in line and found:
            key, _, value = line.partition(":")
            found[-1][key.strip()] = value.strip()
    return found


def messages() -> str:
    return boinccmd("--get_messages", "0").stdout


def down() -> None:
    """Stop the client (its data directory stays)."""
    if not PID_FILE.exists():
        return
    if _answers():
        boinccmd("--quit")
    with contextlib.suppress(ValueError, OSError):
        pid = int(PID_FILE.read_text().split()[0])
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGTERM)
    PID_FILE.unlink(missing_ok=True)


def status() -> str:
    if not _answers():
        return "BOINC client is down"
    projects = [ln.split(":", 1)[1].strip() for ln in
                boinccmd("--get_project_status").stdout.splitlines()
                if ln.strip().startswith("master URL:")]
    return f"BOINC client runs as {USER} in {DATA}; attached to: {', '.join(projects) or 'none'}"
