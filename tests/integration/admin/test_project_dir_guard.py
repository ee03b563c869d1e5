"""A project directory this tool did not create is never removed: a claimed project whose
config.xml went missing, or a name claimed for another directory, is refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymw_admin.admin.plan import Context, run_plan
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import os_check, project
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import UsageError
from testbed import ssh_host

pytestmark = pytest.mark.ssh

NAME = "ciguard"


def spec(project_dir: str = "") -> ProjectSpec:
    return ProjectSpec(NAME, url_base=f"http://{ssh_host.VM_ADDR}/", host_name="vm",
                       boinc_source="https://example.invalid/boinc.git@v1",
                       project_dir=project_dir)


def test_existing_directory_without_config_xml_is_kept(vm: ssh_host.VM, vm_host: Host,
                                                      project_owner: str) -> None:
    ssh_host.forget_project(NAME)
    other = Path(f"/home/{project_owner}/projects/{NAME}-other")
    try:
        # the name is ours (the marker exists), as after a first run
        run_plan(Context(vm_host, spec()), [os_check.STEP])
        live = Path(spec().project_dir)
        ssh_host.as_user(project_owner, f"mkdir -p {live}/keys && "
                         f"echo 'the only copy' > {live}/keys/upload_private")

        with pytest.raises(UsageError, match=r"exists but has no config\.xml") as info:
            run_plan(Context(vm_host, spec()), [os_check.STEP, project.STEP])
        assert "\n" not in str(info.value)
        assert (live / "keys" / "upload_private").read_text() == "the only copy\n"

        # the same name pointed at another existing directory: the marker does not vouch for it
        ssh_host.as_user(project_owner, f"mkdir -p {other}/upload")
        claimed = f"was made in {live} .owner boincadm., not in {other}"
        with pytest.raises(UsageError, match=claimed):
            run_plan(Context(vm_host, spec(str(other))), [os_check.STEP, project.STEP])
        assert (other / "upload").is_dir()
    finally:
        ssh_host.as_user(project_owner, f"rm -rf {other}")
        ssh_host.forget_project(NAME)
