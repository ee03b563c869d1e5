"""A task's last words outlive its process: what it wrote to stderr before a crash (an abort, a
segfault, a kill such as the OOM killer's) is on its worker's own stderr, where BOINC keeps it as
stderr.txt and HTCondor as the job's .err, though no result record was ever written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pymw_admin.wire.encoding import decode_result_header, encode_task

CRASHES = {
    "abort": "os.abort()",
    "segfault": "import ctypes; ctypes.string_at(0)",
    "kill": "os.kill(os.getpid(), signal.SIGKILL)",
    "raise": "raise RuntimeError('no crash: a record')",
}
# the worker a one-shot engine runs, and the bundle's main program as BOINC's client runs it
ENTRIES = ("pymw_admin.worker.run", "pymw_admin.bundles.entry")


def run_worker(tmp_path: Path, entry: str, crash: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "task.py"
    script.write_text("import os, signal, sys\n"
                      "print('about to crash', file=sys.stderr, flush=True)\n"
                      f"{CRASHES[crash]}\n")
    (tmp_path / "task").write_bytes(encode_task("t", str(script)))
    return subprocess.run([sys.executable, "-m", entry, "task", "result"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("crash", ["abort", "segfault", "kill"])
def test_a_crashed_tasks_stderr_is_on_the_workers_own(tmp_path: Path, entry: str,
                                                      crash: str) -> None:
    done = run_worker(tmp_path, entry, crash)
    assert done.returncode < 0, done.stderr  # the signal ended the worker: no record
    assert not (tmp_path / "result").exists()
    assert done.stderr.splitlines()[-1] == "about to crash", done.stderr


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_task_that_raises_says_it_in_its_record_and_on_stderr(tmp_path: Path,
                                                                entry: str) -> None:
    done = run_worker(tmp_path, entry, "raise")
    assert done.returncode == 0, done.stderr
    record = decode_result_header((tmp_path / "result").read_bytes())
    assert record.error_type == "RuntimeError"
    assert record.stderr == "about to crash\n"
    assert done.stderr.count("about to crash") == 1  # the bundle no longer writes it again
