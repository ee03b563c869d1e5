"""Where the tests find a BOINC server source tree: $PYMW_BOINC_SRC, else CACHE/boinc-src.

Nothing here fetches or builds it: the tree is checked out by hand outside the project (see
docs/admin-guide.md), and ``init-project --boinc-source DIR`` builds it like any admin's source.
Tests that need it skip, naming what is missing, when there is none.
"""

from __future__ import annotations

import os
from pathlib import Path

from testbed.cache import CACHE


def find() -> Path | None:
    explicit = os.environ.get("PYMW_BOINC_SRC")
    candidate = Path(explicit) if explicit else CACHE / "boinc-src"
    return candidate if (candidate / "sched").is_dir() and (candidate / "tools").is_dir() else None


def find_older() -> Path | None:
    """An older server release to upgrade from: $PYMW_BOINC_SRC_OLD, else CACHE/boinc-src-1.6.1
    (a checkout of server_release/1.6/1.6.1)."""
    explicit = os.environ.get("PYMW_BOINC_SRC_OLD")
    candidate = Path(explicit) if explicit else CACHE / "boinc-src-1.6.1"
    return candidate if (candidate / "sched").is_dir() and (candidate / "tools").is_dir() else None


def older_missing_reason() -> str:
    where = os.environ.get("PYMW_BOINC_SRC_OLD") or str(CACHE / "boinc-src-1.6.1")
    return (f"no older BOINC server source tree at {where} to upgrade from (set "
            "PYMW_BOINC_SRC_OLD to a checkout of e.g. server_release/1.6/1.6.1)")


def missing_reason() -> str:
    where = os.environ.get("PYMW_BOINC_SRC") or str(CACHE / "boinc-src")
    return (f"no BOINC server source tree at {where} (set PYMW_BOINC_SRC to a checkout of a "
            "server release, e.g. server_release/1.6/1.6.2)")


def up() -> str:
    return str(find() or missing_reason())


def down() -> None:
    """Nothing runs from the tree itself."""


def status() -> str:
    tree = find()
    return f"BOINC source at {tree}" if tree else missing_reason()
