"""Where the tests find a BOINC server source tree: $PYMW_BOINC_SRC, else the release's tree
from the testbed's one git source (testbed/boinc_source.py); the upgrade test's older release:
$PYMW_BOINC_SRC_OLD, else that source's older tag.

``init-project --boinc-source DIR`` builds the tree in place like any admin's source, so a
cached tree is built once per machine. Tests that need a tree skip, naming what is missing,
only when no source could be had.
"""

from __future__ import annotations

import os
from pathlib import Path

from testbed import boinc_source


def _ready(path: Path) -> Path | None:
    return path if (path / "sched").is_dir() and (path / "tools").is_dir() else None


def find() -> Path | None:
    explicit = os.environ.get("PYMW_BOINC_SRC")
    if explicit:
        return _ready(Path(explicit))
    tree = boinc_source.tree(boinc_source.RELEASE)
    return _ready(tree) if tree else None


def find_older() -> Path | None:
    """An older server release to upgrade from."""
    explicit = os.environ.get("PYMW_BOINC_SRC_OLD")
    if explicit:
        return _ready(Path(explicit))
    tree = boinc_source.tree(boinc_source.OLDER)
    return _ready(tree) if tree else None


def older_missing_reason() -> str:
    explicit = os.environ.get("PYMW_BOINC_SRC_OLD")
    if explicit:
        return f"PYMW_BOINC_SRC_OLD={explicit} is not a BOINC source tree"
    return boinc_source.missing_reason()


def missing_reason() -> str:
    explicit = os.environ.get("PYMW_BOINC_SRC")
    if explicit:
        return f"PYMW_BOINC_SRC={explicit} is not a BOINC source tree"
    return boinc_source.missing_reason()


def up() -> str:
    return str(find() or missing_reason())


def down() -> None:
    """Nothing runs from the tree itself."""


def status() -> str:
    tree = find()
    return f"BOINC source at {tree}" if tree else missing_reason()
