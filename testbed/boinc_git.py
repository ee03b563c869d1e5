"""A git repository of BOINC that the test host serves itself, for init-project's default kind of
source (a git URL with a release tag) with no outside network.

The repository is the testbed's bare copy of its one BOINC git source (testbed/boinc_source.py:
$PYMW_BOINC_GIT, else BOINC's public repository), holding the server release tags.
``serve()`` runs ``git daemon`` inside the vm's network namespace, so the host clones
``git://VM_ADDR/boinc.git`` the way it would clone the public repository. Tests that need it skip,
naming what is missing, when there is none.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from testbed import boinc_source, ssh_host
from testbed.cache import CACHE

PORT = 9418
RELEASE = boinc_source.RELEASE


def find() -> Path | None:
    return boinc_source.bare_repository()


def missing_reason() -> str:
    return boinc_source.missing_reason()


def _answers() -> bool:
    try:
        with socket.create_connection((ssh_host.VM_ADDR, PORT), timeout=0.5):
            return True
    except OSError:
        return False


def serve() -> str:
    """Serve the repository on the vm's address (idempotent); return its git:// URL."""
    repo = find()
    if repo is None:
        raise RuntimeError(missing_reason())
    ssh_host.up()
    if not _answers():
        pid_file = CACHE / "boinc-git-daemon.pid"
        # the repository is root's; the daemon serves it as nobody (safe.directory lets it)
        ssh_host.run_in_vm(
            "env", "HOME=/nonexistent", "git", "-c", "safe.directory=*", "daemon", "--detach",
            "--informative-errors", "--reuseaddr", "--export-all",
            f"--base-path={repo.parent}", f"--listen={ssh_host.VM_ADDR}", f"--port={PORT}",
            f"--pid-file={pid_file}", "--user=nobody", "--group=nogroup", str(repo))
        deadline = time.monotonic() + 10
        while not _answers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"git daemon does not answer on {ssh_host.VM_ADDR}:{PORT}")
            time.sleep(0.1)
    return f"git://{ssh_host.VM_ADDR}/{repo.name}"


def up() -> str:
    return serve() if find() else missing_reason()


def down() -> None:
    pid_file = CACHE / "boinc-git-daemon.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), 15)
        pid_file.unlink(missing_ok=True)


def status() -> str:
    if find() is None:
        return missing_reason()
    return f"BOINC git repository {'served' if _answers() else 'not served'} on port {PORT}"
