"""Other platforms' bundles without building one: choices, refusals, version.xml, deploy checks."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from lxml import etree

from pymw_admin.admin.apps import master_python
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.bundles import assemble, targets, version_xml, windows
from pymw_admin.bundles import manifest as mf
from pymw_admin.errors import ConfigError

SPEC = ProjectSpec(name="proj", url_base="http://h/", host_name="h")


def manifest(platform: str, python: str = "3.11", main: str = "pymw-worker") -> mf.Manifest:
    return mf.Manifest(platform=platform, python=python, python_full=python, main_program=main,
                       files={main: mf.FileEntry("ab" * 32, 3, True),
                              "lib/x.so": mf.FileEntry("cd" * 32, 4)})


def bundle(tmp_path: Path, platform: str, python: str) -> mf.Bundle:
    return mf.Bundle(tmp_path / platform, manifest(platform, python))


def test_macos_is_one_line_and_no_build(tmp_path: Path) -> None:
    for platform in targets.MACOS:
        with pytest.raises(ConfigError) as info:
            targets.build(platform, tmp_path)
        assert str(info.value) == targets.MACOS_LINE
        assert "\n" not in targets.MACOS_LINE and "docs/bundles.md" in targets.MACOS_LINE
    assert not list(tmp_path.iterdir())


def test_unknown_platform_and_missing_sysroot(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no bundle recipe for sparc"):
        targets.build("sparc", tmp_path)
    with pytest.raises(ConfigError, match=r"--sysroot DIR .*debootstrap --arch arm64"):
        targets.build(targets.LINUX_AARCH64, tmp_path, python="3.11")


def test_windows_minor_must_be_pinned() -> None:
    with pytest.raises(ConfigError, match=r"no Windows CPython 3\.7 is pinned"):
        windows.fetch_embed("3.7", lambda _l: None)
    for version, sha256 in windows.EMBED.values():
        assert version.startswith("3.") and len(sha256) == 64


def test_version_xml_per_platform() -> None:
    linux = version_xml.for_client(manifest(targets.LINUX_AARCH64))
    win = version_xml.for_client(manifest(targets.WINDOWS_X86_64, main="pymw-worker.exe"))
    for root in (linux, win):
        assert root.findtext("api_version") == version_xml.API_VERSION
        assert sum(f.find("main_program") is not None for f in root.iter("file")) == 1
    # Unix: the shell launcher is the main program; Windows: the bundle's own launcher exe
    assert linux.find("file").findtext("logical_name") == version_xml.LAUNCHER_LOGICAL
    first = win.find("file")
    assert first.findtext("logical_name") == "pymw-worker.exe"
    assert first.find("main_program") is not None and first.find("copy_file") is not None


def test_extra_files_are_listed_by_open_name(tmp_path: Path) -> None:
    key = version_xml.ExtraFile("pymw_task_key", b"-----BEGIN PUBLIC KEY-----\n")
    m = manifest(targets.LINUX_X86_64)
    bundle_dir = tmp_path / "b"
    for rel in m.files:
        (bundle_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundle_dir / rel).write_bytes(b"x")
    path = version_xml.stage(m, bundle_dir, tmp_path / "v", extra=[key])
    root = etree.parse(str(path)).getroot()
    names = version_xml.logical_names(root)
    assert names["pymw_task_key"] == key.physical_name
    assert (tmp_path / "v" / key.physical_name).read_bytes() == key.data
    entry = next(f for f in root.iter("file") if f.findtext("logical_name") == "pymw_task_key")
    assert entry.find("copy_file") is None  # resolved through the soft link, not copied


def test_deploy_refuses_another_minor_before_anything(tmp_path: Path) -> None:
    good = bundle(tmp_path, targets.LINUX_X86_64, "3.11")
    bad = bundle(tmp_path, targets.WINDOWS_X86_64, "3.12")
    assert master_python.decide("3.11", SPEC, AppSpec("pymw", "", (good,))) == []
    with pytest.raises(ConfigError) as info:
        master_python.decide("3.11", SPEC, AppSpec("pymw", "", (good, bad)))
    text = str(info.value)
    assert "masters run Python 3.11" in text and "windows_x86_64 (3.12)" in text
    assert "--python 3.11" in text and "nothing was changed" in text


def test_python_check_is_the_first_deploy_step() -> None:
    from pymw_admin.admin.apps.deploy import steps

    assert next(s.name for s in steps(AppSpec("pymw"))) == "python"


def test_worker_zip_runs_the_entry(tmp_path: Path) -> None:
    dest = tmp_path / "w.zip"
    assemble.write_worker_zip(dest, "3.11", prefix=b"MZ launcher bytes")
    with zipfile.ZipFile(dest) as archive:
        names = archive.namelist()
        assert archive.read("__main__.py").decode() == assemble.MAIN
    assert dest.read_bytes().startswith(b"MZ launcher bytes")
    assert any(n.startswith("cloudpickle/") for n in names)
    for module in ("bundles/boinc", "bundles/client_shm", "bundles/entry", "worker/run",
                   "wire/encoding"):
        assert any(n.startswith(f"pymw_admin/{module}.py") for n in names), module
    # the admin side (lxml, typer, fabric) never goes in
    assert not any(n.startswith(("pymw_admin/admin/", "pymw_admin/cli/")) for n in names)


@pytest.mark.parametrize(("rel", "wanted"), [
    ("os.py", True), ("json/decoder.py", True), ("tkinter/__init__.py", False),
    ("test/test_os.py", False), ("unittest/test/x.py", False), ("idlelib/run.py", False),
    ("config-3.11-aarch64-linux-gnu/x.py", False), ("email/mime/text.py", True),
])
def test_stdlib_selection(rel: str, wanted: bool) -> None:
    assert assemble.stdlib_wanted(rel) is wanted


def test_runner_names_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pymw_admin.errors import EngineUnavailable

    monkeypatch.setattr(targets, "BINFMT", tmp_path)
    monkeypatch.setattr(targets, "_native", lambda _p: False)
    with pytest.raises(EngineUnavailable, match="qemu-user-static registered with binfmt_misc"):
        targets.runner(targets.LINUX_AARCH64)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu\n")
    assert targets.runner(targets.LINUX_AARCH64) == []
    monkeypatch.setattr("shutil.which", lambda _c: None)
    with pytest.raises(EngineUnavailable, match="needs wine"):
        targets.runner(targets.WINDOWS_X86_64)
