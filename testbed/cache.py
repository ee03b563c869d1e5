"""Where the testbed keeps what it builds: outside the repository, reused across runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("PYMW_TESTBED_CACHE", "/var/cache/pymw-admin-testbed"))


def cache_dir(*parts: str) -> Path:
    path = CACHE.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


_apt_updated = False
# engines come up side by side (and CI may run apt too): wait for dpkg's lock, don't fail
_WAIT_FOR_LOCK = ("-o", "DPkg::Lock::Timeout=600")


def apt_install(*packages: str) -> None:
    """Install Debian packages that are missing; runs ``apt-get update`` once if needed."""
    global _apt_updated
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-qq", *_WAIT_FOR_LOCK], check=True, env=env)
        _apt_updated = True
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *_WAIT_FOR_LOCK, *missing],
        check=True,
        env=env,
    )


def _dpkg_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


def have(command: str) -> bool:
    return shutil.which(command) is not None
