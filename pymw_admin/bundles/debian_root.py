"""A Linux bundle for another architecture (``aarch64-unknown-linux-gnu``), from a Debian root.

PyInstaller under emulation takes long; a Debian root of the target architecture (debootstrap
``--arch arm64 --include=python3``) already holds a complete CPython built for it. The bundle takes
from it ``python3.X`` (Debian links libpython into it), the extension modules, the shared
libraries they need (found from their ELF ``NEEDED`` entries with ``readelf``), the dynamic loader,
and the standard library as the compiled files Debian made at install time, zipped. The main
program is a shell script that runs that Python through the bundled loader, so nothing of the
volunteer's system but the kernel and ``/bin/sh`` is used.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from pymw_admin.bundles import assemble
from pymw_admin.bundles import manifest as mf
from pymw_admin.errors import ConfigError, EngineUnavailable

# BOINC platform -> (Debian architecture, GNU triplet, dynamic loader, pip platform tags)
ARCHES = {
    "aarch64-unknown-linux-gnu": ("arm64", "aarch64-linux-gnu", "ld-linux-aarch64.so.1",
                                  ("manylinux2014_aarch64", "manylinux_2_17_aarch64")),
    "x86_64-pc-linux-gnu": ("amd64", "x86_64-linux-gnu", "ld-linux-x86-64.so.2",
                            ("manylinux2014_x86_64", "manylinux_2_17_x86_64")),
}
PROGRAM = "pymw-worker"
# no terminal, audio or test modules on a volunteer's machine
_SKIP_EXTENSIONS = re.compile(
    r"^(_test|_xxtest|xx|_ctypes_test|_curses|readline|ossaudiodev|audioop|nis|_dbm)")
LAUNCHER = """#!/bin/sh
# pymw-admin: the bundle's own Python through the bundle's own loader and libraries
d=$(cd "$(dirname "$0")" && pwd -P)
unset PYTHONPATH PYTHONSTARTUP PYTHONUSERBASE PYTHONINSPECT PYTHONSAFEPATH
export PYTHONHOME="$d" PYTHONPATH="$d/{site}" PYTHONDONTWRITEBYTECODE=1
exec "$d/lib/{loader}" --library-path "$d/lib" --argv0 "$d/bin/python{minor}" \\
    "$d/bin/python{minor}" -s -S "$d/{zip}" "$@"
"""


def python_version(root: Path, minor: str) -> str:
    """The Debian package version of ``python{minor}`` in the root (dpkg's status file, or the
    downloaded package's name when the packages were only unpacked)."""
    try:
        text = (root / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        text = ""
    match = re.search(rf"^Package: python{re.escape(minor)}-minimal\n(?:.+\n)*?Version: (\S+)",
                      text, re.M)
    if match:
        return match.group(1)
    for deb in sorted((root / "var/cache/apt/archives").glob(f"python{minor}-minimal_*.deb")):
        return deb.name.split("_")[1].replace("%3a", ":")
    return minor


def needed(binary: Path) -> list[str]:
    """The ELF NEEDED entries of a binary (any architecture: readelf reads them all)."""
    if shutil.which("readelf") is None:
        raise EngineUnavailable("readelf (binutils) is needed to assemble a bundle from a root: "
                                "apt-get install binutils")
    out = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def find_library(root: Path, triplet: str, name: str) -> Path:
    for directory in (f"usr/lib/{triplet}", f"lib/{triplet}", "usr/lib", "lib"):
        path = root / directory / name
        if path.exists():
            return path.resolve()
    raise ConfigError(f"{name} is not in the root {root}: install its package there")


def build(dist: Path, platform: str, minor: str, root: Path, with_packages: Sequence[str] = (),
          say: assemble.Say = lambda _l: None) -> mf.Bundle:
    """Assemble ``platform``'s bundle with the root's ``python{minor}`` into ``dist/platform``."""
    if platform not in ARCHES:
        raise ConfigError(f"no Debian architecture known for {platform}")
    _arch, triplet, loader, tags = ARCHES[platform]
    python = root / f"usr/bin/python{minor}"
    stdlib = root / f"usr/lib/python{minor}"
    if not python.is_file() or not (stdlib / "os.py").is_file():
        raise ConfigError(f"the root {root} has no python{minor}: make it with debootstrap "
                          f"--arch {_arch} --include=python3 on a Debian suite whose python3 is "
                          f"{minor}")
    work = assemble.scratch(dist, platform)
    try:
        base = work / platform
        files = base / mf.BUNDLE_DIR_NAME
        say(f"assembling the {platform} bundle from {root} (Python {minor})")
        pairs: list[tuple[Path, Path]] = [(python, files / f"bin/python{minor}")]
        dynload = files / f"lib/python{minor}/lib-dynload"
        for ext in sorted((stdlib / "lib-dynload").glob("*.so")):
            if not _SKIP_EXTENSIONS.match(ext.name):
                pairs.append((ext, dynload / ext.name))
        # every shared library the interpreter and its extensions need, transitively
        todo = [src for src, _dst in pairs]
        seen: set[str] = set()
        while todo:
            for name in needed(todo.pop()):
                if name in seen:
                    continue
                seen.add(name)
                path = find_library(root, triplet, name)
                pairs.append((path, files / "lib" / name))
                todo.append(path)
        if loader not in seen:
            pairs.append((find_library(root, triplet, loader), files / "lib" / loader))
        assemble.copy_tree_files(pairs)
        say("zipping the compiled standard library")
        _zip_stdlib(stdlib, files / f"lib/python{minor.replace('.', '')}.zip", minor)
        packages = assemble.package_versions(())
        site = files / assemble.SITE_DIR
        site.mkdir()
        if with_packages:
            wheels = assemble.pip_download(with_packages, work / "wheels", tags, minor, say)
            packages |= assemble.unpack_wheels(wheels, site)
        assemble.write_worker_zip(files / assemble.WORKER_ZIP, minor)
        program = files / PROGRAM
        program.write_text(LAUNCHER.format(loader=loader, minor=minor, zip=assemble.WORKER_ZIP,
                                           site=assemble.SITE_DIR))
        assemble.make_executable(program)
        (site / ".keep").write_text("")  # an empty directory is no file in a version.xml
        manifest = mf.Manifest(
            platform=platform, python=minor, python_full=python_version(root, minor),
            main_program=PROGRAM, packages=packages,
            built_with=f"Debian python{minor} {python_version(root, minor)} from a root",
            source_key=source_key(platform, minor, root, with_packages))
        return assemble.finish(base, dist, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _zip_stdlib(stdlib: Path, dest: Path, minor: str) -> None:
    """The standard library as sourceless compiled files.

    Debian's own .pyc when its packages were configured (py3compile), else compiled here when
    this Python has the same minor (same bytecode), else the sources (compiled at each start).
    """
    tag = f"cpython-{minor.replace('.', '')}"
    with tempfile.TemporaryDirectory() as tmp, \
            zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted(stdlib.rglob("*.py")):
            rel = source.relative_to(stdlib).as_posix()
            if not assemble.stdlib_wanted(rel):
                continue
            compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
            if compiled.is_file():
                archive.write(compiled, rel + "c")
            elif assemble.compiles_here(minor):
                archive.write(assemble.compile_file(source, rel, Path(tmp)), rel + "c")
            else:
                archive.write(source, rel)


def source_key(platform: str, minor: str, root: Path, with_packages: Sequence[str] = ()) -> str:
    return assemble.sources_digest(platform, minor, python_version(root, minor),
                                   Path(__file__).read_text(), *sorted(with_packages))
