"""A second plain BOINC client, another volunteer's: its own account, data directory and GUI RPC
port, so a work unit with a quorum of 2 gets its replicas from two users (the project sends at
most one replica of a work unit to a user once a quorum master runs).

It runs as the test project's owner, like the first client (``boinc_client``), from
CACHE/boinc-client-2. ``down()`` detaches it from the project first: other tests' work then
never waits for a client that is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from testbed import boinc_client
from testbed.cache import CACHE, apt_install

USER = boinc_client.USER
DATA = CACHE / "boinc-client-2"
RPC_PORT = int(os.environ.get("PYMW_BOINC_RPC_PORT_2", "31428"))
PID_FILE = DATA / "pymw-client.pid"
EMAIL = "pymw-second-volunteer@example.org"


def boinccmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["boinccmd", "--host", f"localhost:{RPC_PORT}", "--passwd", "",
                           *args], capture_output=True, text=True, timeout=timeout, check=False)


def _answers() -> bool:
    return boinccmd("--get_cc_status", timeout=10).returncode == 0


def up() -> Path:
    """The client runs and answers boinccmd (idempotent)."""
    if _answers():
        return DATA
    apt_install("boinc-client")
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "gui_rpc_auth.cfg").write_text("")
    (DATA / "global_prefs_override.xml").write_text(boinc_client.PREFS)
    (DATA / "cc_config.xml").write_text(boinc_client.CC_CONFIG)
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
            raise RuntimeError(f"the second BOINC client exited ({proc.returncode}); see "
                               f"{DATA}/stderrdae.txt")
        time.sleep(0.1)
    raise RuntimeError("the second BOINC client does not answer boinccmd")


def attach(master_url: str) -> None:
    """Attach with this volunteer's own account (made on first use)."""
    if master_url in boinccmd("--get_project_status").stdout:
        return
    auth = ""
    for command in (("--lookup_account", master_url, EMAIL, boinc_client.PASSWORD),
                    ("--create_account", master_url, EMAIL, boinc_client.PASSWORD,
                     "pymw second volunteer")):
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


def down(master_url: str | None = None) -> None:
    """Detach from ``master_url`` (when given) and stop the client (its data stays)."""
    if master_url and _answers():
        boinccmd("--project", master_url, "detach")
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
