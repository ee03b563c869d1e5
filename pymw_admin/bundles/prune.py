"""What a frozen bundle drops of the ``--with`` packages: the parts a worker never imports.

A package's test suite (and the extension modules only it imports), its C headers, type stubs
and Cython declarations are for developing and compiling against it, not for running tasks. Only the
packages' own directories are pruned (the interpreter's ``include/`` holds ``pyconfig.h``, which
``sysconfig`` reads at run time).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

# submodules PyInstaller is told not to collect (the spec's filter_submodules)
# (a type checker's plugin, numpy.typing.mypy_plugin, would bring mypy and lxml along)
SKIP_SUBMODULES = frozenset({"tests", "test", "conftest", "mypy_plugin"})
# directories dropped whole wherever they are inside a package
DROP_DIRS = frozenset({"tests", "test", "include", "__pycache__"})
# files only a compiler, a type checker or a build reads
DROP_SUFFIXES = frozenset({".pyi", ".pxd", ".pyx", ".h", ".hpp", ".c", ".cpp", ".a", ".lib",
                           ".f", ".f90", ".pc"})


def skipped_submodule(name: str) -> bool:
    """A dotted module name inside a test suite (``numpy._core.tests.test_umath``)."""
    return any(part in SKIP_SUBMODULES for part in name.split("."))


def prune(internal: Path, top_names: Iterable[str]) -> int:
    """Drop the unused parts of each package ``internal/<top>``; returns the bytes freed."""
    freed = 0
    for top in top_names:
        root = internal / top
        if not root.is_dir() or root.is_symlink():
            continue
        for path in sorted(root.rglob("*"), reverse=True):  # children before their parents
            if path.is_symlink():
                continue
            if path.is_dir():
                if path.name in DROP_DIRS:
                    freed += _size(path)
                    shutil.rmtree(path)
                elif not any(path.iterdir()):
                    path.rmdir()
            elif (path.suffix in DROP_SUFFIXES or _test_module(path.name)) and path.exists():
                freed += path.stat().st_size
                path.unlink()
    return freed


def _test_module(filename: str) -> bool:
    # extension modules only a test suite imports: numpy/_core/_umath_tests.cpython-311-....so
    return filename.split(".", 1)[0].endswith("_tests")


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()
               and not p.is_symlink())
