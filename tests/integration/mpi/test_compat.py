"""A PyMW 0.4 master script on the mpi interface, with ``import pymw_admin.compat as pymw`` as its
only change, under a real ``mpiexec -n 3`` and in spawn mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.mpi.conftest import MODES, Run

pytestmark = pytest.mark.mpi

SCRIPT = """
import pymw_admin.compat as pymw

def double(x):
    return 2 * x

def nothing():
    return "no args"

interface = pymw.interfaces.mpi.MPIInterface(num_workers=2)
master = pymw.PyMW_Master(interface=interface)
print("MASTER CODE RAN", flush=True)
tasks = [master.submit_task(double, input_data=(i,)) for i in range(10)]
total = sum(master.get_result(task)[1] for task in tasks)
t0 = master.submit_task(nothing, input_data=None)
print("total", total, "nothing", master.get_result(t0)[1], flush=True)
t1 = master.submit_task(double, input_data=(7,))
print("nonblocking", master.get_result(t1, blocking=False) in ((None, None), (t1, 14)), flush=True)
print("blocking", master.get_result(t1)[1], "progress", master.get_progress(t1), flush=True)
print("status", sorted(master.get_status()), flush=True)
master.cleanup()
"""


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_pymw_04_script_runs_on_mpi(run_master: Run, mode: str, tmp_path: Path) -> None:
    script = tmp_path / "old_mpi_script.py"
    script.write_text(SCRIPT)
    out = run_master(mode, script)
    assert out.returncode == 0, out.stderr + out.stdout[-3000:]  # mpiexec reports on stdout
    assert out.stdout.count("MASTER CODE RAN") == 1
    assert "total 90 nothing no args" in out.stdout
    assert "nonblocking True" in out.stdout
    assert "blocking 14 progress 1.0" in out.stdout
    assert "status ['interface_status', 'tasks']" in out.stdout
