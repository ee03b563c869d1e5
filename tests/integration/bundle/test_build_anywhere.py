"""`bundle build` as a user runs it: from a directory outside the checkout, from an editable or a
wheel install, with `--with numpy`; the build's own import check and `bundle list --verify`.

These build their own bundles into tmp_path (not the testbed's): one numpy bundle for the module.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pymw_admin.bundles import manifest as mf
from pymw_admin.bundles.build import default_dist
from pymw_admin.interfaces.bundle import BundleInterface
from pymw_admin.runtime import Master

pytestmark = [
    pytest.mark.bundle,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bundle tests run on Linux"),
]

CHECKOUT = Path(__file__).resolve().parents[3]
PLATFORM = mf.platform_name() if sys.platform.startswith("linux") else ""


def pymw_admin(venv_python: Path = Path(sys.executable)) -> list[str]:
    script = venv_python.parent / "pymw-admin"
    return [str(script)] if script.is_file() else [str(venv_python), "-m", "pymw_admin.cli"]


def run_cli(*args: str, cwd: Path, command: list[str] | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # a wide terminal: the lines asserted on are not wrapped
    full_env = {**os.environ, "COLUMNS": "400", **(env or {})}
    return subprocess.run([*(command or pymw_admin()), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def numpy_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[mf.Bundle, str]:
    pytest.importorskip("numpy")
    pytest.importorskip("PyInstaller")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert not elsewhere.resolve().is_relative_to(CHECKOUT)
    done = run_cli("bundle", "build", "--with", "numpy", "--boinc-library", "no", cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    # ./pyboinc_bundles/dist of the directory it ran in, as --help says
    return mf.open_bundle(elsewhere / "pyboinc_bundles" / "dist" / PLATFORM), done.stdout


def numpy_task(n: int) -> object:
    import numpy as np

    a = np.arange(n, dtype=np.float64).reshape(2, -1)
    return a @ a.T  # a BLAS call: OpenBLAS has to load


def test_a_numpy_task_runs_through_the_bundle(numpy_build: tuple[mf.Bundle, str]) -> None:
    import numpy as np

    bundle, out = numpy_build
    assert f"numpy {np.__version__}" in out  # the build imported it in the bundle
    assert bundle.manifest.packages["numpy"] == np.__version__
    with Master(interface=BundleInterface(bundle, num_workers=1, timeout=300)) as master:
        task = master.submit_task(numpy_task, input_data=(6,))
        result = master.get_result(task)[1]
    expected = numpy_task(6)
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, expected)


def test_wheel_vendored_libraries_are_not_stripped_and_tests_are_pruned(
    numpy_build: tuple[mf.Bundle, str]
) -> None:
    import numpy as np

    bundle, _ = numpy_build
    installed = Path(np.__file__).parent.parent / "numpy.libs"
    vendored = sorted(p for p in installed.iterdir() if p.is_file())
    assert vendored
    for lib in vendored:
        shipped = bundle.dir / "_internal" / "numpy.libs" / lib.name
        assert shipped.read_bytes() == lib.read_bytes(), f"{lib.name} was changed by the build"
    numpy_dir = bundle.dir / "_internal" / "numpy"
    assert (numpy_dir / "_core").is_dir()
    left = [p.relative_to(numpy_dir).as_posix() for p in numpy_dir.rglob("*")
            if p.name in ("tests", "include") or p.suffix in (".pyi", ".h", ".pxd")]
    assert left == []
    assert not (bundle.dir / "_internal" / "mypy").exists()  # numpy.typing's plugin's import


def test_list_verify_runs_the_bundle_and_catches_a_package_that_cannot_load(
    numpy_build: tuple[mf.Bundle, str], tmp_path: Path
) -> None:
    bundle, _ = numpy_build
    good = run_cli("bundle", "list", "--verify", "--dist", str(bundle.root.parent), cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert " ok " in good.stdout

    # what the old build made: OpenBLAS stripped, hashes matching its manifest
    broken_root = tmp_path / "dist" / PLATFORM
    shutil.copytree(bundle.root, broken_root, symlinks=True)
    libs = broken_root / mf.BUNDLE_DIR_NAME / "_internal" / "numpy.libs"
    blas = next(p for p in libs.iterdir() if p.name.startswith("libscipy_openblas"))
    if shutil.which("strip"):
        subprocess.run(["strip", str(blas)], check=True)
    else:
        blas.write_bytes(blas.read_bytes()[:4096])
    manifest = mf.load(broken_root)
    mf.write(dataclasses.replace(manifest, files=mf.scan(broken_root / mf.BUNDLE_DIR_NAME)),
             broken_root)
    hashes_only = run_cli("bundle", "list", "--dist", str(tmp_path / "dist"), cwd=tmp_path)
    assert hashes_only.returncode == 0  # the files are the ones its manifest lists
    bad = run_cli("bundle", "list", "--verify", "--dist", str(tmp_path / "dist"), cwd=tmp_path)
    assert bad.returncode == 1
    assert "1 problem(s)" in bad.stdout
    assert f"the {PLATFORM} bundle cannot import numpy: " in bad.stdout
    assert blas.name in bad.stdout  # the innermost error names the library


def test_a_package_that_fails_to_import_in_the_bundle_fails_the_build(tmp_path: Path) -> None:
    pytest.importorskip("PyInstaller")
    site = tmp_path / "site"
    package = site / "frozenbroken"
    package.mkdir(parents=True)
    # imports here, not when frozen: only running the bundle finds it
    (package / "__init__.py").write_text(
        "import sys\n__version__ = '1.0'\n"
        "if getattr(sys, 'frozen', False):\n"
        "    raise ImportError('frozenbroken cannot load its library')\n")
    info = site / "frozenbroken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: frozenbroken\nVersion: 1.0\n")
    (info / "RECORD").write_text("frozenbroken/__init__.py,,\n")
    (info / "top_level.txt").write_text("frozenbroken\n")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done = run_cli("bundle", "build", "--with", "frozenbroken", "--boinc-library", "no", cwd=cwd,
                   env={"PYTHONPATH": str(site)})
    assert done.returncode != 0
    said = [line for line in (done.stdout + done.stderr).splitlines() if "frozenbroken" in line]
    assert said == [f"error: the {PLATFORM} bundle cannot import frozenbroken: ImportError: "
                    "frozenbroken cannot load its library (the bundle was removed)"], said
    assert not (cwd / "pyboinc_bundles" / "dist" / PLATFORM).exists()


def test_build_from_a_wheel_install_outside_the_checkout(tmp_path: Path) -> None:
    pytest.importorskip("PyInstaller")
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(wheels), str(CHECKOUT)], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # the dependencies (PyInstaller included) from this environment, behind the venv's own
    # site-packages: pymw_admin itself is the wheel's
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                                *map(str, wheels.glob("*.whl"))],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    where = subprocess.run([str(python), "-c", "import pymw_admin; print(pymw_admin.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert Path(where.strip()).is_relative_to(purelib)

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {"PYMW_BUNDLE_RECIPES": ""}
    done = run_cli("bundle", "build", "--boinc-library", "no", cwd=cwd,
                   command=pymw_admin(python), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported in the bundle: pymw-admin" in done.stdout
    bundle = mf.open_bundle(cwd / "pyboinc_bundles" / "dist" / PLATFORM)
    assert bundle.manifest.packages["pymw-admin"]


def test_default_dist_is_the_current_directorys(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_dist() == tmp_path / "pyboinc_bundles" / "dist"
