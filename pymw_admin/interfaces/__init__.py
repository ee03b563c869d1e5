"""Interfaces: one module an engine, all behind ``interfaces.base.Interface``.

``make_interface(name, ...)`` builds one by name (PyMW's names accepted); an engine that is not
installed or configured raises ``EngineUnavailable`` naming what is missing.
"""

from __future__ import annotations

import importlib
from typing import Any

from pymw_admin.errors import EngineUnavailable, UsageError
from pymw_admin.interfaces.base import Completion, Interface, WorkerStats

# name -> module below pymw_admin.interfaces; each module has build(**options) -> Interface
INTERFACES: dict[str, str] = {
    "local": "local",
    "multicore": "local",  # PyMW's names for the same thing
    "generic": "local",
    "mpi": "mpi",
    "condor": "condor",
    "htcondor": "condor",
    "boinc": "boinc",
    "bundle": "bundle",  # the PyBOINC bundle in local slot directories (rehearse --bundle)
}


def interface_names() -> list[str]:
    return sorted(set(INTERFACES.values()))


def make_interface(name: str, **options: Any) -> Interface:
    """Build an interface by name with PyMW's options (num_workers, project_home, app_path...)."""
    module_name = INTERFACES.get(name.lower())
    if module_name is None:
        raise UsageError(
            f"unknown interface {name!r} (choose from {', '.join(interface_names())})"
        )
    try:
        module = importlib.import_module(f"pymw_admin.interfaces.{module_name}")
        # an engine may import its bindings only when built (mpi4py starts MPI on import)
        interface: Interface = module.build(**options)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("pymw_admin.interfaces"):
            raise EngineUnavailable(
                f"interface {name!r} is not available in this version"
            ) from None
        raise EngineUnavailable(
            f"interface {name!r} needs the Python module {exc.name!r}: "
            f"pip install 'pymw-admin[{module_name}]'"
        ) from None
    return interface


__all__ = ["Completion", "Interface", "WorkerStats", "interface_names", "make_interface"]
