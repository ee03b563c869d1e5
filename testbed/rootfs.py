"""A minimal Debian 13 (trixie) root file system, made once with debootstrap and shared.

Engines that need a system unlike the host (HTCondor from Debian 13; a bundle run where no matching
Python exists) use the same tree: ``rootfs.trixie()`` returns it, creating ``CACHE/rootfs-trixie``
the first time. A file lock keeps two callers (two test sessions, two engines) from racing; the tree
is built in a temporary directory and renamed into place, so a half-made tree is never returned.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.cache import CACHE, apt_install, cache_dir

SUITE = "trixie"
# written last: its presence means the tree is complete
_DONE = ".pymw-rootfs-complete"


def trixie() -> Path:
    """The Debian 13 tree (idempotent; about a millisecond once it exists)."""
    root = CACHE / f"rootfs-{SUITE}"
    if (root / _DONE).exists():
        return root
    with _locked(CACHE / f"rootfs-{SUITE}.lock"):
        if (root / _DONE).exists():  # another caller made it while we waited
            return root
        apt_install("debootstrap")
        work = CACHE / f"rootfs-{SUITE}.partial"
        shutil.rmtree(work, ignore_errors=True)
        if root.exists():  # left by an interrupted run before the marker was written
            shutil.rmtree(root)
        subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(work), mirror()],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (work / _DONE).write_text(f"{SUITE}\n")
        work.rename(root)
    return root


def mirror() -> str:
    """The Debian mirror this machine's apt uses (the only one that may be reachable)."""
    candidates = [Path("/etc/apt/sources.list")]
    sources_d = Path("/etc/apt/sources.list.d")
    if sources_d.is_dir():
        candidates += sorted(sources_d.glob("*.sources")) + sorted(sources_d.glob("*.list"))
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for url in re.findall(r"^\s*URIs:\s*(\S+)", text, re.M) + re.findall(
            r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M
        ):
            if "security" not in url and url.rstrip("/").endswith("debian"):
                return url
    raise RuntimeError(
        "no Debian mirror found in /etc/apt/sources.list(.d): debootstrap needs the one apt uses"
    )


def status() -> str:
    root = CACHE / f"rootfs-{SUITE}"
    return f"{root} ready" if (root / _DONE).exists() else f"{root} not made yet"


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
