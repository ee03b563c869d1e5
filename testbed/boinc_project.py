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
