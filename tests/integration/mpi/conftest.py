"""Fixtures for the mpi interface: a real MPICH mpiexec and mpi4py from the testbed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import testbed.mpi

HERE = Path(__file__).resolve().parent
WORKERS = 2  # mpiexec -n 3: rank 0 is the master, ranks 1 and 2 are workers

# how each launch mode starts a master script with WORKERS workers
MODES: dict[str, Callable[[testbed.mpi.MpiTestbed, str], list[str]]] = {
    "mpiexec": lambda tb, script: [tb.mpiexec, "-n", str(WORKERS + 1), tb.python, script,
                                   "-i", "mpi"],
    "spawn": lambda tb, script: [tb.python, script, "-i", "mpi", "-n", str(WORKERS)],
}


@pytest.fixture(scope="session")
def mpi() -> testbed.mpi.MpiTestbed:
    return testbed.mpi.up()


@pytest.fixture(scope="session")
def mpi_env() -> dict[str, str]:
    # no PYMW_ overrides, and no mpiexec on PATH: spawn mode must find its own
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYMW_")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def run_master(mpi: testbed.mpi.MpiTestbed, mpi_env: dict[str, str]) -> Run:
    def run(mode: str, script: str | Path, *args: str, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MODES[mode](mpi, str(script)), *args],
            capture_output=True, text=True, timeout=timeout, env=mpi_env, cwd=HERE, check=False,
            # MPICH ends a failed job by signalling its process group: keep pytest out of it
            start_new_session=True,
        )

    return run
