"""How an MPI run ends: cleanly without cleanup, non-zero on errors, never a hang."""

from __future__ import annotations

import time

import pytest

from tests.integration.mpi.conftest import HERE, MODES, Run

pytestmark = pytest.mark.mpi
SCRIPT = HERE / "lifecycle.py"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_script_that_never_cleans_up_still_ends(run_master: Run, mode: str) -> None:
    start = time.monotonic()
    out = run_master(mode, SCRIPT, "no-cleanup", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("MASTER CODE RAN") == 1
    assert "results 361" in out.stdout
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_failing_master_script_ends_the_job_with_its_error(run_master: Run, mode: str) -> None:
    out = run_master(mode, SCRIPT, "raise", timeout=60)
    assert out.returncode != 0
    assert "RuntimeError: the master script failed" in out.stderr


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_killed_worker_rank_ends_the_job_instead_of_hanging(run_master: Run, mode: str) -> None:
    # MPICH ends the whole job when one of its MPI processes dies (see docs/interfaces/mpi.md);
    # what matters here is that the master does not wait forever for the lost rank
    start = time.monotonic()
    out = run_master(mode, SCRIPT, "kill-rank", timeout=60)
    assert "killing worker process" in out.stdout
    assert "MASTER SURVIVED" not in out.stdout
    assert out.returncode != 0
    assert time.monotonic() - start < 30


def test_a_worker_count_under_mpiexec_is_mpiexecs(run_master: Run) -> None:
    out = run_master("mpiexec", SCRIPT, "no-cleanup", "-n", "5", timeout=60)
    assert out.returncode == 0, out.stderr
    assert "warning: -n 5 ignored: mpiexec started 2 worker rank(s)" in out.stderr
