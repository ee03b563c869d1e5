"""The PyBOINC worker bundle the tests run: built once into the cache, rebuilt when sources change.

The key is a hash of the runtime sources, the bundle recipe, the Python version and PyInstaller's
(``pymw_admin.bundles.build.source_key``); when the cached bundle matches, ``up()`` takes well
under a second. Debian's libboinc-app7 is installed first so the bundle carries the BOINC API
library, as a bundle for volunteers must.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pymw_admin.bundles import build as builder
from pymw_admin.bundles.manifest import Bundle
from testbed.cache import CACHE, apt_install, cache_dir

DIST = CACHE / "bundle"


def up() -> Bundle:
    """The current bundle (idempotent; builds in about 10 s when the sources changed)."""
    apt_install("libboinc-app7")
    bundle = builder.current(DIST, boinc_library=True)
    if bundle is not None:
        return bundle
    lock = cache_dir() / "bundle.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two test sessions build it once
        bundle = builder.current(DIST, boinc_library=True)
        if bundle is None:
            bundle = builder.build(DIST, boinc_library="yes")
    finally:
        os.close(fd)
    return bundle


def down() -> None:
    """Nothing runs: the bundle is files."""


def status() -> str:
    bundle = builder.current(DIST, boinc_library=True)
    if bundle is None:
        return f"no current bundle in {DIST}"
    return f"{bundle.manifest.platform} bundle, Python {bundle.manifest.python}: {bundle.root}"


def path() -> Path:
    return DIST
