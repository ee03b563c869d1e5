"""Build the PyBOINC worker bundle for this platform with PyInstaller.

The recipe is ``recipe/pymw-worker.spec`` inside this package (one directory: it starts in tens
of milliseconds where one-file bundles unpack themselves on every start), so a build works from any
install (editable, wheel, pipx) and any directory; the output goes to ``./pyboinc_bundles/dist``.
What goes in: this interpreter, the whole standard library (PyInstaller only bundles what it sees
imported, and a task may import anything), cloudpickle, the worker entry point, the ``boinc``
module, the packages named with ``--with`` less their tests and headers (``prune``), and Debian's
``libboinc_api.so.7`` when this machine has it (volunteers don't). Only the interpreter's and
the system's libraries are stripped, never a wheel's (``_strip``).

The result is ``DIST/<platform>/bundle/`` plus ``DIST/<platform>/manifest.json``; it is built in a
scratch directory and renamed into place, so a failed build never leaves half a bundle.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pymw_admin.bundles import manifest as mf
from pymw_admin.bundles import prune
from pymw_admin.errors import ConfigError, EngineUnavailable
from pymw_admin.sources import PACKAGE_ROOT, digest, package_files
from pymw_admin.wire.encoding import python_minor

SPEC_NAME = "pymw-worker.spec"
ENTRY_NAME = "pymw_worker.py"
PROGRAM = "pymw-worker"
BOINC_LIBRARY = "libboinc_api.so.7"
RECIPE_DIR = PACKAGE_ROOT / "bundles" / "recipe"

# never useful to a task on a volunteer's machine, and some drag in a GUI toolkit
_STDLIB_EXCLUDES = frozenset({
    "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "test", "ensurepip", "venv",
    "lib2to3", "distutils", "pydoc_data", "antigravity", "this", "__phello__", "_xxtestfuzz",
    "xxlimited", "xxlimited_35", "xxsubtype", "_testbuffer", "_testcapi", "_testclinic",
    "_testimportmultiple", "_testinternalcapi", "_testmultiphase", "_ctypes_test",
    "_xxsubinterpreters",
})
# what our own code imports only when it is there (the untrusted decoder's numpy, on a master):
# PyInstaller follows such an import too, and numpy alone is some 45 MB of a bundle
_OPTIONAL_IMPORTS = frozenset({"numpy"})


def excluded_modules(with_packages: Sequence[str]) -> list[str]:
    """The modules the freeze leaves out: unused standard library, and optional imports of
    ours that no ``--with`` asked for."""
    wanted = {_import_name(name) for name in with_packages}
    return sorted(_STDLIB_EXCLUDES | (_OPTIONAL_IMPORTS - wanted))
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "__pycache__"})


def recipes_dir() -> Path:
    """The directory holding the spec and the entry script: the package's own ``recipe/``, or
    ``PYMW_BUNDLE_RECIPES`` (a directory with both files, e.g. a modified copy)."""
    given = os.environ.get("PYMW_BUNDLE_RECIPES")
    path = Path(given) if given else RECIPE_DIR
    if (path / SPEC_NAME).is_file() and (path / ENTRY_NAME).is_file():
        return path
    where = "PYMW_BUNDLE_RECIPES" if given else "the installed package"
    raise ConfigError(f"no bundle recipe ({SPEC_NAME} and {ENTRY_NAME}) in {path} ({where})")


def default_dist() -> Path:
    """``./pyboinc_bundles/dist`` of the current directory, where deploy-app looks too."""
    return Path.cwd() / "pyboinc_bundles" / "dist"


def stdlib_modules() -> list[str]:
    """Every standard-library module and submodule name, found on disk without importing."""
    names: set[str] = set()
    for top in sorted(sys.stdlib_module_names):
        if top in _STDLIB_EXCLUDES or top.startswith("_test"):
            continue
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue  # another platform's module
        names.add(top)
        for location in spec.submodule_search_locations or ():
            names.update(_walk_package(top, Path(location)))
    return sorted(names)


def _walk_package(prefix: str, directory: Path) -> Iterable[str]:
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            if entry.name in _SKIP_DIRS or not (entry / "__init__.py").exists():
                continue
            yield f"{prefix}.{entry.name}"
            yield from _walk_package(f"{prefix}.{entry.name}", entry)
        elif entry.suffix == ".py" and entry.stem != "__init__" and entry.stem != "__main__":
            yield f"{prefix}.{entry.stem}"


def find_boinc_library() -> Path | None:
    """Debian's libboinc_api.so.7 (package libboinc-app7) on this machine, if any."""
    if sys.platform != "linux":
        return None
    patterns = [f"/usr/lib/*/{BOINC_LIBRARY}", f"/usr/lib/{BOINC_LIBRARY}",
                f"/usr/local/lib/{BOINC_LIBRARY}"]
    for pattern in patterns:
        for hit in sorted(glob.glob(pattern)):
            return Path(hit)
    return None


