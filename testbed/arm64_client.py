"""A third real BOINC client, Debian's arm64 build, run under qemu-user in an arm64 root.

It runs inside ``foreign.arm64_client_root()`` (chroot, with its own mount namespace for /proc and
/dev, so nothing stays mounted), as the test project's owner, with its own data directory, GUI RPC
port and account (see wine_client: one account per client on one machine). Being an arm64
program, it asks the scheduler for aarch64-unknown-linux-gnu app versions, and runs them under
qemu-user too (binfmt_misc's F flag makes that work inside the chroot).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

from testbed import boinc_client, foreign

USER = boinc_client.USER
RPC_PORT = int(os.environ.get("PYMW_BOINC_ARM64_RPC_PORT", "31437"))
EMAIL = "pymw-arm64-tests@example.org"
INSIDE = "/var/lib/pymw-client"  # the data directory, as the client sees it
CC_CONFIG = """<cc_config>
    <log_flags>
        <task_debug>1</task_debug>
        <sched_op_debug>1</sched_op_debug>
    </log_flags>
    <options>
        <report_results_immediately>1</report_results_immediately>
    </options>
</cc_config>
"""


def root() -> Path:
    return foreign.arm64_client_root()


def data() -> Path:
    return root() / INSIDE.lstrip("/")


def boinccmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["boinccmd", "--host", f"localhost:{RPC_PORT}", "--passwd", "",
                           *args], capture_output=True, text=True, timeout=timeout, check=False)


def _answers() -> bool:
    return boinccmd("--get_cc_status", timeout=10).returncode == 0


def _add_user(tree: Path) -> tuple[int, int]:
    entry = pwd.getpwnam(USER)
    # the packages were only unpacked: base-passwd's script would have made these from its masters
    for name in ("passwd", "group"):
        if not (tree / "etc" / name).exists():
            master = tree / "usr/share/base-passwd" / f"{name}.master"
            (tree / "etc" / name).write_text(master.read_text())
    passwd = tree / "etc/passwd"
    if f"\n{USER}:" not in "\n" + passwd.read_text():
        with passwd.open("a") as f:
            f.write(f"{USER}:x:{entry.pw_uid}:{entry.pw_gid}::{INSIDE}:/bin/sh\n")
        with (tree / "etc/group").open("a") as f:
            f.write(f"{USER}:x:{entry.pw_gid}:\n")
    return entry.pw_uid, entry.pw_gid


def up() -> Path:
    """The arm64 client runs and answers boinccmd (idempotent)."""
    boinc_client.up()  # this machine's boinccmd, and the owner account
    tree = root()
    if _answers():
        return data()
    uid, gid = _add_user(tree)
    directory = data()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "gui_rpc_auth.cfg").write_text("")
    (directory / "global_prefs_override.xml").write_text(boinc_client.PREFS)
    (directory / "cc_config.xml").write_text(CC_CONFIG)
    subprocess.run(["chown", "-R", f"{uid}:{gid}", str(directory)], check=True)
    script = (f"mount -t proc proc {tree}/proc && mount --rbind /dev {tree}/dev && "
              f"exec chroot --userspec={uid}:{gid} {tree} /usr/bin/env HOME={INSIDE} "
              f"/usr/bin/boinc --dir {INSIDE} --skip_cpu_benchmarks --no_gpus --redirectio "
              f"--gui_rpc_port {RPC_PORT}")
    log = open(directory / "pymw-client.out", "ab")  # noqa: SIM115 (the client keeps it)
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    (directory / "pymw-client.pid").write_text(f"{proc.pid}\n")
    for _ in range(600):  # the client starts under emulation
        if _answers():
            return directory
        if proc.poll() is not None:
            raise RuntimeError(f"the arm64 BOINC client exited ({proc.returncode}); see "
                               f"{directory}/pymw-client.out")
        time.sleep(0.2)
    raise RuntimeError("the arm64 BOINC client does not answer boinccmd")


def attach(master_url: str) -> None:
    if master_url in boinccmd("--get_project_status").stdout:
        return
    auth = ""
    for command in (("--lookup_account", master_url, EMAIL, boinc_client.PASSWORD),
                    ("--create_account", master_url, EMAIL, boinc_client.PASSWORD,
                     "pymw arm64")):
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
    """Stop the client (its data directory stays); its mounts end with its namespace."""
    pid_file = data() / "pymw-client.pid"
    if not pid_file.exists():
        return
    if _answers():
        boinccmd("--quit")
    with contextlib.suppress(ValueError, OSError):
        pid = int(pid_file.read_text().split()[0])
        for _ in range(150):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
