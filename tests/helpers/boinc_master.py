"""Masters on the BOINC test project: start one as the project owner, wait for it, kill what a
test left running; the project a session fixture made; where the timings go."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed import boinc_client
from testbed.boinc_project import MASTER_URL, OWNER, PROJECT_DIR, WORK
from testbed.cache import CACHE
from tests.conftest import ROOT as REPO


@dataclass
class Project:
    project_file: Path
    dir: Path = PROJECT_DIR
    master_url: str = MASTER_URL
    timings: dict[str, float] = field(default_factory=dict)


def record_timing(key: str, value: object) -> None:
    """Timings where the closing notes can read them."""
    path = CACHE / "boinc-timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2))


@dataclass
class MasterRun:
    proc: subprocess.Popen[str]
    started: float
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    def finish(self, timeout: float = 300) -> MasterRun:
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_master(self.proc)
            self.stdout, self.stderr = self.proc.communicate()
            raise AssertionError(f"the master did not end in {timeout} s:\n{self.stderr[-2000:]}"
                                 f"\nclient: {boinc_client.messages()[-3000:]}") from None
        self.seconds = time.monotonic() - self.started
        return self

def start_master(python: str, script: Path, *args: str) -> MasterRun:
    """Run a master script on the server as the project owner."""
    proc = subprocess.Popen(
        ["sudo", "-n", "-u", OWNER, "-H", python, str(script), "-i", "boinc", "-p",
         str(PROJECT_DIR), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
        start_new_session=True)  # its own group: a test that ends early kills all of it
    STARTED.append(proc)
    return MasterRun(proc, time.monotonic())

STARTED: list[subprocess.Popen[str]] = []

def kill_master(proc: subprocess.Popen[str]) -> None:
    """The master and sudo above it (killing sudo alone leaves the master polling)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

def write_script(name: str, text: str) -> Path:
    path = WORK / name
    path.write_text(text)
    path.chmod(0o644)
    return path

def tag(label: str) -> str:
    return f"{label}{os.getpid()}{int(time.time()) % 100000}"


def kill_started_masters() -> None:
    while STARTED:
        kill_master(STARTED.pop())


__all__ = ["REPO", "MasterRun", "Project", "kill_started_masters", "record_timing",
           "start_master", "tag", "write_script"]