def _boinc_binaries(library: Path) -> list[str]:
    # the API library needs libboinc.so.7 (boinc_resolve_filename lives there): ship both
    found = [str(library)]
    companion = library.with_name("libboinc.so.7")
    if companion.exists():
        found.append(str(companion))
    return found


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"--with {name}: the package is not installed in this Python ({sys.executable}); "
            f"pip install {name} first"
        ) from None


def _import_name(dist_name: str) -> str:
    """The top-level module a distribution installs (PyYAML -> yaml), for PyInstaller."""
    try:
        top = importlib.metadata.distribution(dist_name).read_text("top_level.txt")
    except importlib.metadata.PackageNotFoundError:
        top = None
    if top and top.split():
        return top.split()[0]
    return dist_name.replace("-", "_").lower()


def _strip(internal: Path, binaries: list[list[str]]) -> None:
    """Strip the interpreter's and the system's libraries (libpython, lib-dynload, libssl...),
    never one from an installed package: the libraries wheels vendor (numpy.libs' OpenBLAS,
    renamed and patched by auditwheel/patchelf) no longer load once stripped ("ELF load command
    address/offset not page-aligned"). The interpreter's half is where the size is (numpy bundle:
    see docs/bundles.md)."""
    tool = shutil.which("strip")
    if tool is None or sys.platform in ("win32", "darwin"):
        return
    for dest, src in binaries:
        parts = Path(src).parts
        if any(p in ("site-packages", "dist-packages") or p.endswith(".libs") for p in parts):
            continue
        path = internal / dest
        if path.is_file() and not path.is_symlink():
            # a library strip cannot handle stays as it is
            subprocess.run([tool, str(path)], capture_output=True, check=False)


def source_key(with_packages: Sequence[str] = (), recipes: Path | None = None,
               boinc_library: bool = False) -> str:
    """A hash of everything a bundle is made from: rebuild when it changes."""
    recipes = recipes or recipes_dir()
    files = [(p.relative_to(PACKAGE_ROOT).as_posix(), p) for p in package_files()]
    files += [(name, recipes / name) for name in (SPEC_NAME, ENTRY_NAME)]
    return digest(files, f"{platform.python_version()}|{sys.executable}|{_pyinstaller_version()}",
                  json.dumps(sorted(with_packages)), "boinc" if boinc_library else "-")


def _pyinstaller_version() -> str:
    try:
        return importlib.metadata.version("pyinstaller")
    except importlib.metadata.PackageNotFoundError:
        return ""


