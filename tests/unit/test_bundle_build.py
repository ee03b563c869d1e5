"""bundle build's manifest, with a fake PyInstaller that only writes a bundle directory."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pymw_admin.bundles import build
from pymw_admin.bundles import manifest as mf


def test_manifest_python_is_the_runtimes_python_minor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_pyinstaller(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        out = Path(cmd[cmd.index("--distpath") + 1]) / build.PROGRAM
        out.mkdir(parents=True)
        (out / build.PROGRAM).write_text("#!/bin/sh\n")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(build, "_pyinstaller_version", lambda: "6.0")
    monkeypatch.setattr(build.subprocess, "run", fake_pyinstaller)
    # one definition of "which Python": the bundle must record what the worker compares with
    monkeypatch.setattr(build, "python_minor", lambda: "3.99")
    bundle = build.build(tmp_path / "dist", boinc_library="no")
    assert bundle.manifest.python == "3.99"
    assert mf.open_bundle(bundle.root).manifest.python == "3.99"


def test_numpy_is_frozen_only_when_asked_for() -> None:
    # the untrusted decoder imports numpy when it is there, and PyInstaller would follow it
    assert "numpy" in build.excluded_modules([])
    assert "numpy" not in build.excluded_modules(["numpy"])
    assert "tkinter" in build.excluded_modules(["numpy"])
