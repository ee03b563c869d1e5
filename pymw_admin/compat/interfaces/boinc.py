"""PyMW 0.4's ``BOINCInterface``: builds this version's ``boinc`` interface with 0.4's options."""

from __future__ import annotations

from typing import Any

from pymw_admin.interfaces import make_interface


def BOINCInterface(**options: Any) -> Any:
    """0.4's keyword options (num_workers, project_home, ...); options this version has no use
    for (python_loc, ...) are ignored."""
    return make_interface("boinc", **options)
