"""A re-run of init-project reads the project file it wrote: without --owner or --boinc-source it
converges the same project (same owner, directory and tree) and changes nothing."""

from __future__ import annotations

import json
import stat

import pytest

from testbed import ssh_host
from testbed.boinc_project import NAME, OWNER
from tests.helpers.boinc_master import Project
from tests.helpers.cli import pymw_admin

pytestmark = [pytest.mark.boinc, pytest.mark.ssh]


def test_a_rerun_without_owner_converges_the_same_project(project: Project) -> None:
    vm = ssh_host.up()
    out = pymw_admin("init-project", NAME, "--host", "vm", "--ssh-config", str(vm.ssh_config),
                     "--project-file", str(project.project_file), "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    data = json.loads(out.stdout)
    assert data["changes"] == 0, [s for s in data["steps"] if s["actions"]]
    assert f"owner = \"{OWNER}\"" in project.project_file.read_text()
    keys = project.dir / "keys"  # make_project made them 0644
    assert oct(stat.S_IMODE((keys / "code_sign_private").stat().st_mode)) == "0o600"
    assert oct(stat.S_IMODE((keys / "upload_private").stat().st_mode)) == "0o640"