def build(
    dist: Path | None = None,
    with_packages: Sequence[str] = (),
    *,
    boinc_library: str = "auto",
    say: Callable[[str], None] = lambda _line: None,
    log_path: Path | None = None,
) -> mf.Bundle:
    """Build this platform's bundle into ``dist/<platform>/`` and return it.

    ``boinc_library``: ``auto`` ships libboinc_api.so.7 when found, ``yes`` insists,
    ``no`` omits it.
    """
    if not _pyinstaller_version():
        raise EngineUnavailable(
            "building a bundle needs PyInstaller: pip install 'pymw-admin[bundle]'"
        )
    recipes = recipes_dir()
    dist = (dist or default_dist()).resolve()
    platform_id = mf.platform_name()
    packages = {"pymw-admin": _package_version("pymw-admin"),
                "cloudpickle": _package_version("cloudpickle")}
    for name in with_packages:
        packages[name] = _package_version(name)

    library = None
    if boinc_library != "no":
        library = find_boinc_library()
        if library is None and boinc_library == "yes":
            raise ConfigError(f"{BOINC_LIBRARY} not found: apt-get install libboinc-app7")

    recipe = {
        "entry": str(recipes / ENTRY_NAME),
        "name": PROGRAM,
        # the package's parent: an editable install is found through an import hook that
        # PyInstaller's analysis does not run, so pymw_admin would be missing from the bundle
        "pathex": [str(recipes), str(PACKAGE_ROOT.parent)],
        "hidden_imports": [*stdlib_modules(), "pymw_admin.bundles.boinc",
                           "pymw_admin.bundles.client_shm",
                           "pymw_admin.bundles.entry", "pymw_admin.worker.scripting"],
        "collect": [_import_name(name) for name in with_packages],
        "skip_submodules": sorted(prune.SKIP_SUBMODULES),
        "binaries": _boinc_binaries(library) if library else [],
        "excludes": excluded_modules(with_packages),
        # PyInstaller would strip every binary, the ones wheels vendor too: see _strip
        "strip": False,
        "binaries_out": "",
    }
    dist.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".build-{platform_id}-", dir=dist))
    try:
        say(f"freezing the worker for {platform_id} (Python {platform.python_version()})")
        recipe["binaries_out"] = str(scratch / "binaries.json")
        env = dict(os.environ, PYMW_BUNDLE_RECIPE=json.dumps(recipe))
        cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
               "--distpath", str(scratch / "dist"), "--workpath", str(scratch / "work"),
               str(recipes / SPEC_NAME)]
        log = log_path or scratch / "pyinstaller.log"
        with log.open("w") as out:
            # in the scratch directory: ``python -m`` puts the working directory first on the
            # analysis' sys.path, and a bundle must not depend on where it was built from
            result = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=scratch)
        if result.returncode != 0:
            tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
            kept = dist / f"{platform_id}-pyinstaller.log"
            shutil.copy(log, kept)
            raise ConfigError(f"PyInstaller failed (exit {result.returncode}): {tail[0]} "
                              f"(full log: {kept})")
        staged = scratch / platform_id
        staged.mkdir()
        (scratch / "dist" / PROGRAM).rename(staged / mf.BUNDLE_DIR_NAME)
        internal = staged / mf.BUNDLE_DIR_NAME / "_internal"
        prune.prune(internal, [_import_name(name) for name in with_packages])
        toc = scratch / "binaries.json"
        if toc.is_file():  # a PYMW_BUNDLE_RECIPES spec may not say: then nothing is stripped
            _strip(internal, json.loads(toc.read_text()))
        say("hashing the files")
        manifest = mf.Manifest(
            platform=platform_id,
            python=python_minor(),  # the very string a worker compares a task header with
            python_full=platform.python_version(),
            main_program=PROGRAM + (".exe" if sys.platform == "win32" else ""),
            packages=packages,
            files=mf.scan(staged / mf.BUNDLE_DIR_NAME),
            built_with=f"PyInstaller {_pyinstaller_version()}",
            source_key=source_key(with_packages, recipes, library is not None),
            boinc_library=library is not None,
        )
        mf.write(manifest, staged)
        target = dist / platform_id
        if target.exists():
            old = scratch / "old"
            target.rename(old)
        staged.rename(target)
        return mf.Bundle(target, manifest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def current(
    dist: Path, with_packages: Sequence[str] = (), *, boinc_library: bool
) -> mf.Bundle | None:
    """This platform's bundle in ``dist`` if built from today's sources, else None."""
    root = dist / mf.platform_name()
    try:
        bundle = mf.open_bundle(root)
    except ConfigError:
        return None
    key = source_key(with_packages, boinc_library=boinc_library)
    if bundle.manifest.source_key != key:
        return None
    if mf.check(bundle.manifest, bundle.dir, hashes=False):
        return None
    return bundle
