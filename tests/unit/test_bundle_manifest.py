"""Manifests, platform names and version.xml, on a small fake bundle directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from pymw_admin.bundles import manifest as mf
from pymw_admin.bundles import version_xml
from pymw_admin.errors import ConfigError
from pymw_admin.wire.boinc_contract import WORKER_FEATURES


def fake_bundle(root: Path, python: str = "3.11") -> mf.Bundle:
    d = root / "x86_64-pc-linux-gnu" / "bundle"
    (d / "_internal" / "lib").mkdir(parents=True)
    (d / "pymw-worker").write_text("#!/bin/sh\n")
    (d / "pymw-worker").chmod(0o755)
    (d / "_internal" / "libpython.so").write_bytes(b"x" * 100)
    (d / "_internal" / "lib" / "a.so").write_bytes(b"a")
    m = mf.Manifest(platform="x86_64-pc-linux-gnu", python=python, python_full=python + ".1",
                    main_program="pymw-worker", packages={"cloudpickle": "3"},
                    files=mf.scan(d))
    mf.write(m, d.parent)
    return mf.open_bundle(d.parent)


@pytest.mark.parametrize(("system", "machine", "name"), [
    ("linux", "x86_64", "x86_64-pc-linux-gnu"),
    ("linux", "aarch64", "aarch64-unknown-linux-gnu"),
    ("win32", "AMD64", "windows_x86_64"),
    ("darwin", "x86_64", "x86_64-apple-darwin"),
    ("darwin", "arm64", "arm64-apple-darwin"),
])
def test_boinc_platform_names(system: str, machine: str, name: str) -> None:
    assert mf.platform_name(system, machine) == name


def test_unknown_platform_is_config_error() -> None:
    with pytest.raises(ConfigError, match="no BOINC platform name"):
        mf.platform_name("plan9", "mips")


def test_round_trip_and_check(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    loaded = mf.load(bundle.root / mf.MANIFEST_NAME)
    assert loaded == bundle.manifest
    assert loaded.files["pymw-worker"].executable
    assert mf.check(loaded, bundle.dir) == []
    (bundle.dir / "_internal" / "lib" / "a.so").write_bytes(b"b")
    (bundle.dir / "extra").write_text("?")
    (bundle.dir / "_internal" / "libpython.so").unlink()
    assert sorted(mf.check(loaded, bundle.dir)) == [
        "hash differs: _internal/lib/a.so", "missing: _internal/libpython.so",
        "not in the manifest: extra"]
    assert [b.root for b in mf.find_bundles(tmp_path)] == [bundle.root]


def test_malformed_manifest_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{nope")
    with pytest.raises(ConfigError, match="is not JSON"):
        mf.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(ConfigError, match="format 99"):
        mf.load(tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        mf.load(tmp_path / "absent.json")


def test_features_are_this_workers_and_none_for_an_older_manifest(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    assert bundle.manifest.features == list(WORKER_FEATURES)
    assert mf.load(bundle.root).features == list(WORKER_FEATURES)
    data = json.loads((bundle.root / mf.MANIFEST_NAME).read_text())
    del data["features"]  # written before the field existed: its worker reads task files only
    (bundle.root / mf.MANIFEST_NAME).write_text(json.dumps(data))
    assert mf.load(bundle.root).features == []
    data["features"] = "inline-task"
    (bundle.root / mf.MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="features is not a list"):
        mf.load(bundle.root)


def test_other_python_minor_is_refused(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path, python="3.12")
    with pytest.raises(ConfigError, match=r"runs Python 3.12, but this master runs Python 3.11"):
        bundle.require_python("3.11")
    bundle.require_python("3.12")


def test_version_xml(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path)
    root = etree.fromstring(version_xml.to_bytes(version_xml.build(bundle.manifest,
                                                                   api_version="7.20.5")))
    files = root.findall("file")
    assert [f.findtext("logical_name") for f in files] == [
        "pymw-worker", "_internal/lib/a.so", "_internal/libpython.so"]
    assert files[0].find("main_program") is not None
    assert all(f.find("main_program") is None for f in files[1:])
    assert all(f.find("copy_file") is not None for f in files)
    name = files[1].findtext("physical_name")
    assert name is not None and name.startswith("pymw_") and name.endswith("_a.so")
    assert root.findtext("api_version") == "7.20.5"


def test_equal_files_in_two_places_get_physical_names_of_their_own(tmp_path: Path) -> None:
    """update_versions moves each listed file: a name listed twice is gone the second time
    (numpy ships the same LICENSE.md in several directories)."""
    entry = mf.FileEntry(size=3, sha256="ab" * 32)
    first = version_xml.physical_name("a/LICENSE.md", entry)
    assert first != version_xml.physical_name("b/LICENSE.md", entry)
    assert first == version_xml.physical_name("a/LICENSE.md", entry)  # stable across versions
    other = mf.FileEntry(size=3, sha256="cd" * 32)
    assert first != version_xml.physical_name("a/LICENSE.md", other)  # contents never change
