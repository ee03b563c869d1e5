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


STEPS_SCRIPT = """
import sys, time
from pathlib import Path
from pymw_admin.runtime import Master

def step(x):
    time.sleep(0.5)
    return x

marks = Path(sys.argv[-1])
with Master(num_workers=2) as master:
    for value in master.imap(step, range(40)):
        with marks.open("a") as f:
            f.write(f"{value}\\n")
"""


def _interrupt_after_three_results(command: list[str], marks: Path,
                                   env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not (marks.exists() and len(marks.read_text().split()) >= 3):
        assert time.monotonic() < deadline and proc.poll() is None, "no results came"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    return proc.returncode, stderr


def _done_of(stderr: str) -> tuple[int, int]:
    [line] = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    words = line.split()
    assert line == f"interrupted: {words[1]} of {words[3]} done"
    return int(words[1]), int(words[3])


def test_ctrl_c_in_a_master_script_says_how_far_the_run_got(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    script, marks = tmp_path / "steps.py", tmp_path / "marks"
    script.write_text(STEPS_SCRIPT)
    code, stderr = _interrupt_after_three_results([sys.executable, str(script), str(marks)],
                                                  marks, clean_env)
    assert code == -signal.SIGINT  # Python ends by SIGINT after Ctrl-C: a shell's status 130
    done, total = _done_of(stderr)
    assert 3 <= done < total == 40
    assert "Traceback" not in stderr


def test_ctrl_c_in_rehearse_says_how_far_the_run_got(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    script, marks = tmp_path / "steps.py", tmp_path / "marks"
    script.write_text(STEPS_SCRIPT)
    exe = Path(sys.executable).parent / "pymw-admin"
    command = ([str(exe)] if exe.exists() else [sys.executable, "-m", "pymw_admin.cli"])
    code, stderr = _interrupt_after_three_results(
        [*command, "rehearse", "-q", "-n", "2", str(script), str(marks)], marks, clean_env)
    assert code == 130
    done, total = _done_of(stderr)
    assert 3 <= done < total == 40
