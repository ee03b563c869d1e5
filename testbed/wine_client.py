"""A second real BOINC client that also runs Windows app versions, through wine.

Debian's Linux client, with ``<alt_platform>windows_x86_64</alt_platform>`` in its cc_config.xml,
asks the scheduler for Windows app versions too; it starts their main program (a Windows .exe)
with execv, and binfmt_misc hands it to wine (``foreign.binfmt``). It runs as the test project's
owner with its own data directory (CACHE/boinc-client-wine) and GUI RPC port, so the first
client's tests never see it, and a wine prefix of that user's in the cache.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from testbed import boinc_client, foreign
from testbed.cache import CACHE, apt_install

USER = boinc_client.USER
DATA = CACHE / "boinc-client-wine"
RPC_PORT = int(os.environ.get("PYMW_BOINC_WINE_RPC_PORT", "31427"))
PID_FILE = DATA / "pymw-client.pid"
EMAIL = "pymw-wine-tests@example.org"
CC_CONFIG = """<cc_config>
    <log_flags>
        <task_debug>1</task_debug>
        <sched_op_debug>1</sched_op_debug>
    </log_flags>
    <options>
        <alt_platform>windows_x86_64</alt_platform>
        <report_results_immediately>1</report_results_immediately>
    </options>
</cc_config>
"""


def boinccmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["boinccmd", "--host", f"localhost:{RPC_PORT}", "--passwd", "",
                           *args], capture_output=True, text=True, timeout=timeout, check=False)


def _answers() -> bool:
    return boinccmd("--get_cc_status", timeout=10).returncode == 0


def up() -> Path:
    """The client runs, wine ready for its user (idempotent)."""
    foreign.wine()
    foreign.wine_prefix_for(USER)
    if _answers():
        return DATA
    apt_install("boinc-client")
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "gui_rpc_auth.cfg").write_text("")
    (DATA / "global_prefs_override.xml").write_text(boinc_client.PREFS)
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
            raise RuntimeError(f"the wine BOINC client exited ({proc.returncode}); see "
                               f"{DATA}/stderrdae.txt")
        time.sleep(0.1)
    raise RuntimeError("the wine BOINC client does not answer boinccmd")


def attach(master_url: str) -> None:
    """Attach with an account of its own: the scheduler would take a second client of the same
    user on the same machine for the first one's host, and refuse one of them "too recent"."""
    if master_url in boinccmd("--get_project_status").stdout:
        return
    auth = ""
    for command in (("--lookup_account", master_url, EMAIL, boinc_client.PASSWORD),
                    ("--create_account", master_url, EMAIL, boinc_client.PASSWORD, "pymw wine")):
        out = boinccmd(*command)
        auth = next((ln.split("account key:", 1)[1].strip() for ln in out.stdout.splitlines()
                     if "account key:" in ln), "")
        if auth:
            break
    if not auth:
        raise RuntimeError(f"no account on {master_url}: {out.stdout.strip()}")
    result = boinccmd("--project_attach", master_url, auth)
    if result.returncode != 0:
        raise RuntimeError(f"boinccmd --project_attach failed: {result.stderr or result.stdout}")


def update(master_url: str) -> None:
    boinccmd("--project", master_url, "update")


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
