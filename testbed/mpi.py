"""MPI for the mpi interface's tests and benchmark: mpi4py and MPICH's mpiexec from PyPI.

Both come with the ``mpi`` extra (``pip install 'pymw-admin[mpi]'``) into the running Python's
environment; the mpich wheel puts ``mpiexec`` (hydra) beside that Python and runs as root without
flags. ``up()`` installs the extra's two packages when they are missing, then proves that
``mpiexec -n 2`` starts this Python with mpi4py (about half a second).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from pymw_admin.interfaces.mpi import find_mpiexec

REQUIREMENTS = ("mpi4py>=4.0", "mpich>=4.2")  # keep in step with the `mpi` extra
# one line from rank 0 only: lines from several ranks may interleave on mpiexec's stdout
_PROBE = (
    "from mpi4py import MPI; c = MPI.COMM_WORLD; r = c.gather(c.Get_rank())\n"
    "if c.Get_rank() == 0: print('ranks', *r)"
)


@dataclass
class MpiTestbed:
    mpiexec: str
    python: str
    library: str


def _have_mpi4py() -> bool:
    probe = [sys.executable, "-c", "from mpi4py import MPI"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def up() -> MpiTestbed:
    mpiexec = find_mpiexec()
    if mpiexec is None or not _have_mpi4py():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
        mpiexec = find_mpiexec()
    if mpiexec is None:
        raise RuntimeError("no mpiexec beside this Python after installing the mpi extra")
    out = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, "-c", _PROBE],
        capture_output=True, text=True, timeout=60,
    )
    if out.returncode != 0 or out.stdout.strip() != "ranks 0 1":
        raise RuntimeError(f"mpiexec -n 2 with mpi4py failed: {out.stderr.strip()[-500:]}")
    version = subprocess.run(
        [sys.executable, "-c", "from mpi4py import MPI; print(MPI.Get_library_version())"],
        capture_output=True, text=True,
    ).stdout.strip().splitlines()
    return MpiTestbed(mpiexec=mpiexec, python=sys.executable, library=version[0] if version else "")


def down() -> None:
    """Nothing runs between tests: every mpiexec job ends with its master script."""


def status() -> str:
    mpiexec = find_mpiexec()
    if mpiexec is None:
        return "no mpiexec (pip install 'pymw-admin[mpi]')"
    return f"mpiexec at {mpiexec}" + ("" if _have_mpi4py() else "; mpi4py missing")
