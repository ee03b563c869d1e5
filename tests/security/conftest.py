"""The sshd test host's fixtures, shared with the admin tests; the untrusted decoder's two scans."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymw_admin.admin.apps import scripts
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.wire import untrusted
from tests.integration.admin.conftest import vm, vm_host  # noqa: F401

ACCELERATOR_NOT_BUILT = ("the opcode scan's C accelerator (pymw_admin.wire._plainscan) is not "
                         "built: install the package where a C compiler is")


@pytest.fixture()
def compare(tmp_path: Path) -> Path:
    """The server's comparer as deploy-app installs it, with the decoder copy beside it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for wanted in scripts.wanted_files(AppSpec("pymw")):
        if wanted.rel.startswith("bin/pymw_"):
            (bin_dir / wanted.rel.removeprefix("bin/")).write_text(wanted.content)
    return bin_dir / "pymw_compare"


@pytest.fixture(params=["C accelerator", "pure Python"])
def scan_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A test that takes it runs with the opcode scan's C accelerator and without it, as the
    comparer's copy of the decoder runs on the BOINC server."""
    if request.param == "pure Python":
        monkeypatch.setattr(untrusted, "_c_match_items", None)
    elif untrusted._c_match_items is None:
        pytest.skip(ACCELERATOR_NOT_BUILT)
    return str(request.param)
