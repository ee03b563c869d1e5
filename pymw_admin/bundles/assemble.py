"""What every assembled bundle (another platform's CPython, not frozen here) shares.

PyInstaller freezes only the interpreter it runs under, so a bundle for another platform is
assembled instead: that platform's own CPython (the Windows embeddable distribution, or a Debian
root's python3) plus ``pymw-worker.zip``, which holds the worker code and cloudpickle as a zip
application (``__main__.py`` runs the bundle entry). The modules in it are compiled when this
Python has the bundle's minor version (same bytecode), else shipped as source.

``--with`` packages come from ``pip download`` for the target platform and are unpacked into
``site-packages/`` (binary wheels cannot be imported from a zip).
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pymw_admin.bundles import manifest as mf
from pymw_admin.errors import ConfigError
from pymw_admin.sources import digest
from pymw_admin.wire.encoding import python_minor

WORKER_ZIP = "pymw-worker.zip"
SITE_DIR = "site-packages"
MAIN = "import sys\nfrom pymw_admin.bundles.entry import main\nsys.exit(main())\n"
# the parts of pymw-admin a worker runs (the admin side needs lxml, typer, fabric...)
_PACKAGE_PARTS = ("__init__.py", "errors.py", "worker", "wire",
                  "bundles/__init__.py", "bundles/boinc.py", "bundles/client_shm.py",
                  "bundles/entry.py",
                  "bundles/manifest.py")
_SKIP_STDLIB = frozenset({
    "tkinter", "turtledemo", "idlelib", "test", "ensurepip", "venv", "lib2to3", "distutils",
    "pydoc_data", "site-packages", "dist-packages", "__phello__", "turtle.py",
})

Say = Callable[[str], None]


def package_root() -> Path:
    return Path(__file__).resolve().parents[1]


def worker_sources() -> dict[str, Path]:
    """``{archive name: file}`` of the worker code and cloudpickle."""
    files: dict[str, Path] = {}
    root = package_root()
    for part in _PACKAGE_PARTS:
        path = root / part
        found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in found:
            files[f"pymw_admin/{file.relative_to(root).as_posix()}"] = file
    import cloudpickle

    cp_root = Path(cloudpickle.__file__).parent
    for file in sorted(cp_root.glob("*.py")):
        files[f"cloudpickle/{file.name}"] = file
    return files


def sources_digest(*extra: str) -> str:
    """A hash of what an assembled bundle is made from: rebuild when it changes."""
    files = sorted(worker_sources().items())
    return digest([*files, ("assemble.py", Path(__file__))], *extra)


def compiles_here(minor: str) -> bool:
    """Whether this Python makes the bytecode of Python ``minor`` (same minor version)."""
    return python_minor() == minor


def compile_file(source: Path, name: str, tmp: Path) -> Path:
    """``source`` compiled to an unchecked-hash .pyc (no source beside it to compare against)."""
    pyc = tmp / "m.pyc"
    py_compile.compile(str(source), cfile=str(pyc), dfile=name, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return pyc


def write_worker_zip(dest: Path, minor: str, prefix: bytes = b"") -> None:
    """The zip application: compiled when this Python has ``minor``, else as source.

    ``prefix`` goes before the archive (a launcher executable). The archive is made on its own
    first, so its offsets count from its own start, as the launcher expects when it looks back
    from the archive for the shebang (zipimport reads either way).
    """
    compile_here = compiles_here(minor)
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, \
            zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__main__.py", MAIN)
        for name, path in worker_sources().items():
            if compile_here:
                archive.write(compile_file(path, name, Path(tmp)), name + "c")
            else:
                archive.write(path, name)
    dest.write_bytes(prefix + buf.getvalue())


def stdlib_wanted(rel: str) -> bool:
    """Whether a standard-library file (path relative to the library directory) is shipped."""
    parts = rel.split("/")
    if parts[0] in _SKIP_STDLIB or parts[0].startswith("config-"):
        return False
    return not any(p in ("test", "tests", "idle_test") for p in parts[:-1])


def pip_download(packages: Sequence[str], dest: Path, platform_tags: Sequence[str], minor: str,
                 say: Say) -> list[Path]:
    """Wheels of ``packages`` (and their dependencies) for another platform's CPython."""
    if not packages:
        return []
    say(f"downloading {', '.join(packages)} for {platform_tags[0]}")
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", minor, "--implementation", "cp",
           "--dest", str(dest)]
    for tag in platform_tags:
        cmd += ["--platform", tag]
    proc = subprocess.run([*cmd, *packages], capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
        last = (errors or proc.stderr.strip().splitlines() or ["pip download failed"])[-1]
        raise ConfigError(f"--with {' '.join(packages)}: no wheels for {platform_tags[0]} and "
                          f"Python {minor}: {last}")
    return sorted(dest.glob("*.whl"))


def unpack_wheels(wheels: Sequence[Path], site: Path) -> dict[str, str]:
    """Unpack wheels into ``site``; returns ``{distribution: version}``."""
    versions: dict[str, str] = {}
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        versions[name] = version
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    return versions


def package_versions(with_packages: Sequence[str]) -> dict[str, str]:
    from pymw_admin import __version__

    found = {"pymw-admin": __version__, "cloudpickle": importlib.metadata.version("cloudpickle")}
    return found | {name: "" for name in with_packages}


def finish(staged: Path, dist: Path, manifest: mf.Manifest) -> mf.Bundle:
    """Hash the staged files, write the manifest and move the bundle into ``dist/<platform>``."""
    manifest.files = mf.scan(staged / mf.BUNDLE_DIR_NAME)
    mf.write(manifest, staged)
    target = dist / manifest.platform
    old = None
    if target.exists():
        old = staged.with_name(staged.name + ".old")
        target.rename(old)
    staged.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return mf.Bundle(target, manifest)


def scratch(dist: Path, platform: str) -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".build-{platform}-", dir=dist))
    (path / platform / mf.BUNDLE_DIR_NAME).mkdir(parents=True)
    return path


def make_executable(path: Path) -> None:
    path.chmod(path.stat().st_mode | 0o755)


def copy_tree_files(pairs: Sequence[tuple[Path, Path]]) -> None:
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        if os.access(src, os.X_OK):
            make_executable(dst)
