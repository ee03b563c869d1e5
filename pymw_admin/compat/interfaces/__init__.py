"""PyMW 0.4's interface modules: ``pymw.interfaces.multicore.MulticoreInterface`` and friends."""

from pymw_admin.compat.interfaces import boinc, condor, generic, mpi, multicore

__all__ = ["boinc", "condor", "generic", "mpi", "multicore"]
