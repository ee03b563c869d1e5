"""Running other platforms' programs here: wine for Windows, qemu-user and an arm64 root.

* ``binfmt()`` mounts binfmt_misc and registers qemu-aarch64 (Debian's qemu-user-static, with the
  F flag, so it also works inside a chroot) and wine for ``MZ`` executables (through a small
  runner in the cache that gives wine pipes), so a foreign program starts like a native one: that
  is how a BOINC client here runs a Windows app version.
* ``wine()`` installs Debian's wine64 and makes a wine prefix in the cache (``WINEPREFIX``); the
  first ``wineboot`` takes tens of seconds, later runs reuse it.
* ``arm64_root(minor)`` is a Debian arm64 tree with that Python minor's ``python3`` (bookworm has
  3.11, trixie 3.13): debootstrap's first stage and every downloaded package unpacked, no
  maintainer scripts run (that would take minutes under emulation). The aarch64 bundle is
  assembled from it. Made once in the cache (about a minute), built aside and renamed into place.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.cache import CACHE, apt_install, cache_dir
from testbed.rootfs import mirror

BINFMT = Path("/proc/sys/fs/binfmt_misc")
WINE_RUNNER = CACHE / "wine-binfmt"
# binfmt_misc's interpreter for Windows programs. Windows Python under wine cannot start when a
# standard stream is a regular file or /dev/null ("init_sys_streams: ... Invalid handle"), and a
# BOINC client started with --redirectio gives its apps files: so the streams become pipes here.
WINE_RUNNER_TEXT = """#!/bin/bash
set -o pipefail
export WINEPREFIX="${{WINEPREFIX:-{cache}/wine-prefix-$(id -un)}}" WINEDEBUG=-all
: | /usr/bin/wine "$@" 2>&1 | cat >&2
"""
# Debian suites by the Python minor their python3 has
SUITES = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
# what the aarch64 bundle needs from the root besides python3's own dependencies
ARM64_PACKAGES = ("python3", "libpython3-stdlib")
ARM64_CLIENT_PACKAGES = ("boinc-client",)
_DONE = ".pymw-root-complete"


def binfmt() -> None:
    """binfmt_misc mounted, qemu-aarch64 and wine registered (idempotent; kernel-wide)."""
    apt_install("qemu-user-static", "binfmt-support")
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
    if not (BINFMT / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
    if Path("/usr/bin/wine").exists():
        text = WINE_RUNNER_TEXT.format(cache=CACHE)
        if not WINE_RUNNER.exists() or WINE_RUNNER.read_text() != text:
            WINE_RUNNER.write_text(text)
        WINE_RUNNER.chmod(0o755)
        entry = BINFMT / "wine"
        if entry.exists() and f"interpreter {WINE_RUNNER}\n" not in entry.read_text():
            entry.write_text("-1")  # registered otherwise (wine itself): ours instead
        if not entry.exists():
            (BINFMT / "register").write_text(f":wine:M::MZ::{WINE_RUNNER}:")


def wine() -> dict[str, str]:
    """wine64 installed and a ready prefix: the environment to run Windows programs with."""
    apt_install("wine64", "wine")
    binfmt()
    prefix = cache_dir("wine-prefix")
    env = wine_env(prefix)
    if not (prefix / "system.reg").exists():
        with _locked(CACHE / "wine-prefix.lock"):
            if not (prefix / "system.reg").exists():
                subprocess.run(["wineboot", "--init"], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                subprocess.run(["wineserver", "--wait"], env=env, check=False)
    return env


def wine_prefix_for(user: str) -> Path:
    """A wine prefix of ``user``'s own (wine refuses a prefix another user owns), made once."""
    prefix = CACHE / f"wine-prefix-{user}"
    if (prefix / "system.reg").exists():
        return prefix
    with _locked(CACHE / f"wine-prefix-{user}.lock"):
        if not (prefix / "system.reg").exists():
            prefix.mkdir(exist_ok=True)
            shutil.chown(prefix, user, user)
            subprocess.run(["sudo", "-n", "-u", user, "-H", "env", f"WINEPREFIX={prefix}",
                            "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", "wineboot",
                            "--init"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            subprocess.run(["sudo", "-n", "-u", user, "-H", "env", f"WINEPREFIX={prefix}",
                            "wineserver", "--wait"], check=False)
    return prefix


def wine_env(prefix: Path) -> dict[str, str]:
    return {**os.environ, "WINEPREFIX": str(prefix), "WINEDEBUG": "-all",
            "WINEDLLOVERRIDES": "mscoree,mshtml="}


def arm64_root(minor: str = "3.11") -> Path:
    """A Debian arm64 tree with Python ``minor`` (idempotent; a millisecond once made)."""
    suite = SUITES.get(minor)
    if suite is None:
        raise RuntimeError(f"no Debian suite with Python {minor} for arm64 "
                           f"(known: {', '.join(sorted(SUITES))})")
    return _unpacked_root(f"rootfs-{suite}-arm64", suite, ARM64_PACKAGES)


def arm64_client_root() -> Path:
    """A Debian arm64 tree with Debian's BOINC client, to run an aarch64 client under qemu-user."""
    return _unpacked_root("rootfs-bookworm-arm64-client", "bookworm", ARM64_CLIENT_PACKAGES)


def _unpacked_root(name: str, suite: str, packages: tuple[str, ...]) -> Path:
    root = CACHE / name
    if (root / _DONE).exists():
        return root
    binfmt()
    with _locked(CACHE / f"{name}.lock"):
        if (root / _DONE).exists():
            return root
        apt_install("debootstrap")
        work = CACHE / f"{name}.partial"
        shutil.rmtree(work, ignore_errors=True)
        if root.exists():
            shutil.rmtree(root)
        # the first stage only downloads and unpacks (no emulation); the packages' own scripts
        # would run under qemu for minutes and only compile .pyc files the bundle makes itself
        subprocess.run(
            ["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
             f"--include={','.join(packages)}", suite, str(work), mirror()],
            check=True, stdout=subprocess.DEVNULL,
        )
        for deb in sorted((work / "var/cache/apt/archives").glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work)], check=True)
        (work / _DONE).write_text(f"{suite} arm64\n")
        work.rename(root)
    return root


def up() -> None:
    """What running other platforms' bundles here needs: wine, binfmt_misc, the arm64 root."""
    wine()
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if minor in SUITES:  # else no aarch64 bundle for this Python (its tests say so)
        arm64_root(minor)


def down() -> None:
    """Nothing runs: the clients that use these are the tests' own (wine_client, arm64_client)."""


def status() -> str:
    lines = [f"binfmt_misc {'mounted' if (BINFMT / 'register').exists() else 'not mounted'}"]
    for minor, suite in sorted(SUITES.items()):
        root = CACHE / f"rootfs-{suite}-arm64"
        if (root / _DONE).exists():
            lines.append(f"arm64 root for Python {minor}: {root}")
    return "; ".join(lines)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    cache_dir()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
