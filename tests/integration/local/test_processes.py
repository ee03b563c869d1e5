"""No zombie or orphaned worker after cleanup, an exception in the master, or Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import default_sigint

SCRIPT = """
import sys, time
from pymw_admin.runtime import Master

def slow(x):
    import time
    time.sleep(30)
    return x

master = Master("local", num_workers=2)
tasks = [master.submit_task(slow, (i,)) for i in range(2)]
time.sleep(0.5)
with open(sys.argv[1], "w") as f:
    f.write(" ".join(map(str, master.interface.pids())))
mode = sys.argv[2]
if mode == "raise":
    raise RuntimeError("the master script failed")
if mode == "with":
    with master:
        raise RuntimeError("inside with")
master.get_result()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def _run(
    tmp_path: Path, mode: str, clean_env: dict[str, str]
) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "master.py"
    script.write_text(SCRIPT)
    pids_file = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(pids_file), mode],
        env=clean_env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 30
    while not (pids_file.exists() and pids_file.read_text().strip()):
        assert time.monotonic() < deadline, "the master never started its workers"
        time.sleep(0.05)
    return proc, [int(p) for p in pids_file.read_text().split()]


def _assert_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)], "worker processes outlived their master"


@pytest.mark.parametrize("mode", ["raise", "with"])
def test_no_worker_survives_an_exception_in_the_master(
    tmp_path: Path, mode: str, clean_env: dict[str, str]
) -> None:
    proc, pids = _run(tmp_path, mode, clean_env)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "RuntimeError" in stderr
    _assert_gone(pids)


def test_no_worker_survives_ctrl_c(tmp_path: Path, clean_env: dict[str, str]) -> None:
    proc, pids = _run(tmp_path, "wait", clean_env)
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    _assert_gone(pids)


def test_no_worker_survives_a_killed_master(tmp_path: Path, clean_env: dict[str, str]) -> None:
    proc, pids = _run(tmp_path, "wait", clean_env)
    proc.kill()
    proc.communicate(timeout=30)
    _assert_gone(pids)
