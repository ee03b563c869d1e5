"""What a frozen bundle drops of its --with packages, and which binaries the build strips."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pymw_admin.bundles import build, prune


def test_prune_drops_tests_headers_and_stubs_of_the_named_packages_only(tmp_path: Path) -> None:
    internal = tmp_path / "_internal"
    keep = ["pkg/__init__.pyc", "pkg/_core/_umath.so", "pkg/testing/utils.pyc",
            "pkg/data/table.csv", "pkg.libs/libblas-1a2b3c4d.so",
            "include/python3.11/pyconfig.h"]  # the interpreter's: sysconfig reads it
    drop = ["pkg/tests/test_a.py", "pkg/_core/tests/data/x.csv", "pkg/_core/include/pkg/a.h",
            "pkg/__init__.pyi", "pkg/_core/_umath_tests.cpython-311-x86_64-linux-gnu.so",
            "pkg/_core/lib/libpkgmath.a", "pkg/random/c_distributions.pxd"]
    for rel in keep + drop:
        (internal / rel).parent.mkdir(parents=True, exist_ok=True)
        (internal / rel).write_bytes(b"x" * 10)
    freed = prune.prune(internal, ["pkg", "absent"])
    left = sorted(p.relative_to(internal).as_posix() for p in internal.rglob("*") if p.is_file())
    assert left == sorted(keep)
    assert freed == 10 * len(drop)
    assert not (internal / "pkg" / "_core" / "lib").exists()  # emptied directories go too


def test_test_suites_are_not_collected() -> None:
    assert prune.skipped_submodule("numpy._core.tests.test_umath")
    assert prune.skipped_submodule("numpy.typing.mypy_plugin")
    assert not prune.skipped_submodule("numpy.testing")


def test_only_binaries_from_outside_site_packages_are_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stripped: list[str] = []

    def fake_run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        stripped.append(Path(cmd[1]).relative_to(tmp_path).as_posix())
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(build.shutil, "which", lambda _name: "/bin/strip")
    monkeypatch.setattr(build.subprocess, "run", fake_run)
    monkeypatch.setattr(build.sys, "platform", "linux")
    toc = [["libpython3.11.so.1.0", "/opt/python/lib/libpython3.11.so.1.0"],
           ["python3.11/lib-dynload/_ssl.so", "/opt/python/lib/python3.11/lib-dynload/_ssl.so"],
           ["numpy/_core/_umath.so", "/venv/lib/python3.11/site-packages/numpy/_core/_umath.so"],
           ["numpy.libs/libblas.so", "/venv/lib/python3.11/site-packages/numpy.libs/libblas.so"],
           ["libgfortran.so.5", "/usr/lib/python3/dist-packages/scipy.libs/libgfortran.so.5"],
           ["libblas.so", "/elsewhere/numpy.libs/libblas.so"]]
    for dest, _src in toc:
        (tmp_path / dest).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / dest).write_bytes(b"\x7fELF")
    build._strip(tmp_path, toc)
    assert stripped == ["libpython3.11.so.1.0", "python3.11/lib-dynload/_ssl.so"]


def test_recipes_come_from_the_package_or_pymw_bundle_recipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYMW_BUNDLE_RECIPES", raising=False)
    monkeypatch.chdir(tmp_path)  # not the checkout: the package carries its recipe
    assert build.recipes_dir() == build.RECIPE_DIR
    assert (build.RECIPE_DIR / build.SPEC_NAME).is_file()
    monkeypatch.setenv("PYMW_BUNDLE_RECIPES", str(tmp_path))
    with pytest.raises(build.ConfigError, match="PYMW_BUNDLE_RECIPES"):
        build.recipes_dir()
    for name in (build.SPEC_NAME, build.ENTRY_NAME):
        (tmp_path / name).write_text((build.RECIPE_DIR / name).read_text())
    assert build.recipes_dir() == tmp_path
