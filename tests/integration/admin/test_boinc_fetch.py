"""Fetching a BOINC tarball on the host: it goes through a fresh temporary directory, never a
fixed /tmp name (which another local user could make first), and nothing is left behind."""

from __future__ import annotations

import os
import pwd
import shutil
import tarfile
from pathlib import Path

import pytest

from pymw_admin.admin.plan import Action, Context
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import boinc_build
from pymw_admin.admin.server.spec import ProjectSpec
from testbed import ssh_host

pytestmark = pytest.mark.ssh


def _mktemp_dirs(user: str) -> set[Path]:
    """mktemp's directories in /tmp that belong to ``user`` (others' tests may use /tmp too)."""
    uid = pwd.getpwnam(user).pw_uid
    return {p for p in Path("/tmp").glob("tmp.*") if p.is_dir() and p.stat().st_uid == uid}


def test_tarball_fetch_uses_a_fresh_temporary_directory(vm: ssh_host.VM, vm_host: Host,
                                                        tmp_path: Path) -> None:
    top = tmp_path / "boinc-citar" / "boinc-server-x"
    top.mkdir(parents=True)
    (top / "configure.ac").write_text("AC_INIT\n")
    archive = tmp_path / "boinc-citar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(top, arcname="boinc-server-x")
    spec = ProjectSpec("citar", "http://h/", "h", boinc_source=str(archive))
    tree = Path(boinc_build.tree_dir(boinc_build.parse_source(spec.boinc_source)))
    # the fixed name the old code used, made first by another user
    squatted = Path(f"/tmp/pymw-admin-boinc-{archive.name}")
    squatted.write_text("not yours\n")
    os.chown(squatted, 65534, 65534)
    before = _mktemp_dirs(vm.user)
    shutil.rmtree(tree, ignore_errors=True)
    try:
        boinc_build.apply(Context(vm_host, spec), [Action("fetch", str(tree))])
        assert (tree / "configure.ac").read_text() == "AC_INIT\n"
        assert squatted.read_text() == "not yours\n"
        assert _mktemp_dirs(vm.user) == before  # the temporary directory is gone
    finally:
        squatted.unlink(missing_ok=True)
        shutil.rmtree(tree, ignore_errors=True)
